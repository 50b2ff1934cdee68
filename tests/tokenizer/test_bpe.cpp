// Byte-level BPE (Llama 3 tokenizer.json): ids against HF-made references.
#include <gtest/gtest.h>

#include "core/error.h"
#include "test_bpe_support.h"
#include "tokenizer/byte_level.h"

namespace flint {
namespace {

using testing::llama3_json;

std::string describe(const std::string& text) {
  std::string out;
  for (unsigned char c : text.substr(0, 60)) out += (c >= 0x20 && c < 0x7F) ? std::string(1, static_cast<char>(c)) : fmt::format("\\x{:02x}", c);
  return out;
}

TEST(Llama3Json, LoadsAsByteLevelBpe) {
  FLINT_REQUIRE_ASSETS();
  const Tokenizer& t = llama3_json();
  EXPECT_EQ(t.kind(), "bpe");
  EXPECT_EQ(t.vocab_size(), 128256);
  EXPECT_EQ(t.bos_id(), 128000);
  // tokenizer_config.json says <|eot_id|>; the other Llama 3 enders follow.
  EXPECT_EQ(t.eos_ids(), (std::vector<TokenId>{128009, 128001, 128008}));
  EXPECT_TRUE(t.is_special(128009));
  EXPECT_FALSE(t.is_special(9906));
  EXPECT_EQ(t.token_to_id("<|eot_id|>"), 128009);
  EXPECT_EQ(t.token_to_id("Hello"), 9906);
  EXPECT_EQ(t.token_to_id("Ġworld"), 1917);
  EXPECT_EQ(t.token_bytes(1917), " world");
  EXPECT_EQ(t.token_piece(1917), "Ġworld");
  EXPECT_EQ(t.token_bytes(128009), "<|eot_id|>");
  EXPECT_FALSE(t.token_to_id("no such token at all").has_value());
}

// llama.cpp's test vectors, made with HF tokenizers from the real Llama 3 tokenizer.
TEST(Llama3Json, MatchesLlamaCppVectors) {
  FLINT_REQUIRE_ASSETS();
  const auto cases = testing::ggml_vocab_cases("ggml-vocab-llama-bpe.gguf");
  ASSERT_EQ(cases.size(), 46u);
  for (const auto& c : cases)
    EXPECT_EQ(llama3_json().encode(c.text, {.add_special = false}), c.ids) << "text: " << describe(c.text);
}

TEST(Llama3Json, AddsBeginOfTextOnlyWithAddSpecial) {
  FLINT_REQUIRE_ASSETS();
  EXPECT_EQ(llama3_json().encode("Hello world"), (std::vector<TokenId>{128000, 9906, 1917}));
  EXPECT_EQ(llama3_json().encode("Hello world", {.add_special = false}), (std::vector<TokenId>{9906, 1917}));
  EXPECT_EQ(llama3_json().encode(""), (std::vector<TokenId>{128000}));
  EXPECT_TRUE(llama3_json().encode("", {.add_special = false}).empty());
}

TEST(Llama3Json, SpecialTokenTextIsParsedOnlyWhenAsked) {
  FLINT_REQUIRE_ASSETS();
  const Tokenizer& t = llama3_json();
  const std::string text = "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>";
  const auto parsed = t.encode(text, {.add_special = false, .parse_special = true});
  EXPECT_EQ(parsed.front(), 128006);
  EXPECT_EQ(parsed.back(), 128009);
  EXPECT_EQ(std::count(parsed.begin(), parsed.end(), 128007), 1);
  const auto plain = t.encode(text, {.add_special = false});
  for (TokenId id : plain) EXPECT_LT(id, 128000) << "special id in plain-text encoding";
  EXPECT_EQ(t.decode(plain), text);
  EXPECT_EQ(t.decode(parsed), text);
  EXPECT_EQ(t.decode(parsed, /*skip_special=*/true), "user\n\nhi");
  // Leftmost-longest: "<|eot_id|<|eot_id|>>" holds one token, after plain text.
  const auto nested = t.encode("<|eot_id|<|eot_id|>>", {.add_special = false, .parse_special = true});
  EXPECT_EQ(std::count(nested.begin(), nested.end(), 128009), 1);
}

TEST(Llama3Json, DecodeInvertsEncodeOnTheCorpus) {
  FLINT_REQUIRE_ASSETS();
  for (const std::string& text : testing::corpus_texts()) {
    const auto ids = llama3_json().encode(text, {.add_special = false});
    EXPECT_EQ(llama3_json().decode(ids), sanitize_utf8(text)) << describe(text);
  }
}

TEST(Llama3Json, InvalidUtf8IsReplacedBeforeTokenizing) {
  FLINT_REQUIRE_ASSETS();
  const Tokenizer& t = llama3_json();
  EXPECT_EQ(t.encode("abc\x80" "def"), t.encode("abc\xEF\xBF\xBD" "def"));
  EXPECT_EQ(t.encode("\xE2\x82 x"), t.encode("\xEF\xBF\xBD x"));
}

TEST(Llama3Json, OutOfRangeIdsAreErrors) {
  FLINT_REQUIRE_ASSETS();
  const Tokenizer& t = llama3_json();
  for (TokenId bad : {-1, 128256, 1 << 30}) {
    try {
      (void)t.token_bytes(bad);
      ADD_FAILURE() << "no error for id " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
    const std::vector<TokenId> ids = {9906, bad};
    EXPECT_THROW((void)t.decode(ids), Error);
  }
}

// A megabyte-long pre-token (a word without spaces, a run of spaces, a run of
// punctuation) goes through the regex and the merge loop in one piece: this
// finishes in well under a second only if both are near-linear.
TEST(Llama3Json, MegabytePreTokens) {
  FLINT_REQUIRE_ASSETS();
  const Tokenizer& t = llama3_json();
  for (const std::string& text : {std::string(1 << 20, 'a'), std::string(1 << 20, ' '), std::string(1 << 18, '!'),
                                  std::string(1 << 18, ' ') + "x", std::string(1 << 18, '\n'),
                                  [] {
                                    std::string s;
                                    while (s.size() < (1u << 18)) s += "Pneumonoultramicroscopic";
                                    return s;
                                  }()}) {
    const auto ids = t.encode(text, {.add_special = false});
    EXPECT_LT(ids.size(), text.size() / 2);
    EXPECT_EQ(t.decode(ids), text);
  }
}

TEST(Llama3Json, MatchesHuggingFaceFixtures) {
  FLINT_REQUIRE_ASSETS();
  const auto fixture = testing::hf_fixture("llama3");
  if (fixture.is_null())
    GTEST_SKIP() << "tests/tokenizer/fixtures/llama3.json not generated yet (make_tokenizer_fixtures.py)";
  const Tokenizer& t = llama3_json();
  for (const auto& row : fixture["cases"]) {
    const std::string text = testing::fixture_text(row);
    const std::string what = describe(text);
    // HF's split_special_tokens=False is parse_special.
    EXPECT_EQ(t.encode(text, {true, true}), testing::json_ids(row["ids"])) << what;
    EXPECT_EQ(t.encode(text, {false, true}), testing::json_ids(row["ids_no_special"])) << what;
    EXPECT_EQ(t.encode(text, {true, false}), testing::json_ids(row["ids_split_special"])) << what;
    EXPECT_EQ(t.encode(text, {false, false}), testing::json_ids(row["ids_split_special_no_special"])) << what;
    if (row.contains("decode")) {
      const auto ids = testing::json_ids(row["ids"]);
      EXPECT_EQ(t.decode(ids), row["decode"].get<std::string>()) << what;
      EXPECT_EQ(t.decode(ids, true), row["decode_skip_special"].get<std::string>()) << what;
    }
    if (row.contains("pieces")) {
      const auto ids = testing::json_ids(row["ids_split_special_no_special"]);
      std::vector<std::string> pieces;
      for (TokenId id : ids) pieces.push_back(t.token_piece(id));
      EXPECT_EQ(pieces, row["pieces"].get<std::vector<std::string>>()) << what;
    }
  }
}

// Hub checkpoints from 2024 store merges as "left right" strings; ollama's
// copy of the real Llama 3 vocab.bpe is in that form. Rebuilt as a
// tokenizer.json it must give the same ids as the [left, right] form.
TEST(Llama3Json, StringMergesFromTheRealVocabBpe) {
  FLINT_REQUIRE_ASSETS();
  const auto ollama = testing::llama3_dir() / "ollama-llama3.2";
  auto j = nlohmann::json::parse(testing::read_all(testing::llama3_dir() / "tokenizer.json"));
  j["model"]["vocab"] = nlohmann::json::parse(testing::read_all(ollama / "encoder.json"));
  nlohmann::json merges = nlohmann::json::array();
  std::istringstream lines(testing::read_all(ollama / "vocab.bpe"));
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line.rfind("#version", 0) != 0) merges.push_back(line);
  ASSERT_EQ(merges.size(), 280147u);
  j["model"]["merges"] = std::move(merges);
  const auto tok = make_tokenizer_json_bpe(j, "rebuilt tokenizer.json", {});
  for (const std::string& text : testing::corpus_texts())
    EXPECT_EQ(tok->encode(text, {false, true}), llama3_json().encode(text, {false, true})) << describe(text);
}

}  // namespace
}  // namespace flint
