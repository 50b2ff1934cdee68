// The HF tokenizer.json form of SentencePiece BPE, encoded natively, and the
// converter that turns a tokenizer.model into that form: checked against the
// tokenizer.json transformers 5.17 wrote and the ids it gave.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/error.h"
#include "core/mapped_file.h"
#include "sentencepiece_fixture.h"
#include "sentencepiece_test_data.h"
#include "support/test_support.h"
#include "tokenizer/sentencepiece.h"

namespace flint {
namespace {

using json = nlohmann::json;
using testing::ids_of;
using testing::llama2_config;
using testing::llama2_model_path;

const SentencePieceModelInfo& llama2_model() {
  static const SentencePieceModelInfo model =
      read_sentencepiece_model(read_file(llama2_model_path()), llama2_model_path());
  return model;
}

TokenizerConfig llama2_dir_config() {
  return load_tokenizer_config((testing::shared_assets() / "tokenizers" / "llama2").string());
}

json transformers_tokenizer_json() {
  return json::parse(read_file((testing::llama2_hf_dir() / "tokenizer.json").string()));
}

// The converter against the tokenizer.json transformers 5.17 saved for the
// same tokenizer.model: the merges in HF's order, exactly, and every other part.
TEST(SentencePieceJson, ConverterWritesWhatTransformersWrites) {
  FLINT_REQUIRE_ASSETS();
  const json want = transformers_tokenizer_json();
  const json got = sentencepiece_model_to_tokenizer_json(llama2_model(), llama2_dir_config());
  const json& want_merges = want.at("model").at("merges");
  const json& got_merges = got.at("model").at("merges");
  ASSERT_EQ(got_merges.size(), 61249u);
  ASSERT_EQ(got_merges.size(), want_merges.size());
  for (size_t i = 0; i < want_merges.size(); ++i)
    ASSERT_EQ(got_merges[i], want_merges[i]) << "merge " << i << " (rank order differs from transformers')";
  EXPECT_EQ(got.at("model").at("vocab"), want.at("model").at("vocab"));
  for (const char* part : {"added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder"})
    EXPECT_EQ(got.at(part), want.at(part))
        << part << "\n got  " << got.at(part).dump() << "\n want " << want.at(part).dump();
  EXPECT_EQ(got, want);  // the whole document, so no field is left unchecked
}

TEST(SentencePieceJson, ConverterOptions) {
  FLINT_REQUIRE_ASSETS();
  auto config = llama2_dir_config();
  config.legacy = true;
  config.add_bos_token = false;
  config.add_eos_token = true;
  const json j = sentencepiece_model_to_tokenizer_json(llama2_model(), config);
  EXPECT_EQ(j["pre_tokenizer"]["prepend_scheme"], "always");
  EXPECT_EQ(j["post_processor"]["single"],
            json::parse(R"([{"Sequence": {"id": "A", "type_id": 0}},
                            {"SpecialToken": {"id": "</s>", "type_id": 0}}])"));
  EXPECT_EQ(j["post_processor"]["special_tokens"],
            json::parse(R"({"</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}})"));
  // A named special token that is a plain piece becomes a special added token.
  config.pad_token = "▁Hello";
  const json padded = sentencepiece_model_to_tokenizer_json(llama2_model(), config);
  ASSERT_EQ(padded["added_tokens"].size(), 4u);
  EXPECT_EQ(padded["added_tokens"][3]["id"], 15043);
  EXPECT_EQ(padded["added_tokens"][3]["special"], true);
}

// Every encoding option over a broad corpus, and decode: `a` and `b` agree.
void expect_same(const Tokenizer& a, const Tokenizer& b, const std::vector<std::string>& corpus) {
  size_t mismatches = 0;
  for (const auto& text : corpus) {
    for (bool add_special : {false, true}) {
      for (bool parse_special : {false, true}) {
        const auto want = ids_of(a, text, add_special, parse_special);
        const auto got = ids_of(b, text, add_special, parse_special);
        if (want != got && ++mismatches <= 5)
          ADD_FAILURE() << "add_special=" << add_special << " parse_special=" << parse_special << " text: '" << text
                        << "'\n a " << ::testing::PrintToString(want) << "\n b " << ::testing::PrintToString(got);
        for (bool skip : {false, true}) EXPECT_EQ(a.decode(want, skip), b.decode(want, skip));
      }
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << corpus.size() * 4 << " encodings";
}

// tokenizer.model (converted here) and the tokenizer.json transformers saved
// for it are one tokenizer, on far more text than the fixture's cases.
TEST(SentencePieceJson, ModelAndTransformersJsonAgree) {
  FLINT_REQUIRE_ASSETS();
  const auto model = load_tokenizer((testing::shared_assets() / "tokenizers" / "llama2").string());
  const auto js = load_tokenizer(testing::llama2_hf_dir().string());
  EXPECT_EQ(js->vocab_size(), 32000);
  EXPECT_EQ(js->bos_id(), 1);
  EXPECT_EQ(js->eos_ids(), std::vector<TokenId>{2});
  EXPECT_TRUE(js->is_special(0));
  EXPECT_FALSE(js->is_special(3));
  EXPECT_EQ(js->kind(), "sentencepiece");
  expect_same(*model, *js, testing::sentencepiece_corpus());
}

TEST(SentencePieceJson, MergesAsStringsEqualPairs) {
  FLINT_REQUIRE_ASSETS();
  const json pairs = sentencepiece_model_to_tokenizer_json(llama2_model(), llama2_config());
  json strings = pairs;
  for (auto& m : strings["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
  const auto a = make_sentencepiece_json_tokenizer(strings, "strings.json", llama2_config());
  const auto b = make_sentencepiece_json_tokenizer(pairs, "pairs.json", llama2_config());
  for (const auto& text : testing::sentencepiece_corpus(50))
    EXPECT_EQ(ids_of(*a, text, true, true), ids_of(*b, text, true, true));
}

TEST(SentencePieceJson, LongInputIsFast) {
  FLINT_REQUIRE_ASSETS();
  const auto path = testing::shared_assets() / "datasets" / "war-and-peace" / "war-and-peace.txt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  // One segment (Metaspace with split=false), so the merge loop must not be quadratic.
  const std::string text = read_file(path.string()).substr(0, 300000);
  const auto model = make_sentencepiece_tokenizer(llama2_model_path(), llama2_config());
  const auto js = make_sentencepiece_json_tokenizer(transformers_tokenizer_json(), "tokenizer.json", llama2_config());
  const auto ids = ids_of(*js, text, true, false);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(ids, ids_of(*model, text, true, false));
}

// A hand-made tokenizer.json: vocabulary a, b, c, ab, bc, abc, ▁, ▁a and byte pieces for 'x' (0x78).
json tiny_json() {
  return json::parse(R"({
    "added_tokens": [
      {"id": 0, "content": "<unk>", "special": true, "normalized": false},
      {"id": 1, "content": "<s>", "special": true, "normalized": false},
      {"id": 2, "content": "</s>", "special": true, "normalized": false},
      {"id": 12, "content": "[SEP]", "special": true, "normalized": false, "lstrip": true, "rstrip": true}
    ],
    "normalizer": {"type": "Sequence", "normalizers": [
      {"type": "Prepend", "prepend": "▁"},
      {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": null,
    "post_processor": {"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}],
      "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                         "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
      {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
      "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "c": 5, "ab": 6, "bc": 7, "abc": 8,
                "▁": 9, "▁a": 10, "<0x78>": 11, "[SEP]": 12},
      "merges": ["b c", "a b", ["▁", "a"], "a bc"]}
  })");
}

TEST(SentencePieceJson, TinyMergesByRank) {
  const auto t = make_sentencepiece_json_tokenizer(tiny_json(), "tiny.json", TokenizerConfig{});
  EXPECT_EQ(t->vocab_size(), 13);
  // "▁abc": "b c" (rank 0) first, then "▁ a" (rank 2), then nothing joins ▁a+bc.
  EXPECT_EQ(ids_of(*t, "abc", false, false), (std::vector<TokenId>{10, 7}));
  // The template adds <s> ... </s> when the config is silent.
  // "▁ab": "a b" (rank 1) beats "▁ a" (rank 2), and "▁ ab" is no merge.
  EXPECT_EQ(ids_of(*t, "ab", true, false), (std::vector<TokenId>{1, 9, 6, 2}));
  // 'x' is not in the vocabulary: its byte piece; 'é' has no byte pieces: <unk>, fused.
  EXPECT_EQ(ids_of(*t, "x", false, false), (std::vector<TokenId>{9, 11}));
  EXPECT_EQ(ids_of(*t, "éé", false, false), (std::vector<TokenId>{9, 0}));
  EXPECT_EQ(ids_of(*t, "", true, false), (std::vector<TokenId>{1, 2}));
  auto config = TokenizerConfig{};
  config.add_eos_token = false;
  EXPECT_EQ(ids_of(*make_sentencepiece_json_tokenizer(tiny_json(), "tiny.json", config), "a", true, false),
            (std::vector<TokenId>{1, 10}));
}

TEST(SentencePieceJson, TinyAddedTokens) {
  const auto t = make_sentencepiece_json_tokenizer(tiny_json(), "tiny.json", TokenizerConfig{});
  // [SEP] strips the spaces around it (lstrip/rstrip), and each side gets its own "▁".
  EXPECT_EQ(ids_of(*t, "a [SEP] a", false, true), (std::vector<TokenId>{10, 12, 10}));
  EXPECT_EQ(ids_of(*t, "<s>a</s>", false, true), (std::vector<TokenId>{1, 10, 2}));
  EXPECT_NE(ids_of(*t, "<s>", false, false), (std::vector<TokenId>{1}));
  EXPECT_TRUE(t->is_special(12));
  EXPECT_EQ(t->decode(std::vector<TokenId>{1, 10, 7, 11, 2}), "<s> abcx</s>");
  EXPECT_EQ(t->decode(std::vector<TokenId>{1, 10, 7, 11, 2}, true), "abcx");
}

TEST(SentencePieceJson, ConfigAddedTokensAppend) {
  TokenizerConfig config;
  config.added_tokens = {{.id = 13, .content = "<pad>", .special = true}};
  const auto t = make_sentencepiece_json_tokenizer(tiny_json(), "tiny.json", config);
  EXPECT_EQ(t->vocab_size(), 14);
  EXPECT_EQ(ids_of(*t, "a<pad>", false, true), (std::vector<TokenId>{10, 13}));
  EXPECT_EQ(t->decode(std::vector<TokenId>{10, 13}, true), "a");
}

TEST(SentencePieceJson, TinyMetaspaceSplit) {
  json j = tiny_json();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", true}};
  const auto t = make_sentencepiece_json_tokenizer(j, "tiny.json", TokenizerConfig{});
  // Split before every ▁, so "▁a" + "▁bc" never merge across the word boundary.
  EXPECT_EQ(ids_of(*t, "a bc", false, false), (std::vector<TokenId>{10, 9, 7}));
  // Older files: add_prefix_space instead of prepend_scheme.
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"add_prefix_space", false}};
  EXPECT_EQ(ids_of(*make_sentencepiece_json_tokenizer(j, "tiny.json", TokenizerConfig{}), "abc", false, false),
            (std::vector<TokenId>{8}));
}

TEST(SentencePieceJson, LooksLikeSentencePiece) {
  EXPECT_TRUE(looks_like_sentencepiece_json(tiny_json()));
  json metaspace = tiny_json();
  metaspace["normalizer"] = nullptr;
  metaspace["model"]["byte_fallback"] = false;
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}};
  EXPECT_TRUE(looks_like_sentencepiece_json(metaspace));
  json byte_level = tiny_json();
  byte_level["normalizer"] = nullptr;
  byte_level["model"]["byte_fallback"] = false;
  byte_level["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  byte_level["decoder"] = {{"type", "ByteLevel"}};
  EXPECT_FALSE(looks_like_sentencepiece_json(byte_level));
  EXPECT_FALSE(looks_like_sentencepiece_json(json::array()));
  EXPECT_FALSE(looks_like_sentencepiece_json(json{{"model", {{"type", "WordPiece"}}}}));
  EXPECT_FALSE(looks_like_sentencepiece_json(json{{"model", 3}}));
}

TEST(SentencePieceJson, Llama3TokenizerJsonIsNotSentencePiece) {
  FLINT_REQUIRE_ASSETS();
  const auto path = testing::shared_assets() / "tokenizers" / "llama3" / "tokenizer.json";
  EXPECT_FALSE(looks_like_sentencepiece_json(json::parse(read_file(path.string()))));
}

TEST(SentencePieceJson, MalformedFilesGiveErrorsNamingFileAndField) {
  struct Case {
    const char* name;
    std::function<void(json&)> edit;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"no model", [](json& j) { j.erase("model"); }, "model"},
      {"model not BPE", [](json& j) { j["model"]["type"] = "Unigram"; }, "model.type"},
      {"no vocab", [](json& j) { j["model"].erase("vocab"); }, "model.vocab"},
      {"vocab not object", [](json& j) { j["model"]["vocab"] = json::array(); }, "model.vocab"},
      {"no merges", [](json& j) { j["model"].erase("merges"); }, "model.merges"},
      {"merge of unknown piece", [](json& j) { j["model"]["merges"].push_back("q a"); }, "model.merges[4]"},
      {"merge result unknown", [](json& j) { j["model"]["merges"].push_back("c a"); }, "model.merges[4]"},
      {"merge without space", [](json& j) { j["model"]["merges"].push_back("abc"); }, "model.merges[4]"},
      {"merge of three", [](json& j) { j["model"]["merges"].push_back(json::array({"a", "b", "c"})); },
       "model.merges[4]"},
      {"negative id", [](json& j) { j["model"]["vocab"]["z"] = -1; }, "model.vocab"},
      {"huge id", [](json& j) { j["model"]["vocab"]["z"] = 2000000000; }, "model.vocab"},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["z"] = 3; }, "model.vocab"},
      {"id gap", [](json& j) { j["model"]["vocab"]["z"] = 20; }, "model.vocab"},
      {"id not integer", [](json& j) { j["model"]["vocab"]["z"] = "13"; }, "model.vocab"},
      {"unk not in vocab", [](json& j) { j["model"]["unk_token"] = "<UNK>"; }, "model.unk_token"},
      {"added token without id", [](json& j) { j["added_tokens"][0].erase("id"); }, "added_tokens[0]"},
      {"added token id too large", [](json& j) { j["added_tokens"][3]["id"] = 99999999; }, "added_tokens[3]"},
      {"regex normalizer", [](json& j) { j["normalizer"]["normalizers"][1]["pattern"] = {{"Regex", "\\s"}}; },
       "normalizer.normalizers[1].pattern"},
      {"NFKC normalizer", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "normalizer.type"},
      {"byte-level pre-tokenizer", [](json& j) { j["pre_tokenizer"] = {{"type", "ByteLevel"}}; }, "pre_tokenizer.type"},
      {"bad prepend scheme", [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}, {"prepend_scheme", "x"}}; },
       "pre_tokenizer.prepend_scheme"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, "model.dropout"},
      {"byte_fallback not bool", [](json& j) { j["model"]["byte_fallback"] = "yes"; }, "model.byte_fallback"},
      {"template item", [](json& j) { j["post_processor"]["single"][0] = {{"Other", 1}}; }, "post_processor.single"},
  };
  for (const auto& c : cases) {
    json j = tiny_json();
    c.edit(j);
    try {
      make_sentencepiece_json_tokenizer(j, "/models/m/tokenizer.json", TokenizerConfig{});
      ADD_FAILURE() << c.name << ": expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.context().file, "/models/m/tokenizer.json") << c.name << ": " << e.what();
      EXPECT_EQ(e.context().field, c.field) << c.name << ": " << e.what();
    }
  }
  EXPECT_THROW(make_sentencepiece_json_tokenizer(json::array(), "x.json", TokenizerConfig{}), Error);
}

// load_tokenizer on the tokenizer.json form transformers 5.17 saved
// (tests/tokenizer/fixtures/llama2-hf) against what that tokenizer gave
// (the fixture's "hf_json" values): every case, every option, exactly.
TEST(SentencePieceJson, TransformersWrittenTokenizerJson) {
  FLINT_REQUIRE_ASSETS();
  const auto fixture = testing::llama2_fixture();
  ASSERT_FALSE(fixture.is_null());
  EXPECT_TRUE(looks_like_sentencepiece_json(transformers_tokenizer_json()));
  const auto t = load_tokenizer(testing::llama2_hf_dir().string());
  EXPECT_EQ(t->kind(), "sentencepiece");
  EXPECT_EQ(testing::expect_matches_llama2_fixture(*t, fixture, "hf_json"), 95u);
}

}  // namespace
}  // namespace flint
