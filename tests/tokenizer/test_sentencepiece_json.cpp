// The HF tokenizer.json form of SentencePiece BPE, encoded natively. Checked
// against libsentencepiece on a broad corpus through a tokenizer.json built here
// from tokenizer.model the way transformers' LlamaConverter builds one.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

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

// Offsets of the UTF-8 character boundaries inside `s` (excluding 0 and size).
std::vector<size_t> inner_boundaries(const std::string& s) {
  std::vector<size_t> out;
  for (size_t i = 1; i < s.size(); ++i)
    if ((static_cast<uint8_t>(s[i]) & 0xC0) != 0x80) out.push_back(i);
  return out;
}

// transformers' SentencePieceExtractor idea: every vocabulary entry that splits
// into two vocabulary entries is a merge; merges are ranked by the score of the
// merged piece (highest first), ties by the merged piece's id, then by the ids
// of the two halves. Control/unknown pieces get score 0, as LlamaConverter does.
json tokenizer_json_from_model(const SentencePieceModelInfo& model, bool legacy, bool merges_as_strings = false) {
  using Type = SentencePieceModelPiece::Type;
  std::map<std::string, int> ids;
  json vocab = json::object();
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    ids.emplace(model.pieces[i].text, static_cast<int>(i));
    vocab[model.pieces[i].text] = i;
  }
  struct Merge {
    float score;
    int merged, left, right;
  };
  std::vector<Merge> merges;
  for (size_t m = 0; m < model.pieces.size(); ++m) {
    const auto& piece = model.pieces[m];
    const float score = piece.type == Type::control || piece.type == Type::unknown ? 0.0f : piece.score;
    for (size_t cut : inner_boundaries(piece.text)) {
      const auto l = ids.find(piece.text.substr(0, cut)), r = ids.find(piece.text.substr(cut));
      if (l != ids.end() && r != ids.end()) merges.push_back({score, static_cast<int>(m), l->second, r->second});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.merged != b.merged) return a.merged < b.merged;
    return std::pair(a.left, a.right) < std::pair(b.left, b.right);
  });
  json merge_list = json::array();
  for (const auto& m : merges) {
    const auto& l = model.pieces[static_cast<size_t>(m.left)].text;
    const auto& r = model.pieces[static_cast<size_t>(m.right)].text;
    if (merges_as_strings)
      merge_list.push_back(l + " " + r);
    else
      merge_list.push_back(json::array({l, r}));
  }
  json added = json::array();
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const auto type = model.pieces[i].type;
    if (type != Type::control && type != Type::unknown && type != Type::user_defined) continue;
    added.push_back({{"id", i},
                     {"content", model.pieces[i].text},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", type != Type::user_defined}});
  }
  json root = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "▁"}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  if (legacy) {
    root["normalizer"] = {{"type", "Sequence"},
                          {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "▁"}},
                                                       {{"type", "Replace"},
                                                        {"pattern", {{"String", " "}}},
                                                        {"content", "▁"}}})}};
  } else {
    root["pre_tokenizer"] = {
        {"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}};
  }
  return root;
}

const SentencePieceModelInfo& llama2_model() {
  static const SentencePieceModelInfo model = read_sentencepiece_model(read_file(llama2_model_path()), llama2_model_path());
  return model;
}

const json& llama2_json(bool legacy) {
  static const json legacy_json = tokenizer_json_from_model(llama2_model(), true);
  static const json metaspace_json = tokenizer_json_from_model(llama2_model(), false);
  return legacy ? legacy_json : metaspace_json;
}

void expect_same_ids(const Tokenizer& expected, const Tokenizer& actual, const std::vector<std::string>& corpus) {
  size_t mismatches = 0;
  for (const auto& text : corpus) {
    for (bool parse_special : {false, true}) {
      const auto want = ids_of(expected, text, true, parse_special);
      const auto got = ids_of(actual, text, true, parse_special);
      if (want != got && ++mismatches <= 5)
        ADD_FAILURE() << "parse_special=" << parse_special << " text: '" << text << "'\n want "
                      << ::testing::PrintToString(want) << "\n got  " << ::testing::PrintToString(got);
      if (want == got) {
        EXPECT_EQ(expected.decode(want), actual.decode(got));
      }
    }
  }
  EXPECT_EQ(mismatches, 0u) << "of " << corpus.size() * 2 << " encodings";
}

TEST(SentencePieceJson, ConvertedLlama2MatchesProtobufLegacy) {
  FLINT_REQUIRE_ASSETS();
  const auto sp = make_sentencepiece_tokenizer(llama2_model_path(), llama2_config(true));
  const auto js = make_sentencepiece_json_tokenizer(llama2_json(true), "converted.json", llama2_config());
  EXPECT_EQ(js->vocab_size(), 32000);
  EXPECT_EQ(js->bos_id(), 1);
  EXPECT_EQ(js->eos_ids(), std::vector<TokenId>{2});
  EXPECT_TRUE(js->is_special(0));
  EXPECT_FALSE(js->is_special(3));
  EXPECT_EQ(js->kind(), "sentencepiece");
  expect_same_ids(*sp, *js, testing::sentencepiece_corpus());
}

// Metaspace prepend_scheme "first" prepends "▁" to the input only when no space
// (or "▁") leads it; the protobuf form (transformers 4's slow legacy=False) always
// prepends one. On inputs that do not start with a space the two rules agree,
// so the JSON engine's Metaspace path is checked against libsentencepiece
// there, and the leading-space difference by its ids.
TEST(SentencePieceJson, ConvertedLlama2MatchesProtobufMetaspaceFirst) {
  FLINT_REQUIRE_ASSETS();
  const auto sp = make_sentencepiece_tokenizer(llama2_model_path(), llama2_config(false));
  const auto js = make_sentencepiece_json_tokenizer(llama2_json(false), "converted.json", llama2_config());
  const std::string spm_space = "\xE2\x96\x81";
  std::vector<std::string> corpus;
  for (auto& text : testing::sentencepiece_corpus(200))
    if (!text.starts_with(' ') && !text.starts_with(spm_space)) corpus.push_back(std::move(text));
  EXPECT_GE(corpus.size(), 150u);
  expect_same_ids(*sp, *js, corpus);
  EXPECT_EQ(ids_of(*js, " Hello", false, false), std::vector<TokenId>{15043});            // ▁Hello
  EXPECT_EQ(ids_of(*sp, " Hello", false, false), (std::vector<TokenId>{29871, 15043}));   // ▁ ▁Hello
  EXPECT_EQ(ids_of(*js, " ", false, false), std::vector<TokenId>{29871});                 // ▁
  EXPECT_EQ(ids_of(*js, "<s> Hello", false, true), (std::vector<TokenId>{1, 15043}));
  EXPECT_EQ(ids_of(*sp, "<s> Hello", false, true), (std::vector<TokenId>{1, 15043}));
}

TEST(SentencePieceJson, MatchesLlamaCppVectors) {
  FLINT_REQUIRE_ASSETS();
  const auto js = make_sentencepiece_json_tokenizer(llama2_json(true), "converted.json", llama2_config());
  for (const auto& c : testing::llama_spm_vectors())
    EXPECT_EQ(ids_of(*js, c.text, false, false), c.ids) << "text: '" << c.text << "'";
}

TEST(SentencePieceJson, MergesAsStringsEqualPairs) {
  FLINT_REQUIRE_ASSETS();
  const json strings = tokenizer_json_from_model(llama2_model(), true, true);
  const auto a = make_sentencepiece_json_tokenizer(strings, "strings.json", llama2_config());
  const auto b = make_sentencepiece_json_tokenizer(llama2_json(true), "pairs.json", llama2_config());
  for (const auto& text : testing::sentencepiece_corpus(50)) EXPECT_EQ(ids_of(*a, text, true, true), ids_of(*b, text, true, true));
}

TEST(SentencePieceJson, LongInputIsFast) {
  FLINT_REQUIRE_ASSETS();
  const auto path = testing::shared_assets() / "datasets" / "war-and-peace" / "war-and-peace.txt";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  // One segment (no pre-tokenizer splits it), so the merge loop must not be quadratic.
  const std::string text = read_file(path.string()).substr(0, 300000);
  const auto sp = make_sentencepiece_tokenizer(llama2_model_path(), llama2_config(true));
  const auto js = make_sentencepiece_json_tokenizer(llama2_json(true), "converted.json", llama2_config());
  EXPECT_EQ(ids_of(*js, text, true, false), ids_of(*sp, text, true, false));
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

// The JSON form as transformers 5.17's converter writes it (fixtures/llama2-hf/,
// made on the GPU machine by make_tokenizer_fixtures.py) gives exactly the ids,
// pieces and decodes transformers gives with it (llama2.json's "hf_json"
// blocks): all corpus cases, all four option combinations, and streaming. This
// BPE ranks merges by the merged piece's id, so it is not libsentencepiece: it
// differs from the tokenizer.model form on whitespace runs (see
// SentencePiece.MatchesSlowTransformersFixtures and docs/TOKENIZERS.md).
TEST(SentencePieceJson, TransformersWrittenTokenizerJson) {
  FLINT_REQUIRE_ASSETS();
  const auto dir = testing::llama2_hf_dir();
  const json j = json::parse(read_file((dir / "tokenizer.json").string()));
  EXPECT_TRUE(looks_like_sentencepiece_json(j));
  const auto js = make_sentencepiece_json_tokenizer(j, (dir / "tokenizer.json").string(),
                                                    load_tokenizer_config(dir.string()));
  const auto fixture = testing::llama2_fixture();
  ASSERT_FALSE(fixture.is_null());
  EXPECT_EQ(testing::expect_matches_llama2_fixture(*js, fixture, "hf_json"), 95u);
}

}  // namespace
}  // namespace flint
