// tokenizer/sentencepiece.h — SentencePiece BPE tokenizers (Llama 2, CodeLlama),
// in both forms a checkpoint may carry them, with transformers 5's ids.
//
// Contract:
// - make_sentencepiece_json_tokenizer reads the HF tokenizer.json form (BPE
//   with byte_fallback over "▁"-escaped text: a Metaspace pre-tokenizer, or a
//   Prepend/Replace normalizer in older files) and runs it as the `tokenizers`
//   library does: added tokens split out first, then the normalizer /
//   Metaspace per remaining segment, then BPE (lowest merge rank first, byte
//   pieces for characters not in the vocabulary).
// - make_sentencepiece_tokenizer reads a protobuf tokenizer.model and does
//   what transformers 5's LlamaTokenizer does with one: converts it with
//   sentencepiece_model_to_tokenizer_json() and runs that through the same
//   engine. Its ids are transformers 5's, which are NOT libsentencepiece's on
//   runs of spaces, a leading space and special-token text (" Hello" ->
//   ▁Hello; "  a  b" -> ▁▁ a ▁▁ b). Only BPE models are accepted: a Unigram /
//   word / char model throws. libsentencepiece is not used.
// - Both forms:
//   * BOS/EOS from TokenizerConfig::add_bos_token / add_eos_token (defaults
//     true / false; the JSON form falls back to its TemplateProcessing);
//   * special-token text ("<s>", "</s>", "<unk>", control pieces, special added
//     tokens) is a token only with EncodeOptions::parse_special; user-defined
//     pieces and non-special added tokens are always split out;
//   * Metaspace: spaces become "▁"; with prepend_scheme "first" (the
//     tokenizer.model form unless TokenizerConfig::legacy is true) a "▁" is
//     put in front of the text only when it does not already begin with a
//     space and only at the very start of the input, so " Hello" and "Hello"
//     encode alike and the text after an added token gets none; with
//     "always" (legacy = true) every segment between added tokens gets one
//     unless it begins with a space.
// - decode() is transformers' decode through the decoder Replace("▁", " ") +
//   ByteFallback + Fuse + Strip(" ", 1, 0): byte pieces fused to UTF-8 (a bad
//   run gives U+FFFD per byte), one leading space of the whole text stripped
//   (a tokenizer.json: only when its decoder has the Strip or a prepending
//   Metaspace); special tokens print their text unless skipped (then they are
//   dropped before the strip). No clean-up of tokenization spaces (Llama's
//   clean_up_tokenization_spaces is false). IncrementalDecoder streams it.
// - token_bytes(id): the piece with "▁" as " "; "<0xAB>" is the byte 0xAB.
//   token_piece(id): the piece as the vocabulary spells it (HF's
//   convert_ids_to_tokens).
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
// and type), the model type and the normalizer_spec fields. For the
// converter, checks and `flint info`. The normalizer_spec is reported, not
// applied: transformers 5's LlamaTokenizer ignores it too.
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
  enum class ModelType : int { unigram = 1, bpe = 2, word = 3, character = 4 };
  std::vector<SentencePieceModelPiece> pieces;  // in id order
  ModelType model_type = ModelType::unigram;    // trainer_spec.model_type (the proto's default when absent)
  SentencePieceNormalizerSpec normalizer;
};
// Throws flint::Error naming `path` when the bytes are not a model proto.
SentencePieceModelInfo read_sentencepiece_model(std::string_view serialized, const std::string& path);

// The tokenizer.json transformers 5 builds from a BPE tokenizer.model for
// LlamaTokenizer (and saves with save_pretrained), from the model and the
// tokenizer_config.json beside it:
// - model: BPE, vocab = piece -> id, byte_fallback, fuse_unk, no unk_token;
//   merges = for each piece in id order, every split into two vocabulary
//   pieces at a character boundary, shorter left half first (HF's
//   generate_merges without scores: ranked by the merged piece's id);
// - added_tokens: control pieces and the pieces named bos/eos/unk/pad_token
//   (special), user-defined pieces (not special), in id order;
// - pre_tokenizer: Metaspace("▁", prepend_scheme "first", or "always" when
//   config.legacy is true, split false); no normalizer;
// - post_processor: TemplateProcessing with BOS / EOS as add_bos_token
//   (default true) / add_eos_token (default false) say;
// - decoder: Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0).
// Config added_tokens_decoder entries are not in it (the tokenizer applies
// them on top, as for a tokenizer.json). Throws flint::Error (no file named)
// when the model is not BPE or has empty or repeated pieces.
nlohmann::json sentencepiece_model_to_tokenizer_json(const SentencePieceModelInfo& model,
                                                     const TokenizerConfig& config);

}  // namespace flint
