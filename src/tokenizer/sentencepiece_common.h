// tokenizer/sentencepiece_common.h — what the two SentencePiece forms share
// (internal to the tokenizer module; users go through sentencepiece.h).
//
// Contract:
// - SpmPieceTable owns id -> piece text, kind and special flag, and gives
//   token_bytes() and decode() with the semantics of HF's Llama decoder chain
//   Replace("▁", " ") + ByteFallback + Fuse + Strip(" ", 1, 0): a run of
//   "<0xNN>" pieces becomes its bytes when they are valid UTF-8 and one U+FFFD
//   per byte otherwise; one leading space of the whole text is stripped.
// - AddedTokenSplitter cuts text at added-token texts, leftmost-longest, as
//   tokenizers' AddedVocabulary does: special entries only when asked to,
//   non-special (user-defined) entries always.
// - SpmTokenizerBase implements the whole Tokenizer interface except how one
//   plain-text segment becomes ids (the two forms differ only there).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace flint::spm {

// "▁" (U+2581), the SentencePiece stand-in for a space.
inline constexpr std::string_view kSpaceMark = "\xE2\x96\x81";

// What an unset TokenizerConfig::legacy means for the protobuf form: not
// legacy, as transformers 5 reads it and as Llama 2 checkpoints' configs
// usually say ("legacy": false); transformers 4 read an unset flag as
// legacy=True. The two differ only in the text right after special-token
// text parsed from the input.
inline constexpr bool kDefaultLegacy = false;

enum class PieceType : uint8_t { normal, unknown, control, user_defined, unused, byte };

struct Piece {
  std::string text;
  PieceType type = PieceType::normal;
  bool special = false;  // dropped by decode(skip_special), reported by is_special()
};

// "<0xAB>" -> 0xAB; anything else -> nullopt (HF's ByteFallback test).
std::optional<uint8_t> byte_piece_value(std::string_view piece);
// Every " " replaced by "▁".
std::string escape_spaces(std::string_view text);

class SpmPieceTable {
 public:
  TokenId add(Piece piece);  // returns the new id
  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  const Piece& at(TokenId id) const;  // throws flint::Error when out of range
  Piece& mutable_at(TokenId id);
  std::optional<TokenId> find(std::string_view text) const;
  // Re-points the text index after a piece's text changed.
  void reindex(TokenId id, const std::string& old_text);

  std::string token_bytes(TokenId id) const;
  std::string decode(std::span<const TokenId> ids, bool skip_special, bool strip_leading_space) const;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<Piece> pieces_;
  std::unordered_map<std::string, TokenId, Hash, std::equal_to<>> index_;
};

struct AddedTokenRule {
  std::string text;
  TokenId id = 0;
  bool special = true;
  bool lstrip = false;  // the match swallows whitespace on its left
  bool rstrip = false;  // ... and on its right
};

class AddedTokenSplitter {
 public:
  struct Segment {
    std::string_view text;        // plain text when token is empty
    std::optional<TokenId> token;  // an added token
    size_t offset = 0;            // where text starts in the input
  };

  // A rule for a text that already has one replaces it (config over model).
  void add(AddedTokenRule rule);
  bool empty() const { return rules_.empty(); }
  std::vector<Segment> split(std::string_view text, bool include_special) const;

 private:
  std::vector<AddedTokenRule> rules_;
  std::vector<std::vector<uint32_t>> by_first_byte_ = std::vector<std::vector<uint32_t>>(256);
};

// BOS/EOS policy, resolved once at load.
struct SpecialTokenPolicy {
  std::optional<TokenId> bos;
  std::vector<TokenId> eos;
  bool add_bos = true;
  bool add_eos = false;
};

class SpmTokenizerBase : public Tokenizer {
 public:
  std::vector<TokenId> encode(std::string_view text, const EncodeOptions& options = {}) const override;
  std::string token_bytes(TokenId id) const override { return pieces_.token_bytes(id); }
  // The piece as the vocabulary spells it ("▁Hello", "<0x0A>"): transformers'
  // convert_ids_to_tokens.
  std::string token_piece(TokenId id) const override { return pieces_.at(id).text; }
  int32_t vocab_size() const override { return pieces_.size(); }
  bool is_special(TokenId id) const override { return pieces_.at(id).special; }
  std::optional<TokenId> token_to_id(std::string_view token) const override { return pieces_.find(token); }
  std::optional<TokenId> bos_id() const override { return policy_.bos; }
  std::vector<TokenId> eos_ids() const override { return policy_.eos; }
  std::string decode(std::span<const TokenId> ids, bool skip_special = false) const override {
    return pieces_.decode(ids, skip_special, strip_leading_space_);
  }
  bool strips_leading_space() const override { return strip_leading_space_; }

 protected:
  // Appends the ids of one stretch of plain text (no added tokens inside).
  // `at_start` says whether it begins the input (Metaspace "first" scheme).
  virtual void encode_segment(std::string_view text, bool at_start, std::vector<TokenId>& out) const = 0;

  // tokenizer_config.json's added_tokens_decoder: flags for tokens the model
  // has (same id, same text) and tokens appended after them (a pad token at
  // id 32000).
  void add_config_tokens(const TokenizerConfig& config);

  SpmPieceTable pieces_;
  AddedTokenSplitter splitter_;
  SpecialTokenPolicy policy_;
  bool strip_leading_space_ = true;
};

}  // namespace flint::spm
