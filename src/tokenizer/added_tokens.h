// tokenizer/added_tokens.h — finds added tokens (special or not) inside text
// before the model sees it, as HF tokenizers' AddedVocabulary does.
//
// Contract:
// - split() cuts the text into plain segments and added-token matches,
//   scanning left to right and taking the longest token that starts at the
//   leftmost possible position (HF's leftmost-longest rule).
// - Special tokens are candidates only when parse_special is set; non-special
//   added tokens always are.
// - lstrip/rstrip tokens swallow the Unicode white space beside them (it is
//   not passed on as text); single_word tokens match only between non-word
//   characters (ASCII letters, digits and '_' are word characters).
// - Immutable after construction: thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer_config.h"

namespace flint {

class AddedTokenMatcher {
 public:
  struct Segment {
    std::string_view text;  // plain text (when id < 0)
    TokenId id = -1;        // an added token's id
  };

  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  void split(std::string_view text, bool parse_special, std::vector<Segment>& out) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into tokens_ of the token ending here
  };
  int32_t child(int32_t node, unsigned char byte) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;  // nodes_[0] is the root
  bool first_byte_[256] = {};
  bool has_plain_ = false;  // any non-special token (always matched)
};

// Length of the Unicode White_Space character starting at / ending at byte
// `pos` of valid UTF-8 text (0 if none).
size_t white_space_at(std::string_view text, size_t pos);
size_t white_space_before(std::string_view text, size_t pos);

}  // namespace flint
