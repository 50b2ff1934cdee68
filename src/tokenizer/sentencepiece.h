// tokenizer/sentencepiece.h — SentencePiece tokenizers (Llama 2, CodeLlama), in
// both forms a checkpoint may carry them.
//
// Contract:
// - make_sentencepiece_tokenizer reads a protobuf tokenizer.model and encodes
//   with libsentencepiece, giving the ids of transformers 4's slow
//   (SentencePiece-backed) LlamaTokenizer — the segmentation the model was
//   trained with. make_sentencepiece_json_tokenizer reads the HF
//   tokenizer.json form (BPE with byte_fallback over "▁"-escaped text) and
//   encodes natively, giving the ids of the tokenizers library on that file.
//   The two agree except where a converted tokenizer.json differs from
//   sentencepiece: transformers 5's conversion ranks Llama 2's merges by piece
//   id and prepends no "▁" before a leading space, which changes runs of
//   spaces (docs/TOKENIZERS.md). Both:
//   * BOS/EOS from TokenizerConfig::add_bos_token / add_eos_token (defaults
//     true / false; the JSON form falls back to its TemplateProcessing);
//   * special-token text ("<s>", "</s>", "<unk>", control pieces, special added
//     tokens) is a token only with EncodeOptions::parse_special; user-defined
//     pieces are always split out;
//   * the text after an added token gets a "▁" prefix of its own when legacy
//     (HF's Prepend("▁") normalizer, sentencepiece's add_dummy_prefix); with
//     legacy = false it gets none. The protobuf form reads
//     TokenizerConfig::legacy (unset: not legacy); not legacy, the input as a
//     whole gets one "▁" in front, as the slow tokenizer does, so " Hello" is
//     ▁ ▁Hello there. The JSON form does what its normalizer / pre_tokenizer
//     say (Metaspace prepend_scheme "first" prepends only when no space leads).
// - decode() is transformers' decode: "▁" -> " ", byte pieces fused to UTF-8
//   (a bad run gives U+FFFD per byte), one leading space stripped; special
//   tokens (control pieces, <unk>) print their text unless skipped.
// - token_bytes(id): the piece with "▁" as " "; "<0xAB>" is the byte 0xAB.
//   token_piece(id): the piece as spelled in the vocabulary ("▁Hello").
// - Malformed files throw flint::Error naming the file (and JSON field).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace flint {

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path, const TokenizerConfig& config);

// `path` is only for error messages.
std::unique_ptr<Tokenizer> make_sentencepiece_json_tokenizer(const nlohmann::json& tokenizer_json,
                                                             const std::string& path, const TokenizerConfig& config);

// Whether a tokenizer.json is the SentencePiece-style BPE (byte_fallback, "▁"
// via a Metaspace pre-tokenizer or a Prepend/Replace normalizer, decoder with
// Replace("▁")/ByteFallback) rather than byte-level BPE. Never throws.
bool looks_like_sentencepiece_json(const nlohmann::json& tokenizer_json);

// What a tokenizer.model says, read from its protobuf: the pieces (with score
// and type) and the normalizer_spec fields that decide how the dummy prefix
// and spaces behave. For checks, `flint info` and converters.
struct SentencePieceNormalizerSpec {
  std::string name;  // "identity", "nmt_nfkc", ...
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};
struct SentencePieceModelPiece {
  enum class Type : int { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };
  std::string text;
  float score = 0.0f;
  Type type = Type::normal;
};
struct SentencePieceModelInfo {
  std::vector<SentencePieceModelPiece> pieces;  // in id order
  SentencePieceNormalizerSpec normalizer;
};
// Throws flint::Error naming `path` when the bytes are not a model proto.
SentencePieceModelInfo read_sentencepiece_model(std::string_view serialized, const std::string& path);

}  // namespace flint
