// tokenizer/byte_level_bpe.h — the byte-level BPE tokenizer of Llama 3, built
// from a HF tokenizer.json or from Meta's tiktoken tokenizer.model (internal to
// the tokenizer module; users go through load_tokenizer()).
//
// Contract:
// - encode(): text -> sanitize_utf8 (invalid bytes become U+FFFD, as Python's
//   bytes.decode(errors="replace") would before HF sees a str) -> split at
//   added tokens (special ones only with parse_special) -> regex pre-tokens ->
//   BPE per pre-token; the post-processor's prefix/suffix ids (BOS) when
//   add_special.
// - BOS/EOS: when tokenizer_config.json sets add_bos_token or add_eos_token,
//   they alone decide the prefix/suffix (transformers 5 rebuilds the
//   post-processor from them); otherwise tokenizer.json's TemplateProcessing
//   does (tiktoken: <|begin_of_text|>).
// - eos_ids(): the config's eos_token, then Llama 3's <|end_of_text|>,
//   <|eom_id|>, <|eot_id|> when the vocabulary has them.
// - token_bytes(): raw token bytes; added tokens give their text.
//   token_piece(): HF's token string (GPT-2 byte-level spelling).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace flint {

struct ByteLevelBpeSpec {
  std::string origin;  // the file it was read from, for errors
  std::string kind;    // "bpe" (tokenizer.json) or "tiktoken"
  BpeModel model;
  PreTokenizer pretokenizer;
  bool add_prefix_space = false;          // ByteLevel(add_prefix_space): " " before each text segment
  std::vector<AddedToken> added_tokens;   // special and not
  std::vector<TokenId> template_prefix;   // post-processor "single": ids before the text
  std::vector<TokenId> template_suffix;   // ... and after it
};

std::unique_ptr<Tokenizer> make_byte_level_bpe_tokenizer(ByteLevelBpeSpec spec, const TokenizerConfig& config);

// HF tokenizer.json with a BPE model and ByteLevel pre-tokenizer/decoder.
// `path` names the file in errors.
std::unique_ptr<Tokenizer> make_tokenizer_json_bpe(const nlohmann::json& tokenizer_json, const std::string& path,
                                                   const TokenizerConfig& config);
// Whether a tokenizer.json is byte-level BPE (ByteLevel pre-tokenizer or
// decoder). Never throws.
bool looks_like_byte_level_json(const nlohmann::json& tokenizer_json);

// Meta's tiktoken rank file ("<base64 token> <rank>" per line).
std::unique_ptr<Tokenizer> make_tiktoken_tokenizer(const std::string& path, const TokenizerConfig& config);
// Whether file contents look like a tiktoken rank file rather than a protobuf.
bool looks_like_tiktoken(std::string_view contents);
// Meta's Llama 3 special tokens (names as tokenizer.json of Llama 3.1 has them),
// with ids first_id, first_id + 1, ...
std::vector<AddedToken> llama3_special_tokens(TokenId first_id);

}  // namespace flint
