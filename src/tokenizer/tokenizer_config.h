// tokenizer/tokenizer_config.h — what tokenizer_config.json (and friends) say
// beside the vocabulary itself: BOS/EOS handling, added tokens, chat template.
//
// Contract:
// - load_tokenizer_config(dir) reads dir/tokenizer_config.json when present
//   (all fields optional) and dir/chat_template.jinja when present (it wins over
//   the JSON's chat_template, as transformers does). A missing file gives the
//   defaults; a malformed one throws flint::Error naming the file and field.
// - Token strings may be given as plain strings or as AddedToken objects
//   ({"content": "<s>", ...}); both are accepted.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace flint {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  bool special = true;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool single_word = false;
};

struct TokenizerConfig {
  std::string dir;                       // where it was read from
  std::optional<bool> add_bos_token;     // unset: the tokenizer kind's default
  std::optional<bool> add_eos_token;
  std::optional<std::string> bos_token;  // token text, e.g. "<|begin_of_text|>"
  std::optional<std::string> eos_token;
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  std::vector<AddedToken> added_tokens;  // from "added_tokens_decoder" (id -> token)
  std::string chat_template;             // empty when none; the "default" one if several
  std::string chat_template_origin;      // file the template came from, for errors
  std::optional<bool> legacy;            // SentencePiece "legacy" flag
};

TokenizerConfig load_tokenizer_config(const std::string& dir);

}  // namespace flint
