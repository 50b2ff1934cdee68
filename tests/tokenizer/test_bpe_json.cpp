// Byte-level BPE from tokenizer.json: the features and errors of the reader,
// on a tiny hand-made vocabulary.
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/test_support.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/byte_level_bpe.h"
#include "tokenizer/tokenizer.h"

namespace flint {
namespace {

using nlohmann::json;
using Ids = std::vector<TokenId>;

// Ids 0..255 are the bytes; 256 "ab", 257 "abc", 258 " a", 259 "bc" (no merge
// makes it), 260 <bos>, 261 <mask> (lstrip/rstrip), 262 [plain] (not special).
json tiny_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_char(static_cast<unsigned char>(b))] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab[byte_level_char(' ') + "a"] = 258;
  vocab["bc"] = 259;
  return {
      {"version", "1.0"},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", std::string(kLlama3SplitPattern)}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<bos>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<bos>", {{"id", "<bos>"}, {"ids", {260}}, {"tokens", {"<bos>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens",
       {{{"id", 260}, {"content", "<bos>"}, {"special", true}},
        {{"id", 261}, {"content", "<mask>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}},
        {{"id", 262}, {"content", "[plain]"}, {"special", false}}}},
      {"model",
       {{"type", "BPE"},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", json::array({json::array({"a", "b"}), json::array({"ab", "c"}), json::array({byte_level_char(' '), "a"})})}}},
  };
}

std::unique_ptr<Tokenizer> make(const json& j, const TokenizerConfig& config = {}) {
  return make_tokenizer_json_bpe(j, "tokenizer.json", config);
}

TEST(BpeJson, MergesByRank) {
  const auto t = make(tiny_tokenizer_json());
  EXPECT_EQ(t->kind(), "bpe");
  EXPECT_EQ(t->vocab_size(), 263);
  EXPECT_EQ(t->encode("abc", {.add_special = false}), (Ids{257}));
  // " ab": "ab" (rank 0) merges before " a" (rank 2) could.
  EXPECT_EQ(t->encode(" ab", {.add_special = false}), (Ids{' ', 256}));
  EXPECT_EQ(t->encode(" ac", {.add_special = false}), (Ids{258, 'c'}));
  EXPECT_EQ(t->encode("abc", {.add_special = true}), (Ids{260, 257}));
}

TEST(BpeJson, StringAndPairMergesAgree) {
  json pairs = tiny_tokenizer_json();
  json strings = pairs;
  for (auto& m : strings["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  const auto a = make(pairs), b = make(strings);
  for (const char* text : {"abc abc", " ab ac", "cabbage", "abcabcab"})
    EXPECT_EQ(a->encode(text), b->encode(text)) << text;
}

TEST(BpeJson, IgnoreMergesTakesWholeVocabEntries) {
  json j = tiny_tokenizer_json();
  EXPECT_EQ(make(j)->encode("bc", {.add_special = false}), (Ids{'b', 'c'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(j)->encode("bc", {.add_special = false}), (Ids{259}));
}

TEST(BpeJson, AddedTokens) {
  const auto t = make(tiny_tokenizer_json());
  // lstrip/rstrip: the spaces around <mask> belong to it.
  EXPECT_EQ(t->encode("c <mask> c", {.add_special = false, .parse_special = true}), (Ids{'c', 261, 'c'}));
  const Ids plain = t->encode("c <mask> c", {.add_special = false});
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 261), 0);
  // Non-special added tokens are matched whatever parse_special says.
  EXPECT_EQ(t->encode("c[plain]c", {.add_special = false}), (Ids{'c', 262, 'c'}));
  EXPECT_TRUE(t->is_special(261));
  EXPECT_FALSE(t->is_special(262));
  EXPECT_EQ(t->decode(Ids{'c', 261, 262}), "c<mask>[plain]");
  EXPECT_EQ(t->decode(Ids{'c', 261, 262}, true), "c[plain]");
}

TEST(BpeJson, ConfigDecidesBosAndEos) {
  const json j = tiny_tokenizer_json();
  TokenizerConfig no_bos;
  no_bos.add_bos_token = false;
  EXPECT_EQ(make(j, no_bos)->encode("c"), (Ids{'c'}));
  TokenizerConfig both;
  both.bos_token = "<bos>";
  both.eos_token = "[plain]";
  both.add_bos_token = true;
  both.add_eos_token = true;
  const auto t = make(j, both);
  EXPECT_EQ(t->encode("c"), (Ids{260, 'c', 262}));
  EXPECT_EQ(t->bos_id(), 260);
  EXPECT_EQ(t->eos_ids(), (Ids{262}));
  json no_post = j;
  no_post["post_processor"] = nullptr;
  EXPECT_EQ(make(no_post)->encode("c"), (Ids{'c'}));
  EXPECT_EQ(make(no_post, both)->encode("c"), (Ids{260, 'c', 262}));
}

TEST(BpeJson, Gpt2StyleByteLevelWithPrefixSpace) {
  json j = tiny_tokenizer_json();
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  const auto t = make(j);
  EXPECT_EQ(t->encode("ac", {.add_special = false}), (Ids{258, 'c'}));
  EXPECT_EQ(t->encode(" ac", {.add_special = false}), (Ids{258, 'c'}));
}

struct BadJson {
  const char* name;
  std::function<void(json&)> mutate;
  const char* expected;  // substring of the error
};

TEST(BpeJson, MalformedFilesNameTheField) {
  const std::vector<BadJson> cases = {
      {"no model", [](json& j) { j.erase("model"); }, "field 'model': missing"},
      {"no vocab", [](json& j) { j["model"].erase("vocab"); }, "field 'model.vocab': missing"},
      {"vocab not object", [](json& j) { j["model"]["vocab"] = json::array(); }, "field 'model.vocab'"},
      {"negative id", [](json& j) { j["model"]["vocab"]["zz"] = -3; }, "model.vocab.zz"},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["zz"] = 5; }, "is used twice"},
      {"missing byte", [](json& j) { j["model"]["vocab"].erase(byte_level_char(0x41)); },
       "no token for byte 0x41"},
      {"no merges", [](json& j) { j["model"].erase("merges"); }, "field 'model.merges': missing"},
      {"merge with three parts", [](json& j) { j["model"]["merges"][1] = "a b c"; }, "model.merges[1]"},
      {"merge of a number", [](json& j) { j["model"]["merges"][0] = 7; }, "model.merges[0]"},
      {"merge of unknown token", [](json& j) { j["model"]["merges"][2] = json::array({"a", "zzz"}); },
       "merge 2 names a token that is not in the vocabulary ('zzz')"},
      {"merge result not in vocab", [](json& j) { j["model"]["merges"].push_back(json::array({"c", "c"})); },
       "merge 3 makes a token that is not in the vocabulary"},
      {"wordpiece", [](json& j) { j["model"]["type"] = "WordPiece"; }, "needs a BPE model, got 'WordPiece'"},
      {"byte fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, "model.byte_fallback"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout"},
      {"normalizer", [](json& j) { j["normalizer"] = {{"type", "NFC"}}; }, "field 'normalizer'"},
      {"split removed", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed"; },
       "pre_tokenizer.pretokenizers[0].behavior"},
      {"bad regex", [](json& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; },
       "cannot compile split regex"},
      {"unknown pre-tokenizer", [](json& j) { j["pre_tokenizer"]["pretokenizers"][1]["type"] = "Whitespace"; },
       "unsupported pre-tokenizer 'Whitespace'"},
      {"template token unknown", [](json& j) { j["post_processor"]["special_tokens"].erase("<bos>"); },
       "post_processor.special_tokens.<bos>"},
      {"bert processor", [](json& j) { j["post_processor"] = {{"type", "BertProcessing"}}; },
       "unsupported post-processor 'BertProcessing'"},
      {"added token without id", [](json& j) { j["added_tokens"][1].erase("id"); }, "added_tokens[1].id"},
      {"added token bad flag", [](json& j) { j["added_tokens"][0]["special"] = "yes"; },
       "added_tokens[0].special"},
  };
  for (const BadJson& c : cases) {
    json j = tiny_tokenizer_json();
    c.mutate(j);
    try {
      make(j);
      ADD_FAILURE() << c.name << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos)
          << c.name << ": got \"" << e.what() << "\", expected \"" << c.expected << "\"";
      EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << c.name << ": " << e.what();
    }
  }
}

// load_tokenizer() picks the reader by content and names what it looked for.
TEST(LoadTokenizer, ChoosesByFilesAndContent) {
  testing::TempDir dir;
  testing::write_text(dir / "tokenizer.json", tiny_tokenizer_json().dump());
  EXPECT_EQ(load_tokenizer(dir.path().string())->kind(), "bpe");

  testing::TempDir empty;
  try {
    load_tokenizer(empty.path().string());
    ADD_FAILURE() << "no error for an empty directory";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("looked for tokenizer.json and tokenizer.model"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(empty.path().string()), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_tokenizer((empty / "missing").string()), Error);

  testing::TempDir broken;
  testing::write_text(broken / "tokenizer.json", "{\"model\": ");
  try {
    load_tokenizer(broken.path().string());
    ADD_FAILURE() << "no error for malformed JSON";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("malformed JSON"), std::string::npos) << e.what();
  }

  testing::TempDir wordlevel;
  testing::write_text(wordlevel / "tokenizer.json", R"({"model": {"type": "WordLevel", "vocab": {}}})");
  try {
    load_tokenizer(wordlevel.path().string());
    ADD_FAILURE() << "no error for WordLevel";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unsupported tokenizer 'WordLevel'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace flint
