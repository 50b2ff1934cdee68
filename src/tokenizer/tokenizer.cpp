#include "tokenizer/tokenizer.h"

#include <fmt/format.h>

#include "core/error.h"

namespace flint {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Bounds of the second byte of a well-formed sequence led by `lead` (Unicode
// Table 3-7): E0/ED/F0/F4 narrow it to exclude overlongs, surrogates and
// code points above U+10FFFF.
struct LeadInfo {
  int length = 0;  // 0: not a lead byte
  unsigned char second_lo = 0x80, second_hi = 0xBF;
};

LeadInfo lead_info(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return {2};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b >= 0xE1 && b <= 0xEF) return {3};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b >= 0xF1 && b <= 0xF3) return {4};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {};
}

// Number of bytes at `p` that form a valid (possibly unfinished) prefix of the
// sequence led by s[p]; equals info.length for a complete character.
size_t valid_prefix(std::string_view s, size_t p, const LeadInfo& info) {
  size_t n = 1;
  while (n < static_cast<size_t>(info.length) && p + n < s.size()) {
    const auto c = static_cast<unsigned char>(s[p + n]);
    const bool ok = n == 1 ? (c >= info.second_lo && c <= info.second_hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) break;
    ++n;
  }
  return n;
}

// Length of a trailing unfinished-but-valid character that more bytes could
// complete (0 if none): those bytes must be held back by a streaming decoder.
size_t unfinished_tail(std::string_view s) {
  for (size_t k = 1; k <= 3 && k <= s.size(); ++k) {
    const size_t p = s.size() - k;
    const LeadInfo info = lead_info(static_cast<unsigned char>(s[p]));
    if (info.length == 0) continue;
    return static_cast<size_t>(info.length) > k && valid_prefix(s, p, info) == k ? k : 0;
  }
  return 0;
}

}  // namespace

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      size_t j = i + 1;
      while (j < s.size() && static_cast<unsigned char>(s[j]) < 0x80) ++j;
      out.append(s.substr(i, j - i));
      i = j;
      continue;
    }
    const LeadInfo info = lead_info(b);
    if (info.length == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    const size_t n = valid_prefix(s, i, info);
    if (n == static_cast<size_t>(info.length)) {
      out.append(s.substr(i, n));
    } else {
      out += kReplacement;  // one U+FFFD per maximal subpart
    }
    i += n;
  }
  return out;
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special) const {
  std::string bytes;
  for (TokenId id : ids) {
    if (skip_special && is_special(id)) continue;
    bytes += token_bytes(id);
  }
  if (strips_leading_space() && !bytes.empty() && bytes.front() == ' ') bytes.erase(0, 1);
  return sanitize_utf8(bytes);
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string IncrementalDecoder::push(TokenId id) {
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  std::string bytes = tokenizer_.token_bytes(id);
  // SentencePiece drops the one space at the very start of the decoded stream;
  // tokens that decode to nothing do not end the "very start".
  if (first_ && !bytes.empty()) {
    if (tokenizer_.strips_leading_space() && bytes.front() == ' ') bytes.erase(0, 1);
    first_ = false;
  }
  pending_ += bytes;
  const size_t hold = unfinished_tail(pending_);
  std::string out = sanitize_utf8(std::string_view(pending_).substr(0, pending_.size() - hold));
  pending_.erase(0, pending_.size() - hold);
  return out;
}

void IncrementalDecoder::skip_prompt(std::span<const TokenId> prompt) {
  for (TokenId id : prompt) push(id);
  pending_.clear();  // the prompt is the caller's text; only new bytes stream
}

std::string IncrementalDecoder::finish() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

namespace {

// Dummy models' tokenizer: one id per byte.
class ByteTokenizer final : public Tokenizer {
 public:
  ByteTokenizer(int32_t vocab_size, std::optional<TokenId> bos, std::vector<TokenId> eos)
      : vocab_size_(vocab_size), bos_(bos), eos_(std::move(eos)) {}

  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options) const override {
    const std::string clean = sanitize_utf8(text);
    std::vector<TokenId> ids;
    ids.reserve(clean.size() + 1);
    if (options.add_special && bos_) ids.push_back(*bos_);
    for (char c : clean) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }

  std::string token_bytes(TokenId id) const override {
    check(id);
    if (bos_ && id == *bos_) return "<|bos|>";
    if (is_eos(id)) return "<|eos|>";
    return std::string(1, static_cast<char>(id % 256));
  }

  int32_t vocab_size() const override { return vocab_size_; }
  bool is_special(TokenId id) const override { return (bos_ && id == *bos_) || is_eos(id); }

  std::optional<TokenId> token_to_id(std::string_view token) const override {
    if (bos_ && token == "<|bos|>") return bos_;
    if (!eos_.empty() && token == "<|eos|>") return eos_.front();
    if (token.size() == 1 && static_cast<unsigned char>(token[0]) < vocab_size_)
      return static_cast<unsigned char>(token[0]);
    return std::nullopt;
  }

  std::optional<TokenId> bos_id() const override { return bos_; }
  std::vector<TokenId> eos_ids() const override { return eos_; }
  std::string kind() const override { return "bytes"; }

 private:
  bool is_eos(TokenId id) const {
    for (TokenId e : eos_)
      if (e == id) return true;
    return false;
  }
  void check(TokenId id) const {
    FLINT_CHECK(id >= 0 && id < vocab_size_, ErrorContext{}, "token id {} out of range [0, {})", id, vocab_size_);
  }

  int32_t vocab_size_;
  std::optional<TokenId> bos_;
  std::vector<TokenId> eos_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_tokenizer(int32_t vocab_size, std::optional<TokenId> bos,
                                               std::vector<TokenId> eos) {
  FLINT_CHECK(vocab_size >= 256, ErrorContext{.field = "vocab_size"},
              "byte tokenizer needs a vocabulary of at least 256 ids, got {}", vocab_size);
  FLINT_CHECK(!bos || (*bos >= 0 && *bos < vocab_size), ErrorContext{.field = "bos_token_id"},
              "bos id {} out of range [0, {})", bos.value_or(0), vocab_size);
  for (TokenId e : eos)
    FLINT_CHECK(e >= 0 && e < vocab_size, ErrorContext{.field = "eos_token_id"}, "eos id {} out of range [0, {})",
                e, vocab_size);
  return std::make_unique<ByteTokenizer>(vocab_size, bos, std::move(eos));
}

}  // namespace flint
