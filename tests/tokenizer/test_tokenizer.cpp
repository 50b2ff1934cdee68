// The tokenizer interface's shared parts: UTF-8 sanitising (Python's
// errors="replace") and the byte tokenizer of dummy models.
#include "tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace flint {
namespace {

constexpr const char* R = "\xEF\xBF\xBD";  // U+FFFD

std::string reps(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += R;
  return s;
}

struct SanitizeCase {
  std::string in;
  std::string out;  // what bytes.decode("utf-8", errors="replace") gives
};

// One U+FFFD per maximal subpart of an ill-formed sequence (Unicode 3.9,
// "U+FFFD Substitution of Maximal Subparts"), which Python follows.
TEST(SanitizeUtf8, ReplacesMaximalSubpartsAsPythonDoes) {
  const std::vector<SanitizeCase> cases = {
      {"", ""},
      {"plain ascii\n\t", "plain ascii\n\t"},
      {std::string("nul\0byte", 8), std::string("nul\0byte", 8)},
      {"\xE2\x82\xAC", "\xE2\x82\xAC"},                         // € is fine
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},                 // 😀 is fine
      {"\xEF\xBF\xBD", "\xEF\xBF\xBD"},                         // U+FFFD itself
      {"\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF"},                 // U+10FFFF, the last code point
      {"\xE2\x82", reps(1)},                                    // truncated 3-byte: one subpart
      {"\xE2\x82 x", reps(1) + " x"},
      {"\xF0\x9F\x98", reps(1)},                                // truncated 4-byte
      {"ok \xF0\x9F\x98 cut", std::string("ok ") + R + " cut"},
      {"\xF0\x80", reps(2)},                                    // F0 needs 90..BF next
      {"\xF0\x80\x80", reps(3)},
      {"\xED\xA0\x80", reps(3)},                                // surrogate U+D800
      {"\xED\x9F\xBF", "\xED\x9F\xBF"},                         // U+D7FF is fine
      {"\xC0\xAF", reps(2)},                                    // overlong '/'
      {"\xC1\xBF", reps(2)},
      {"\xE0\x9F\x80", reps(3)},                                // overlong 3-byte
      {"\xE0\xA0", reps(1)},                                    // valid prefix of U+0800
      {"\xF4\x90\x80\x80", reps(4)},                            // above U+10FFFF
      {"\xF5\x80", reps(2)},
      {"\xFF\xFE", reps(2)},
      {"\x80\x80", reps(2)},                                    // lone continuations
      {"\xC2", reps(1)},
      {"\xC2\x41", std::string(R) + "A"},
      {"a\xE2\x82\xE2\x82\xAC", std::string("a") + R + "\xE2\x82\xAC"},
  };
  for (const auto& c : cases) EXPECT_EQ(sanitize_utf8(c.in), c.out) << "input of " << c.in.size() << " bytes";
}

TEST(ByteTokenizer, BytesInBytesOut) {
  const auto t = make_byte_tokenizer(300, 256, {257, 258});
  EXPECT_EQ(t->kind(), "bytes");
  EXPECT_EQ(t->vocab_size(), 300);
  EXPECT_EQ(t->encode("hi"), (std::vector<TokenId>{256, 'h', 'i'}));
  EXPECT_EQ(t->encode("hi", {.add_special = false}), (std::vector<TokenId>{'h', 'i'}));
  // Input is sanitised like every tokenizer's: invalid bytes become U+FFFD.
  EXPECT_EQ(t->encode("\xFF", {.add_special = false}), (std::vector<TokenId>{0xEF, 0xBF, 0xBD}));
  EXPECT_EQ(t->bos_id(), 256);
  EXPECT_EQ(t->eos_ids(), (std::vector<TokenId>{257, 258}));
  EXPECT_TRUE(t->is_special(256));
  EXPECT_TRUE(t->is_special(258));
  EXPECT_FALSE(t->is_special(259));
  // Ids past 255 that are not special print the byte id mod 256.
  EXPECT_EQ(t->token_bytes(256), "<|bos|>");
  EXPECT_EQ(t->token_bytes(259), std::string(1, '\x03'));
  const std::vector<TokenId> ids = {256, 'o', 'k', 257};
  EXPECT_EQ(t->decode(ids), "<|bos|>ok<|eos|>");
  EXPECT_EQ(t->decode(ids, /*skip_special=*/true), "ok");
  EXPECT_EQ(t->token_to_id("<|bos|>"), 256);
  EXPECT_EQ(t->token_to_id("a"), 'a');
  EXPECT_FALSE(t->token_to_id("ab").has_value());
  EXPECT_THROW((void)t->token_bytes(300), Error);
  EXPECT_THROW((void)t->token_bytes(-1), Error);
  EXPECT_THROW(make_byte_tokenizer(100, std::nullopt, {}), Error);
  EXPECT_THROW(make_byte_tokenizer(300, 300, {}), Error);
  EXPECT_THROW(make_byte_tokenizer(300, std::nullopt, {-2}), Error);
  EXPECT_EQ(make_byte_tokenizer(256, std::nullopt, {})->encode("x"), (std::vector<TokenId>{'x'}));
}

}  // namespace
}  // namespace flint
