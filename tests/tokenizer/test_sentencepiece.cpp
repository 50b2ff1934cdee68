// The protobuf (tokenizer.model) SentencePiece tokenizer: Llama 2's ids as
// transformers 5 gives them (its BPE conversion, not libsentencepiece), decode
// as transformers prints it, and clear errors.
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
  EXPECT_EQ(t->token_piece(15043), "▁Hello");
  EXPECT_EQ(t->token_piece(13), "<0x0A>");
  EXPECT_TRUE(t->strips_leading_space());
}

TEST(SentencePiece, Llama2ModelProto) {
  FLINT_REQUIRE_ASSETS();
  // What the proto says. transformers 5 ignores the normalizer_spec (its
  // LlamaTokenizer has no normalizer and its own Metaspace); Flint does too.
  const auto model = read_sentencepiece_model(read_file(llama2_model_path()), llama2_model_path());
  EXPECT_EQ(model.model_type, SentencePieceModelInfo::ModelType::bpe);
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

// transformers 5 runs BPE over the whole "▁"-escaped text (Metaspace with
// split=false), so runs of spaces become "▁▁" pieces where libsentencepiece
// gives "▁" + "▁Hello"; a text that starts with a space gets no extra "▁".
TEST(SentencePiece, EmptyAndWhitespaceInputs) {
  FLINT_REQUIRE_ASSETS();
  for (bool legacy : {true, false}) {
    const auto t = llama2(legacy);
    EXPECT_EQ(ids_of(*t, "", false, false), std::vector<TokenId>{});
    EXPECT_EQ(ids_of(*t, "", true, false), std::vector<TokenId>{1});
    EXPECT_EQ(ids_of(*t, "\n", false, false), (std::vector<TokenId>{29871, 13}));
    EXPECT_EQ(ids_of(*t, " ", false, false), std::vector<TokenId>{29871});
    EXPECT_EQ(ids_of(*t, "  ", false, false), std::vector<TokenId>{259});  // "▁▁"
    EXPECT_EQ(ids_of(*t, " Hello", false, false), std::vector<TokenId>{15043});
    EXPECT_EQ(ids_of(*t, "Hello", false, false), std::vector<TokenId>{15043});
    // libsentencepiece: [259, 15043, 29871, 3186, 259].
    EXPECT_EQ(ids_of(*t, "  Hello  world  ", false, false), (std::vector<TokenId>{259, 10994, 259, 11526, 259}));
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
  // legacy (Metaspace "always") puts a "▁" before the text after a special
  // token, "first" does not.
  EXPECT_EQ(ids_of(*t, "Hello <s>.", true, true), (std::vector<TokenId>{1, 15043, 29871, 1, 869}));
  EXPECT_EQ(ids_of(*llama2(false), "Hello <s>.", true, true), (std::vector<TokenId>{1, 15043, 29871, 1, 29889}));
  EXPECT_EQ(ids_of(*llama2(false), "<s>Hello", false, true), (std::vector<TokenId>{1, 10994}));
  EXPECT_EQ(ids_of(*t, "<s>Hello", false, true), (std::vector<TokenId>{1, 15043}));
}

TEST(SentencePiece, UnsetLegacyFollowsTransformers5) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2();
  EXPECT_EQ(ids_of(*t, " Hello", false, false), std::vector<TokenId>{15043});
  EXPECT_EQ(ids_of(*t, "Hello <s>.", true, true), (std::vector<TokenId>{1, 15043, 29871, 1, 29889}));
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
  EXPECT_THROW(t->token_piece(32000), Error);
}

TEST(SentencePiece, DecodeAsTransformers) {
  FLINT_REQUIRE_ASSETS();
  const auto t = llama2();
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
  // The "▁" that "first" puts in front is the space decode strips, so text
  // that does not begin with a space comes back as it was (a "▁" in the text
  // itself comes back as a space, as in transformers).
  for (const auto& text : testing::sentencepiece_corpus(100)) {
    if (text.starts_with(' ') || text.find("▁") != std::string::npos || sanitize_utf8(text) != text) continue;
    EXPECT_EQ(t->decode(ids_of(*t, text, true, false), true), text);
  }
}

TEST(SentencePiece, IncrementalDecoderAgreesWithDecode) {
  FLINT_REQUIRE_ASSETS();
  for (bool legacy : {false, true}) {
    const auto t = llama2(legacy);
    for (const auto& text : testing::sentencepiece_corpus(100)) {
      const auto ids = ids_of(*t, text, true, true);
      for (bool skip : {true, false}) {
        IncrementalDecoder stream(*t, skip);
        std::string streamed;
        for (TokenId id : ids) streamed += stream.push(id);
        streamed += stream.finish();
        EXPECT_EQ(streamed, t->decode(ids, skip))
            << "legacy=" << legacy << " skip=" << skip << " text: '" << text << "'";
      }
    }
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
  // trainer_spec (field 2) again with model_type (field 3) = 1: protobuf merges
  // it into the first one, so the model reads as Unigram.
  const std::string unigram = good + std::string("\x12\x02\x18\x01", 4);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", ""},
      {"text", "this is not a protobuf\n"},
      {"truncated", good.substr(0, good.size() / 2)},
      {"garbage", std::string(1000, '\xFF')},
      {"tiktoken", "IQ== 0\nIg== 1\n"},
      {"bad-type", testing::with_extra_piece(good, "x", 9)},
      {"wire-type-7", "\x0F"},
      {"unigram", unigram},
      {"repeated-piece", testing::with_extra_piece(good, "▁Hello", 1)},
      {"empty-piece", testing::with_extra_piece(good, "", 1)},
  };
  for (const auto& [name, bytes] : cases) {
    const auto path = (dir / (name + ".model")).string();
    testing::write_bytes(path, bytes);
    try {
      make_sentencepiece_tokenizer(path, llama2_config());
      ADD_FAILURE() << name << ": expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.context().file, path) << name << ": " << e.what();
      if (name == "unigram") {
        EXPECT_NE(std::string(e.what()).find("Unigram"), std::string::npos) << e.what();
      }
    }
  }
  EXPECT_THROW(make_sentencepiece_tokenizer((dir / "missing.model").string(), llama2_config()), Error);
}

// load_tokenizer on the Llama 2 directory (tokenizer.model + its
// tokenizer_config.json) against what transformers 5.17's AutoTokenizer gave
// for the same directory (tests/tokenizer/fixtures/llama2.json): every case,
// every option, exactly.
TEST(SentencePiece, MatchesTransformersFixtures) {
  FLINT_REQUIRE_ASSETS();
  const auto fixture = testing::llama2_fixture();
  ASSERT_FALSE(fixture.is_null());
  EXPECT_EQ(fixture.at("versions").at("transformers"), "5.17.0");
  const auto t = load_tokenizer((testing::shared_assets() / "tokenizers" / "llama2").string());
  EXPECT_EQ(t->kind(), "sentencepiece");
  EXPECT_EQ(testing::expect_matches_llama2_fixture(*t, fixture, ""), 95u);
}

}  // namespace
}  // namespace flint
