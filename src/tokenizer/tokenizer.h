// tokenizer/tokenizer.h — text <-> token ids, byte-exact with Hugging Face.
//
// Contract:
// - encode() gives the ids transformers' tokenizer gives for the same text and
//   options (AutoTokenizer(...)(text, add_special_tokens=...)).
// - Special-token text ("<|eot_id|>") inside the input is parsed as the special
//   token only when EncodeOptions::parse_special is set; otherwise it is plain
//   text, as transformers does with split_special_tokens=True.
// - decode() maps ids back to bytes (a token is a byte string, not necessarily
//   valid UTF-8 on its own); decode of a whole sequence gives UTF-8 with invalid
//   sequences replaced by U+FFFD, as HF's decode does.
// - Out-of-range ids are errors (flint::Error), never undefined behaviour.
// - Thread-safe for concurrent const use once loaded.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flint {

using TokenId = int32_t;

struct EncodeOptions {
  bool add_special = true;     // BOS/EOS as the tokenizer config says (add_bos_token, post-processor)
  bool parse_special = false;  // recognise special-token text inside the input
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const = 0;
  // The raw bytes of one token (special tokens give their text).
  virtual std::string token_bytes(TokenId id) const = 0;
  // The token as the tokenizer's vocabulary spells it, for display: HF's
  // convert_ids_to_tokens ("Ġworld" for byte-level BPE, "▁world" for
  // SentencePiece). Defaults to token_bytes().
  virtual std::string token_piece(TokenId id) const { return token_bytes(id); }
  virtual int32_t vocab_size() const = 0;  // including added/special tokens
  virtual bool is_special(TokenId id) const = 0;
  virtual std::optional<TokenId> token_to_id(std::string_view token) const = 0;

  virtual std::optional<TokenId> bos_id() const = 0;
  virtual std::vector<TokenId> eos_ids() const = 0;  // every id that ends generation
  virtual std::string kind() const = 0;               // "bpe", "tiktoken", "sentencepiece", "bytes", ...

  // Whole-sequence decode (UTF-8, invalid bytes as U+FFFD).
  virtual std::string decode(std::span<const TokenId> ids, bool skip_special = false) const;

  // SentencePiece strips the one space its encoder puts in front of the text
  // when decoding from the first token; byte-level BPE does not.
  virtual bool strips_leading_space() const { return false; }
};

// Loads the tokenizer of a model directory: tokenizer.json (HF), tokenizer.model
// (tiktoken rank file or SentencePiece protobuf), with tokenizer_config.json for
// BOS/EOS, added tokens and the chat template. Throws flint::Error naming the
// file at fault.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

// The fallback of dummy models with no tokenizer: ids 0..255 are the bytes
// 0..255; every other non-special id decodes to the byte (id mod 256) so that
// any generated id prints something. bos/eos come from the model config.
std::unique_ptr<Tokenizer> make_byte_tokenizer(int32_t vocab_size, std::optional<TokenId> bos,
                                               std::vector<TokenId> eos);

// Streams text while ids arrive: push() returns the new complete UTF-8 text and
// holds back bytes of a character that is not finished yet. Handles byte
// fallback tokens (<0xE2>) and SentencePiece's leading-space rule, so that the
// concatenation of all pushes plus finish() equals decode(all ids).
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = true);
  std::string push(TokenId id);
  // Continues after text the caller already has (a prompt): its ids are taken
  // as streamed, so the first generated token keeps its leading space.
  void skip_prompt(std::span<const TokenId> prompt);
  std::string finish();  // flushes held-back bytes (incomplete UTF-8 -> U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;  // bytes of an unfinished UTF-8 sequence
};

// Replaces invalid UTF-8 with U+FFFD (one per maximal invalid subpart, as
// Python's bytes.decode(errors="replace") does).
std::string sanitize_utf8(std::string_view bytes);

}  // namespace flint
