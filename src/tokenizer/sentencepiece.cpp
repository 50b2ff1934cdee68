// The protobuf tokenizer.model form. Like transformers 5 (SentencePieceExtractor
// + LlamaTokenizer), the model is converted into the tokenizer.json form — a
// `tokenizers` BPE with byte fallback behind a Metaspace pre-tokenizer — and
// run by the engine that runs tokenizer.json files (sentencepiece_json.cpp).
// The proto is read here directly (a few fields of the wire format);
// libsentencepiece is not used: its ids differ from transformers 5's (runs of
// spaces, a leading space), and the installed one ships no protobuf headers.
#include "tokenizer/sentencepiece.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/sentencepiece_common.h"

namespace flint {
namespace {

using json = nlohmann::json;

// Just enough of the protobuf wire format to walk a ModelProto.
class WireReader {
 public:
  struct Field {
    uint32_t number = 0;
    uint32_t wire_type = 0;
    uint64_t value = 0;      // varint / fixed value
    std::string_view bytes;  // length-delimited payload
    size_t begin = 0;        // offset of the key in the message
    size_t end = 0;          // offset after the field
  };

  explicit WireReader(std::string_view data) : data_(data) {}
  bool done() const { return pos_ >= data_.size(); }

  Field next() {
    Field f;
    f.begin = pos_;
    const uint64_t key = varint();
    f.number = static_cast<uint32_t>(key >> 3);
    f.wire_type = static_cast<uint32_t>(key & 7);
    if (f.number == 0) fail("corrupt protobuf: field number 0 at byte {}", f.begin);
    switch (f.wire_type) {
      case 0:
        f.value = varint();
        break;
      case 1:
        f.value = fixed(8);
        break;
      case 5:
        f.value = fixed(4);
        break;
      case 2: {
        const uint64_t len = varint();
        if (len > data_.size() - pos_) fail("corrupt protobuf: field {} runs past the end (byte {})", f.number, f.begin);
        f.bytes = data_.substr(pos_, static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        break;
      }
      default:
        fail("corrupt protobuf: unsupported wire type {} at byte {}", f.wire_type, f.begin);
    }
    f.end = pos_;
    return f;
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= data_.size()) fail("corrupt protobuf: truncated varint at byte {}", pos_);
      const auto b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("corrupt protobuf: varint longer than 10 bytes at byte {}", pos_);
  }

  uint64_t fixed(size_t n) {
    if (n > data_.size() - pos_) fail("corrupt protobuf: truncated fixed field at byte {}", pos_);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }

  std::string_view data_;
  size_t pos_ = 0;
};

// sentencepiece_model.proto numbers.
constexpr uint32_t kModelPieces = 1, kModelTrainerSpec = 2, kModelNormalizerSpec = 3;
constexpr uint32_t kPieceText = 1, kPieceScore = 2, kPieceType = 3;
constexpr uint32_t kTrainerModelType = 3;
constexpr uint32_t kNormName = 1, kNormAddDummyPrefix = 3, kNormRemoveExtraWhitespaces = 4, kNormEscapeWhitespaces = 5;

SentencePieceModelInfo parse_model_proto(std::string_view serialized) {
  SentencePieceModelInfo model;
  WireReader top(serialized);
  while (!top.done()) {
    const auto field = top.next();
    if (field.number == kModelPieces && field.wire_type == 2) {
      SentencePieceModelPiece piece;
      WireReader reader(field.bytes);
      while (!reader.done()) {
        const auto f = reader.next();
        if (f.number == kPieceText && f.wire_type == 2) piece.text = std::string(f.bytes);
        if (f.number == kPieceScore && f.wire_type == 5) {
          const auto bits = static_cast<uint32_t>(f.value);
          std::memcpy(&piece.score, &bits, sizeof bits);
        }
        if (f.number == kPieceType && f.wire_type == 0) {
          if (f.value < 1 || f.value > 6) fail("piece {} has unknown type {}", model.pieces.size(), f.value);
          piece.type = static_cast<SentencePieceModelPiece::Type>(f.value);
        }
      }
      model.pieces.push_back(std::move(piece));
    } else if (field.number == kModelTrainerSpec && field.wire_type == 2) {
      // Repeated occurrences of a message merge, later scalars winning, as protobuf does.
      WireReader reader(field.bytes);
      while (!reader.done()) {
        const auto f = reader.next();
        if (f.number == kTrainerModelType && f.wire_type == 0) {
          if (f.value < 1 || f.value > 4) fail("trainer_spec.model_type {} is unknown", f.value);
          model.model_type = static_cast<SentencePieceModelInfo::ModelType>(f.value);
        }
      }
    } else if (field.number == kModelNormalizerSpec && field.wire_type == 2) {
      WireReader reader(field.bytes);
      while (!reader.done()) {
        const auto f = reader.next();
        if (f.number == kNormName && f.wire_type == 2) model.normalizer.name = std::string(f.bytes);
        if (f.number == kNormAddDummyPrefix && f.wire_type == 0) model.normalizer.add_dummy_prefix = f.value != 0;
        if (f.number == kNormRemoveExtraWhitespaces && f.wire_type == 0)
          model.normalizer.remove_extra_whitespaces = f.value != 0;
        if (f.number == kNormEscapeWhitespaces && f.wire_type == 0) model.normalizer.escape_whitespaces = f.value != 0;
      }
    }
  }
  return model;
}

const char* model_type_name(SentencePieceModelInfo::ModelType type) {
  using T = SentencePieceModelInfo::ModelType;
  switch (type) {
    case T::unigram: return "Unigram";
    case T::bpe: return "BPE";
    case T::word: return "word";
    case T::character: return "char";
  }
  return "?";
}

// What an unset TokenizerConfig::legacy means: transformers 5's LlamaTokenizer
// defaults to legacy=False (Metaspace prepend_scheme "first").
constexpr bool kDefaultLegacy = false;

// transformers' generate_merges(vocab) with no scores: every split of a piece
// at a character boundary into two vocabulary pieces is a merge, ranked by
// (id of the piece, length of the left half). Walking the pieces in id order
// and the cuts left to right gives that order without sorting.
json derive_merges(const std::vector<SentencePieceModelPiece>& pieces,
                   const std::unordered_map<std::string_view, TokenId>& ids) {
  json merges = json::array();
  for (const auto& piece : pieces) {
    const std::string_view text = piece.text;
    for (size_t cut = 1; cut < text.size(); ++cut) {
      if ((static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) continue;  // inside a UTF-8 character
      const std::string_view left = text.substr(0, cut), right = text.substr(cut);
      if (ids.contains(left) && ids.contains(right))
        merges.push_back(json::array({std::string(left), std::string(right)}));
    }
  }
  return merges;
}

// TokenizersBackend.update_post_processor: "<s>:0 $A:0 </s>:0" and its pair form.
json template_processing(const std::optional<std::pair<std::string, TokenId>>& bos,
                         const std::optional<std::pair<std::string, TokenId>>& eos) {
  json single = json::array(), pair = json::array(), special = json::object();
  auto token = [](const std::string& text, int type_id) {
    return json{{"SpecialToken", {{"id", text}, {"type_id", type_id}}}};
  };
  auto sequence = [](const char* id, int type_id) { return json{{"Sequence", {{"id", id}, {"type_id", type_id}}}}; };
  for (int type_id : {0, 1}) {
    json& out = type_id == 0 ? single : pair;
    if (bos) out.push_back(token(bos->first, type_id));
    out.push_back(sequence(type_id == 0 ? "A" : "B", type_id));
    if (eos) out.push_back(token(eos->first, type_id));
  }
  pair.insert(pair.begin(), single.begin(), single.end());
  for (const auto& t : {bos, eos})
    if (t) special[t->first] = {{"id", t->first}, {"ids", {t->second}}, {"tokens", {t->first}}};
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", special}};
}

}  // namespace

SentencePieceModelInfo read_sentencepiece_model(std::string_view serialized, const std::string& path) {
  try {
    return parse_model_proto(serialized);
  } catch (const Error& e) {
    throw Error("not a SentencePiece model: " + e.message(), {.file = path});
  }
}

json sentencepiece_model_to_tokenizer_json(const SentencePieceModelInfo& model, const TokenizerConfig& config) {
  using Type = SentencePieceModelPiece::Type;
  FLINT_CHECK(!model.pieces.empty(), "not a SentencePiece model: it has no pieces");
  FLINT_CHECK(model.model_type == SentencePieceModelInfo::ModelType::bpe,
              "is a SentencePiece {} model (trainer_spec.model_type); only BPE models (Llama 2, CodeLlama) "
              "are supported",
              model_type_name(model.model_type));

  std::unordered_map<std::string_view, TokenId> ids;
  ids.reserve(model.pieces.size());
  json vocab = json::object();
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const std::string& text = model.pieces[i].text;
    FLINT_CHECK(!text.empty(), "piece {} is empty", i);
    const auto [it, fresh] = ids.emplace(text, static_cast<TokenId>(i));
    FLINT_CHECK(fresh, "pieces {} and {} are both '{}'", it->second, i, text);
    vocab[text] = i;
  }

  // Control pieces and the named special tokens are special added tokens;
  // user-defined pieces are added tokens that are not special.
  const std::string bos_text = config.bos_token.value_or("<s>"), eos_text = config.eos_token.value_or("</s>");
  std::unordered_set<std::string> named = {bos_text, eos_text, config.unk_token.value_or("<unk>")};
  if (config.pad_token) named.insert(*config.pad_token);
  json added = json::array();
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const auto& piece = model.pieces[i];
    const bool special = piece.type == Type::control || named.contains(piece.text);
    if (!special && piece.type != Type::user_defined) continue;
    added.push_back({{"id", i},
                     {"content", piece.text},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", special}});
  }

  auto named_token = [&](bool wanted, const std::string& text) -> std::optional<std::pair<std::string, TokenId>> {
    const auto it = ids.find(text);
    if (!wanted || it == ids.end()) return std::nullopt;  // a missing named token is reported by the tokenizer
    return std::pair(text, it->second);
  };
  const bool legacy = config.legacy.value_or(kDefaultLegacy);
  const std::string mark(spm::kSpaceMark);
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", std::move(added)},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Metaspace"},
        {"replacement", mark},
        {"prepend_scheme", legacy ? "always" : "first"},
        {"split", false}}},
      {"post_processor", template_processing(named_token(config.add_bos_token.value_or(true), bos_text),
                                             named_token(config.add_eos_token.value_or(false), eos_text))},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", mark}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", std::move(vocab)},
        {"merges", derive_merges(model.pieces, ids)}}},
  };
}

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path, const TokenizerConfig& config) {
  const SentencePieceModelInfo model = read_sentencepiece_model(read_file(model_path), model_path);
  json converted;
  try {
    converted = sentencepiece_model_to_tokenizer_json(model, config);
  } catch (const Error& e) {
    throw e.with_file(model_path);
  }
  return make_sentencepiece_json_tokenizer(converted, model_path, config);
}

}  // namespace flint
