#include "tokenizer/added_tokens.h"

#include <algorithm>

namespace flint {
namespace {

// UTF-8 of the non-ASCII White_Space characters (Rust's char::is_whitespace,
// which HF uses for lstrip/rstrip).
constexpr std::string_view kWideSpaces[] = {
    "\xC2\x85",     "\xC2\xA0",     "\xE1\x9A\x80", "\xE2\x80\x80", "\xE2\x80\x81", "\xE2\x80\x82",
    "\xE2\x80\x83", "\xE2\x80\x84", "\xE2\x80\x85", "\xE2\x80\x86", "\xE2\x80\x87", "\xE2\x80\x88",
    "\xE2\x80\x89", "\xE2\x80\x8A", "\xE2\x80\xA8", "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F",
    "\xE3\x80\x80"};

bool ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

size_t white_space_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return 0;
  if (ascii_space(text[pos])) return 1;
  for (std::string_view w : kWideSpaces)
    if (text.substr(pos, w.size()) == w) return w.size();
  return 0;
}

size_t white_space_before(std::string_view text, size_t pos) {
  if (pos == 0 || pos > text.size()) return 0;
  if (ascii_space(text[pos - 1])) return 1;
  for (std::string_view w : kWideSpaces)
    if (pos >= w.size() && text.substr(pos - w.size(), w.size()) == w) return w.size();
  return 0;
}

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& content = tokens_[t].content;
    if (content.empty()) continue;  // HF ignores empty added tokens too
    if (!tokens_[t].special) has_plain_ = true;
    first_byte_[static_cast<unsigned char>(content[0])] = true;
    int32_t node = 0;
    for (char c : content) {
      int32_t next = child(node, static_cast<unsigned char>(c));
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_[static_cast<size_t>(node)].children.push_back({static_cast<unsigned char>(c), next});
        nodes_.emplace_back();
      }
      node = next;
    }
    // The same content twice: the later entry wins, as in HF's added vocabulary map.
    nodes_[static_cast<size_t>(node)].token = static_cast<int32_t>(t);
  }
}

int32_t AddedTokenMatcher::child(int32_t node, unsigned char byte) const {
  for (const auto& [b, next] : nodes_[static_cast<size_t>(node)].children)
    if (b == byte) return next;
  return -1;
}

void AddedTokenMatcher::split(std::string_view text, bool parse_special, std::vector<Segment>& out) const {
  out.clear();
  if (!has_plain_ && !parse_special) {
    if (!text.empty()) out.push_back({text});
    return;
  }
  size_t plain_start = 0;  // start of the text not yet emitted
  size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    int32_t best = -1;
    size_t best_end = 0;
    int32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      node = child(node, static_cast<unsigned char>(text[i]));
      if (node < 0) break;
      const int32_t t = nodes_[static_cast<size_t>(node)].token;
      if (t < 0) continue;
      const AddedToken& token = tokens_[static_cast<size_t>(t)];
      if (token.special && !parse_special) continue;
      if (token.single_word && ((pos > 0 && word_char(text[pos - 1])) || (i + 1 < text.size() && word_char(text[i + 1]))))
        continue;
      best = t;
      best_end = i + 1;
    }
    if (best < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[static_cast<size_t>(best)];
    size_t begin = pos, end = best_end;
    if (token.lstrip)
      while (size_t w = white_space_before(text, begin)) {
        if (begin - w < plain_start) break;
        begin -= w;
      }
    if (token.rstrip)
      while (size_t w = white_space_at(text, end)) end += w;
    if (begin > plain_start) out.push_back({text.substr(plain_start, begin - plain_start)});
    out.push_back({{}, token.id});
    plain_start = pos = end;
  }
  if (plain_start < text.size()) out.push_back({text.substr(plain_start)});
}

}  // namespace flint
