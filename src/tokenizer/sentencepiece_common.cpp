#include "tokenizer/sentencepiece_common.h"

#include <algorithm>

#include "core/error.h"

namespace flint::spm {
namespace {

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// Whether `bytes` is well-formed UTF-8 (what Rust's String::from_utf8 accepts).
bool valid_utf8(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    const auto b = static_cast<uint8_t>(bytes[i]);
    size_t len = 0;
    uint32_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b < 0x80) {
      ++i;
      continue;
    } else if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;
      if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;
      if (b == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (i + len > bytes.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<uint8_t>(bytes[i + k]);
      const uint32_t l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (c < l || c > h) return false;
    }
    i += len;
  }
  return true;
}

void replace_space_marks(std::string_view piece, std::string& out) {
  size_t i = 0;
  while (i < piece.size()) {
    const size_t at = piece.find(kSpaceMark, i);
    if (at == std::string_view::npos) {
      out.append(piece.substr(i));
      return;
    }
    out.append(piece.substr(i, at - i));
    out.push_back(' ');
    i = at + kSpaceMark.size();
  }
}

}  // namespace

std::optional<uint8_t> byte_piece_value(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece.back() != '>') return std::nullopt;
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(piece[3]), lo = hex(piece[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}

std::string escape_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  for (char c : text) {
    if (c == ' ')
      out.append(kSpaceMark);
    else
      out.push_back(c);
  }
  return out;
}

TokenId SpmPieceTable::add(Piece piece) {
  const auto id = static_cast<TokenId>(pieces_.size());
  // The first piece with a given text wins lookups, as sentencepiece's does.
  index_.emplace(piece.text, id);
  pieces_.push_back(std::move(piece));
  return id;
}

const Piece& SpmPieceTable::at(TokenId id) const {
  if (id < 0 || id >= size()) fail("token id {} is out of range (vocabulary size {})", id, size());
  return pieces_[static_cast<size_t>(id)];
}

Piece& SpmPieceTable::mutable_at(TokenId id) { return const_cast<Piece&>(at(id)); }

std::optional<TokenId> SpmPieceTable::find(std::string_view text) const {
  const auto it = index_.find(text);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

void SpmPieceTable::reindex(TokenId id, const std::string& old_text) {
  const auto it = index_.find(old_text);
  if (it != index_.end() && it->second == id) index_.erase(it);
  index_[at(id).text] = id;
}

std::string SpmPieceTable::token_bytes(TokenId id) const {
  const Piece& piece = at(id);
  if (auto byte = byte_piece_value(piece.text)) return std::string(1, static_cast<char>(*byte));
  std::string out;
  replace_space_marks(piece.text, out);
  return out;
}

std::string SpmPieceTable::decode(std::span<const TokenId> ids, bool skip_special, bool strip_leading_space) const {
  std::string out;
  std::string run;  // bytes of consecutive "<0xNN>" pieces
  auto flush_run = [&] {
    if (run.empty()) return;
    if (valid_utf8(run)) {
      out += run;
    } else {
      // tokenizers' ByteFallback gives one U+FFFD per byte of a bad run, not
      // one per maximal invalid subpart.
      for (size_t k = 0; k < run.size(); ++k) out += "\xEF\xBF\xBD";
    }
    run.clear();
  };
  for (TokenId id : ids) {
    const Piece& piece = at(id);
    if (skip_special && piece.special) continue;
    if (auto byte = byte_piece_value(piece.text)) {
      run.push_back(static_cast<char>(*byte));
      continue;
    }
    flush_run();
    replace_space_marks(piece.text, out);
  }
  flush_run();
  if (strip_leading_space && !out.empty() && out.front() == ' ') out.erase(0, 1);
  return out;
}

void AddedTokenSplitter::add(AddedTokenRule rule) {
  if (rule.text.empty()) return;
  for (auto& existing : rules_) {
    if (existing.text == rule.text) {
      existing = std::move(rule);
      return;
    }
  }
  const auto first = static_cast<uint8_t>(rule.text.front());
  by_first_byte_[first].push_back(static_cast<uint32_t>(rules_.size()));
  rules_.push_back(std::move(rule));
}

std::vector<AddedTokenSplitter::Segment> AddedTokenSplitter::split(std::string_view text,
                                                                    bool include_special) const {
  std::vector<Segment> segments;
  size_t plain_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const AddedTokenRule* best = nullptr;
    for (uint32_t r : by_first_byte_[static_cast<uint8_t>(text[i])]) {
      const AddedTokenRule& rule = rules_[r];
      if (rule.special && !include_special) continue;
      if (best && rule.text.size() <= best->text.size()) continue;
      if (text.substr(i).starts_with(rule.text)) best = &rule;
    }
    if (!best) {
      ++i;
      continue;
    }
    size_t start = i, end = i + best->text.size();
    if (best->lstrip)
      while (start > plain_start && is_ascii_space(text[start - 1])) --start;
    if (best->rstrip)
      while (end < text.size() && is_ascii_space(text[end])) ++end;
    if (start > plain_start)
      segments.push_back({text.substr(plain_start, start - plain_start), std::nullopt, plain_start});
    segments.push_back({text.substr(start, end - start), best->id, start});
    plain_start = i = end;
  }
  if (plain_start < text.size()) segments.push_back({text.substr(plain_start), std::nullopt, plain_start});
  return segments;
}

void SpmTokenizerBase::add_config_tokens(const TokenizerConfig& config) {
  const ErrorContext where{.file = config.dir.empty() ? "tokenizer_config.json" : config.dir + "/tokenizer_config.json",
                           .field = "added_tokens_decoder"};
  std::vector<AddedToken> tokens = config.added_tokens;
  std::sort(tokens.begin(), tokens.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (const auto& token : tokens) {
    FLINT_CHECK(token.id >= 0 && token.id <= pieces_.size(), where,
                "token '{}' has id {}, beyond the model's {} tokens and the ones added after them", token.content,
                token.id, pieces_.size());
    FLINT_CHECK(!token.content.empty(), where, "token {} has empty content", token.id);
    if (token.id == pieces_.size()) {
      pieces_.add({.text = token.content,
                   .type = token.special ? PieceType::control : PieceType::user_defined,
                   .special = token.special});
    } else {
      Piece& piece = pieces_.mutable_at(token.id);
      FLINT_CHECK(piece.text == token.content, where, "token {} is '{}' here but '{}' in the model", token.id,
                  token.content, piece.text);
      piece.special = token.special;
    }
    splitter_.add(
        {.text = token.content, .id = token.id, .special = token.special, .lstrip = token.lstrip, .rstrip = token.rstrip});
  }
}

std::vector<TokenId> SpmTokenizerBase::encode(std::string_view text, const EncodeOptions& options) const {
  // transformers only ever sees valid text (a Python str); bad bytes become
  // U+FFFD first so both forms and HF agree on what is being tokenized.
  const std::string clean = sanitize_utf8(text);
  std::vector<TokenId> ids;
  ids.reserve(clean.size() / 3 + 4);
  if (options.add_special && policy_.add_bos && policy_.bos) ids.push_back(*policy_.bos);
  if (splitter_.empty()) {
    if (!clean.empty()) encode_segment(clean, true, ids);
  } else {
    for (const auto& segment : splitter_.split(clean, options.parse_special)) {
      if (segment.token)
        ids.push_back(*segment.token);
      else
        encode_segment(segment.text, segment.offset == 0, ids);
    }
  }
  if (options.add_special && policy_.add_eos && !policy_.eos.empty()) ids.push_back(policy_.eos.front());
  return ids;
}

}  // namespace flint::spm
