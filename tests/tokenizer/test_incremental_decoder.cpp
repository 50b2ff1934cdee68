// IncrementalDecoder: streamed text equals decode() of the whole sequence.
#include <gtest/gtest.h>

#include "test_bpe_support.h"
#include "tokenizer/tokenizer.h"

namespace flint {
namespace {

// A tokenizer of fixed byte strings, SentencePiece-like when asked: raw byte
// tokens (what byte fallback pieces give) and a leading space to strip.
class TableTokenizer final : public Tokenizer {
 public:
  TableTokenizer(std::vector<std::string> tokens, bool strips) : tokens_(std::move(tokens)), strips_(strips) {}
  std::vector<TokenId> encode(std::string_view, const EncodeOptions&) const override { return {}; }
  std::string token_bytes(TokenId id) const override { return tokens_.at(static_cast<size_t>(id)); }
  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }
  bool is_special(TokenId id) const override { return tokens_.at(static_cast<size_t>(id)) == "<s>"; }
  std::optional<TokenId> token_to_id(std::string_view) const override { return std::nullopt; }
  std::optional<TokenId> bos_id() const override { return 0; }
  std::vector<TokenId> eos_ids() const override { return {}; }
  std::string kind() const override { return "table"; }
  bool strips_leading_space() const override { return strips_; }

 private:
  std::vector<std::string> tokens_;
  bool strips_;
};

const std::vector<std::string> kTokens = {
    "<s>", " Hello", "\xE2", "\x82", "\xAC", " ", "", "\xF0\x9F", "\x98\x80", "\xFF", "x", "\xE2\x82",
};

std::vector<std::string> stream(const Tokenizer& t, const std::vector<TokenId>& ids, bool skip_special) {
  IncrementalDecoder d(t, skip_special);
  std::vector<std::string> parts;
  for (TokenId id : ids) parts.push_back(d.push(id));
  parts.push_back(d.finish());
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += p;
  return s;
}

TEST(IncrementalDecoder, HoldsBackUnfinishedCharacters) {
  const TableTokenizer t(kTokens, false);
  // "€" arrives as three byte tokens: nothing until the last one.
  EXPECT_EQ(stream(t, {10, 2, 3, 4, 10}, true), (std::vector<std::string>{"x", "", "", "\xE2\x82\xAC", "x", ""}));
  // 😀 in two halves.
  EXPECT_EQ(stream(t, {7, 8}, true), (std::vector<std::string>{"", "\xF0\x9F\x98\x80", ""}));
  // A sequence that can never finish is replaced at once, not held.
  EXPECT_EQ(stream(t, {9, 10}, true), (std::vector<std::string>{"\xEF\xBF\xBD", "x", ""}));
  // Unfinished at the end: finish() flushes one U+FFFD.
  EXPECT_EQ(stream(t, {10, 11}, true), (std::vector<std::string>{"x", "", "\xEF\xBF\xBD"}));
  // An interrupted sequence: E2 82 then 'x'.
  EXPECT_EQ(stream(t, {11, 10}, true), (std::vector<std::string>{"", "\xEF\xBF\xBDx", ""}));
}

TEST(IncrementalDecoder, EqualsDecodeForEveryPrefixOrder) {
  for (bool strips : {false, true}) {
    const TableTokenizer t(kTokens, strips);
    // Every sequence of up to 3 tokens.
    const int n = static_cast<int>(kTokens.size());
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b)
        for (int c = 0; c < n; ++c)
          for (bool skip : {false, true}) {
            const std::vector<TokenId> ids = {a, b, c};
            EXPECT_EQ(join(stream(t, ids, skip)), t.decode(ids, skip))
                << "strips " << strips << " skip " << skip << " ids " << a << " " << b << " " << c;
          }
  }
}

TEST(IncrementalDecoder, SentencePieceLeadingSpace) {
  const TableTokenizer t(kTokens, true);
  // The first text token loses its leading space; a skipped <s> or an empty
  // token in front does not change that, a shown <s> does.
  EXPECT_EQ(stream(t, {1, 1}, true), (std::vector<std::string>{"Hello", " Hello", ""}));
  EXPECT_EQ(stream(t, {0, 6, 1}, true), (std::vector<std::string>{"", "", "Hello", ""}));
  EXPECT_EQ(stream(t, {0, 1}, false), (std::vector<std::string>{"<s>", " Hello", ""}));
  EXPECT_EQ(stream(t, {5, 1}, true), (std::vector<std::string>{"", " Hello", ""}));
}

TEST(IncrementalDecoder, ContinuationAfterAPromptKeepsTheSpace) {
  const TableTokenizer t(kTokens, true);
  IncrementalDecoder after_text(t);
  const TokenId prompt[] = {0, 1};
  after_text.skip_prompt(prompt);
  EXPECT_EQ(after_text.push(1), " Hello");
  // A prompt of only skipped specials (BOS) is still the start of the text.
  IncrementalDecoder after_bos(t);
  const TokenId bos_only[] = {0};
  after_bos.skip_prompt(bos_only);
  EXPECT_EQ(after_bos.push(1), "Hello");
}

TEST(IncrementalDecoder, Llama3CorpusStreamsLikeDecode) {
  FLINT_REQUIRE_ASSETS();
  const Tokenizer& t = testing::llama3_json();
  for (const std::string& text : testing::corpus_texts()) {
    const auto ids = t.encode(text, {.add_special = true, .parse_special = true});
    for (bool skip : {false, true}) EXPECT_EQ(join(stream(t, ids, skip)), t.decode(ids, skip)) << text;
  }
}

}  // namespace
}  // namespace flint
