// The protobuf (tokenizer.model) SentencePiece tokenizer: Llama 2's ids as
// transformers 4's slow LlamaTokenizer gives them (libsentencepiece's
// segmentation), decode as transformers prints it, and clear errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "sentencepiece_fixture.h"
#include "sentencepiece_test_data.h"
#include "support/test_support.h"
#include "tokenizer/sentencepiece.h"

namespace flint {
namespace {

using testing::ids_of;
using testing::llama2_config;
using testing::llama2_model_path;

std::unique_ptr<Tokenizer> llama2(std::optional<bool> legacy = std::nullopt) {
  return make_sentencepiece_tokenizer(llama2_model_path(), llama2_config(legacy));
}

TEST(SentencePiece, Llama2Vocabulary) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2();
  EXPECT_EQ(t->kind(), "sentencepiece");
  EXPECT_EQ(t->vocab_size(), 32000);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_ids(), std::vector<TokenId>{2});
  EXPECT_TRUE(t->is_special(0));  // <unk>
  EXPECT_TRUE(t->is_special(1));
  EXPECT_TRUE(t->is_special(2));
  EXPECT_FALSE(t->is_special(3));  // <0x00>
  EXPECT_FALSE(t->is_special(15043));
  EXPECT_EQ(t->token_to_id("▁Hello"), 15043);
  EXPECT_EQ(t->token_to_id("<s>"), 1);
  EXPECT_EQ(t->token_to_id("<0x0A>"), 13);
  EXPECT_EQ(t->token_to_id("no such piece"), std::nullopt);
  EXPECT_TRUE(t->strips_leading_space());
}

TEST(SentencePiece, Llama2NormalizerIsIdentityWithDummyPrefix) {
  FLINT_REQUIRE_ASSETS();
  // The reason plain sentencepiece and HF's Prepend("▁") + Replace(" ", "▁")
  // agree: no NFKC, no whitespace collapsing, a "▁" in front.
  const auto model = read_sentencepiece_model(read_file(llama2_model_path()), llama2_model_path());
  EXPECT_EQ(model.normalizer.name, "identity");
  EXPECT_TRUE(model.normalizer.add_dummy_prefix);
  EXPECT_FALSE(model.normalizer.remove_extra_whitespaces);
  EXPECT_TRUE(model.normalizer.escape_whitespaces);
  ASSERT_EQ(model.pieces.size(), 32000u);
  EXPECT_EQ(model.pieces[0].type, SentencePieceModelPiece::Type::unknown);
  EXPECT_EQ(model.pieces[1].type, SentencePieceModelPiece::Type::control);
  EXPECT_EQ(model.pieces[3].type, SentencePieceModelPiece::Type::byte);
  EXPECT_EQ(model.pieces[15043].text, "▁Hello");
}

// llama.cpp's vectors were made from Llama 2's tokenizer without BOS, with the
// dummy prefix on ("Hello world" -> ▁Hello ▁world; " Hello" -> ▁ ▁Hello): the
// legacy behaviour, which is plain sentencepiece's.
TEST(SentencePiece, MatchesLlamaCppVectors) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2(true);
  const auto cases = testing::llama_spm_vectors();
  ASSERT_GE(cases.size(), 40u);
  for (const auto& c : cases) {
    EXPECT_EQ(ids_of(*t, c.text, false, false), c.ids) << "text: '" << c.text << "'";
    auto with_bos = c.ids;
    with_bos.insert(with_bos.begin(), 1);
    EXPECT_EQ(ids_of(*t, c.text, true, false), with_bos) << "text: '" << c.text << "'";
  }
}

TEST(SentencePiece, EmptyAndWhitespaceInputs) {
  FLINT_REQUIRE_ASSETS();
  for (bool legacy : {true, false}) {
    const auto t = llama2(legacy);
    EXPECT_EQ(ids_of(*t, "", false, false), std::vector<TokenId>{});
    EXPECT_EQ(ids_of(*t, "", true, false), std::vector<TokenId>{1});
    EXPECT_EQ(ids_of(*t, "\n", false, false), (std::vector<TokenId>{29871, 13}));
  }
  // Both modes put one "▁" before the input even when a space leads, as plain
  // sentencepiece and transformers 4's slow tokenizer do (transformers 5's
  // Metaspace "first" would not: ' ' -> ▁, ' Hello' -> ▁Hello).
  for (bool legacy : {true, false}) {
    const auto t = llama2(legacy);
    EXPECT_EQ(ids_of(*t, " ", false, false), std::vector<TokenId>{259});  // "▁▁"
    EXPECT_EQ(ids_of(*t, " Hello", false, false), (std::vector<TokenId>{29871, 15043}));
    EXPECT_EQ(ids_of(*t, "Hello", false, false), std::vector<TokenId>{15043});
  }
}

TEST(SentencePiece, SpecialTokenTextIsParsedOnlyWhenAsked) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2(true);
  const auto plain = ids_of(*t, "<s>", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_GT(plain.size(), 1u);
  EXPECT_EQ(ids_of(*t, "<s>", false, true), std::vector<TokenId>{1});
  EXPECT_EQ(ids_of(*t, "</s><unk>", false, true), (std::vector<TokenId>{2, 0}));
  // transformers' own documented example (LlamaTokenizer, "legacy" docstring):
  // legacy puts a dummy "▁" before the text after a special token.
  EXPECT_EQ(ids_of(*t, "Hello <s>.", true, true), (std::vector<TokenId>{1, 15043, 29871, 1, 869}));
  EXPECT_EQ(ids_of(*llama2(false), "Hello <s>.", true, true), (std::vector<TokenId>{1, 15043, 29871, 1, 29889}));
  // Text right at the start after a special token: no prefix when not legacy.
  EXPECT_EQ(ids_of(*llama2(false), "<s>Hello", false, true), (std::vector<TokenId>{1, 10994}));
  EXPECT_EQ(ids_of(*t, "<s>Hello", false, true), (std::vector<TokenId>{1, 15043}));
}

TEST(SentencePiece, UnsetLegacyIsNotLegacy) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2();
  EXPECT_EQ(ids_of(*t, " Hello", false, false), (std::vector<TokenId>{29871, 15043}));
  EXPECT_EQ(ids_of(*t, "Hello <s>.", true, true), (std::vector<TokenId>{1, 15043, 29871, 1, 29889}));
  EXPECT_EQ(ids_of(*t, "<s>[INST]", false, true), (std::vector<TokenId>{1, 29961, 25580, 29962}));  // [ INST ]
}

// The same Llama 2 files in their two forms give different ids for runs of
// spaces: tokenizer.model is segmented by libsentencepiece (by piece score),
// the tokenizer.json transformers 5 writes from it by BPE merges ranked by
// piece id. flint-code-22m, trained on tokenizer.model, reaches its documented
// perplexity only with the first (tests/models/test_real_models.cpp,
// docs/TOKENIZERS.md). Ids from fixtures/llama2.json.
TEST(SentencePiece, TwoFormsDifferOnSpaceRuns) {
  FLINT_REQUIRE_ASSETS();
  const auto model = llama2();
  const auto dir = testing::llama2_hf_dir();
  const auto json_form = make_sentencepiece_json_tokenizer(
      nlohmann::json::parse(read_file((dir / "tokenizer.json").string())), (dir / "tokenizer.json").string(),
      load_tokenizer_config(dir.string()));
  const std::string text = "  Hello  world  ";
  EXPECT_EQ(ids_of(*model, text, true, true), (std::vector<TokenId>{1, 259, 15043, 29871, 3186, 259}));
  EXPECT_EQ(ids_of(*json_form, text, true, true), (std::vector<TokenId>{1, 259, 10994, 259, 11526, 259}));
  EXPECT_EQ(model->decode(ids_of(*model, text, true, true), true), text);
  EXPECT_EQ(json_form->decode(ids_of(*json_form, text, true, true), true), " Hello  world  ");
  // Without space runs they agree.
  for (const char* plain : {"Hello world", "def f(x):\n\treturn x\n", "<s>[INST] hi [/INST]"})
    EXPECT_EQ(ids_of(*model, plain, true, true), ids_of(*json_form, plain, true, true)) << plain;
}

TEST(SentencePiece, BosEosFollowConfig) {
  FLINT_REQUIRE_ASSETS();
  auto config = llama2_config();
  config.add_bos_token = false;
  config.add_eos_token = true;
  const auto t = make_sentencepiece_tokenizer(llama2_model_path(), config);
  EXPECT_EQ(ids_of(*t, "Hello", true, false), (std::vector<TokenId>{15043, 2}));
  EXPECT_EQ(ids_of(*t, "Hello", false, false), (std::vector<TokenId>{15043}));
  TokenizerConfig defaults;  // no tokenizer_config.json: Llama's defaults
  const auto d = make_sentencepiece_tokenizer(llama2_model_path(), defaults);
  EXPECT_EQ(ids_of(*d, "Hello", true, false), (std::vector<TokenId>{1, 15043}));
  EXPECT_EQ(d->bos_id(), 1);
  EXPECT_EQ(d->eos_ids(), std::vector<TokenId>{2});
}

TEST(SentencePiece, TokenBytes) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2();
  EXPECT_EQ(t->token_bytes(15043), " Hello");
  EXPECT_EQ(t->token_bytes(13), "\n");       // <0x0A>
  EXPECT_EQ(t->token_bytes(3 + 0xE2), "\xE2");  // a lone byte, not valid UTF-8 alone
  EXPECT_EQ(t->token_bytes(1), "<s>");
  EXPECT_EQ(t->token_bytes(2), "</s>");
  EXPECT_EQ(t->token_bytes(0), "<unk>");
  EXPECT_EQ(t->token_bytes(29871), " ");
  EXPECT_THROW(t->token_bytes(32000), Error);
  EXPECT_THROW(t->token_bytes(-1), Error);
}

TEST(SentencePiece, DecodeAsTransformers) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2(true);
  auto decode = [&](std::vector<TokenId> ids, bool skip = false) { return t->decode(ids, skip); };
  EXPECT_EQ(decode({1, 15043, 3186}), "<s> Hello world");  // the space of ▁Hello stays after <s>
  EXPECT_EQ(decode({1, 15043, 3186}, true), "Hello world");
  EXPECT_EQ(decode({15043, 2}), "Hello</s>");
  EXPECT_EQ(decode({0, 15043}), "<unk> Hello");
  EXPECT_EQ(decode({0, 15043}, true), "Hello");
  EXPECT_EQ(decode({29871, 15043}), " Hello");  // only one leading space is stripped
  EXPECT_EQ(decode({3 + 0xE2, 3 + 0x82, 3 + 0xAC}), "€");
  // A byte run that is not UTF-8 gives U+FFFD per byte (tokenizers' ByteFallback).
  EXPECT_EQ(decode({3 + 0xE2, 3 + 0x82, 15043}), "\xEF\xBF\xBD\xEF\xBF\xBD Hello");
  EXPECT_EQ(decode({}), "");
  EXPECT_THROW(decode({5, 32000}), Error);
  for (const auto& c : testing::llama_spm_vectors()) {
    // Legacy encoding keeps a leading space as "▁", so decode(encode(x)) == x.
    EXPECT_EQ(t->decode(ids_of(*t, c.text, true, false), true), c.text);
  }
}

TEST(SentencePiece, IncrementalDecoderAgreesWithDecode) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2(true);
  for (const auto& text : testing::sentencepiece_corpus(100)) {
    const auto ids = ids_of(*t, text, true, true);
    IncrementalDecoder stream(*t, true);
    std::string streamed;
    for (TokenId id : ids) streamed += stream.push(id);
    streamed += stream.finish();
    EXPECT_EQ(streamed, t->decode(ids, true)) << "text: '" << text << "'";
  }
}

TEST(SentencePiece, InvalidUtf8InputIsReplacedNotRejected) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2();
  EXPECT_EQ(ids_of(*t, "a\xFF" "b", false, false), ids_of(*t, "a\xEF\xBF\xBD" "b", false, false));
  EXPECT_EQ(ids_of(*t, std::string("a\0b", 3), false, false), (std::vector<TokenId>{263, 3, 29890}));  // ▁a <0x00> b
}

TEST(SentencePiece, ExtraPiecesLikeCodeLlama) {
  FLINT_REQUIRE_ASSETS();
  testing::TempDir dir;
  // A user-defined piece (CodeLlama-style "▁<PRE>") and a control piece appended.
  std::string model = read_file(llama2_model_path());
  model = testing::with_extra_piece(model, "▁<PRE>", 4);
  model = testing::with_extra_piece(model, "<EOT>", 3);
  testing::write_bytes(dir / "tokenizer.model", model);
  const auto t = make_sentencepiece_tokenizer((dir / "tokenizer.model").string(), llama2_config(true));
  EXPECT_EQ(t->vocab_size(), 32002);
  EXPECT_EQ(t->token_to_id("▁<PRE>"), 32000);
  EXPECT_FALSE(t->is_special(32000));
  EXPECT_TRUE(t->is_special(32001));
  // User-defined pieces are split out always; control pieces only when parsing specials.
  const auto ids = ids_of(*t, "a▁<PRE>b", false, false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 32000), 1);
  EXPECT_EQ(ids_of(*t, "<EOT>", false, true), std::vector<TokenId>{32001});
  EXPECT_NE(ids_of(*t, "<EOT>", false, false), std::vector<TokenId>{32001});
  EXPECT_EQ(t->token_bytes(32000), " <PRE>");
  EXPECT_EQ(t->decode(std::vector<TokenId>{32000, 32001}, true), "<PRE>");
}

TEST(SentencePiece, ConfigAddedTokens) {
  FLINT_REQUIRE_ASSETS();
  auto config = llama2_config();
  config.added_tokens = {{.id = 0, .content = "<unk>", .special = true},
                         {.id = 32000, .content = "<pad>", .special = true}};
  const auto t = make_sentencepiece_tokenizer(llama2_model_path(), config);
  EXPECT_EQ(t->vocab_size(), 32001);
  EXPECT_TRUE(t->is_special(32000));
  EXPECT_EQ(ids_of(*t, "<pad>", false, true), std::vector<TokenId>{32000});
  EXPECT_EQ(t->decode(std::vector<TokenId>{15043, 32000}, true), "Hello");

  auto wrong = llama2_config();
  wrong.dir = "/models/x";
  wrong.added_tokens = {{.id = 1, .content = "<bos>"}};
  try {
    make_sentencepiece_tokenizer(llama2_model_path(), wrong);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/models/x/tokenizer_config.json"), std::string::npos) << e.what();
    EXPECT_EQ(e.context().field, "added_tokens_decoder");
  }
  auto gap = llama2_config();
  gap.added_tokens = {{.id = 40000, .content = "<far>"}};
  EXPECT_THROW(make_sentencepiece_tokenizer(llama2_model_path(), gap), Error);
  auto bad_bos = llama2_config();
  bad_bos.bos_token = "<|begin_of_text|>";
  EXPECT_THROW(make_sentencepiece_tokenizer(llama2_model_path(), bad_bos), Error);
}

TEST(SentencePiece, CorruptModelsGiveErrorsNamingTheFile) {
  FLINT_REQUIRE_ASSETS();
  testing::TempDir dir;
  const std::string good = read_file(llama2_model_path());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"text", "this is not a protobuf\n"},
      {"truncated", good.substr(0, good.size() / 2)},
      {"garbage", std::string(1000, '\xFF')},
      {"tiktoken", "IQ== 0\nIg== 1\n"},
      {"bad-type", testing::with_extra_piece(good, "x", 9)},
      {"wire-type-7", "\x0F"},
  };
  for (const auto& [name, bytes] : cases) {
    const auto path = (dir / (name + ".model")).string();
    testing::write_bytes(path, bytes);
    try {
      make_sentencepiece_tokenizer(path, llama2_config());
      ADD_FAILURE() << name << ": expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.context().file, path) << name << ": " << e.what();
    }
  }
  EXPECT_THROW(make_sentencepiece_tokenizer((dir / "missing.model").string(), llama2_config()), Error);
}

// tokenizer.model gives exactly what transformers 4's slow LlamaTokenizer gives
// with legacy=False (llama2.json's "slow" blocks, written by
// make_tokenizer_fixtures.py's re-implementation of it on top of sentencepiece
// on the GPU machine): all corpus cases, all four option combinations, pieces,
// decodes and streaming. The tokenizer_config.json is the real one (no
// "legacy" key: Flint reads that as not legacy).
TEST(SentencePiece, MatchesSlowTransformersFixtures) {
  FLINT_REQUIRE_ASSETS();
  const auto fixture = testing::llama2_fixture();
  ASSERT_FALSE(fixture.is_null());
  ASSERT_EQ(fixture.at("slow_tokenizer").at("legacy"), false);
  EXPECT_TRUE(fixture.at("slow_check").at("violations").empty());
  const auto config = load_tokenizer_config((testing::shared_assets() / "tokenizers" / "llama2").string());
  ASSERT_FALSE(config.legacy.has_value());
  const auto t = make_sentencepiece_tokenizer(llama2_model_path(), config);
  EXPECT_EQ(testing::expect_matches_llama2_fixture(*t, fixture, "slow"), 95u);
  // The split (no special-token parsing) ids are sentencepiece's own.
  for (const auto& row : fixture.at("cases")) {
    EXPECT_EQ(t->encode(testing::fixture_text(row), {false, false}), testing::json_ids(row.at("sentencepiece_ids")))
        << testing::printable(testing::fixture_text(row));
  }
}

// legacy=True (set in tokenizer_config.json): the slow tokenizer's ids. Only the
// ids: decode does not depend on the flag in Flint.
TEST(SentencePiece, MatchesSlowTransformersLegacyIds) {
  FLINT_REQUIRE_ASSETS();
  const auto fixture = testing::llama2_fixture();
  ASSERT_FALSE(fixture.is_null());
  ASSERT_EQ(fixture.at("slow_legacy_tokenizer").at("legacy"), true);
  const auto t = llama2(true);
  size_t n = 0, differ_from_not_legacy = 0;
  for (const auto& row : fixture.at("cases")) {
    const std::string text = testing::fixture_text(row);
    const auto& want = row.at("slow_legacy");
    const std::string what = testing::printable(text);
    EXPECT_EQ(t->encode(text, {true, true}), testing::json_ids(want.at("ids"))) << what;
    EXPECT_EQ(t->encode(text, {false, true}), testing::json_ids(want.at("ids_no_special"))) << what;
    EXPECT_EQ(t->encode(text, {true, false}), testing::json_ids(want.at("ids_split_special"))) << what;
    EXPECT_EQ(t->encode(text, {false, false}), testing::json_ids(want.at("ids_split_special_no_special"))) << what;
    differ_from_not_legacy += want.at("ids") != row.at("slow").at("ids");
    ++n;
  }
  EXPECT_EQ(n, 95u);
  EXPECT_GT(differ_from_not_legacy, 0u);  // the fixture does tell the two modes apart
}

}  // namespace
}  // namespace flint
