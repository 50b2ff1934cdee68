// The protobuf tokenizer.model form, encoded by libsentencepiece. The model
// proto is also read here directly (a few fields of the wire format), because
// the installed library ships no generated protobuf headers: piece types
// (user-defined pieces have no accessor) and the normalizer spec come from it,
// and the legacy = false mode needs a copy of the model with add_dummy_prefix
// switched off, exactly as transformers makes one.
#include "tokenizer/sentencepiece.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/sentencepiece_common.h"

namespace flint {
namespace {

using spm::Piece;
using spm::PieceType;

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
constexpr uint32_t kModelPieces = 1, kModelNormalizerSpec = 3;
constexpr uint32_t kPieceText = 1, kPieceScore = 2, kPieceType = 3;
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
    } else if (field.number == kModelNormalizerSpec && field.wire_type == 2) {
      // Repeated occurrences merge, later scalars winning, as protobuf does.
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

PieceType piece_type(SentencePieceModelPiece::Type type) {
  using T = SentencePieceModelPiece::Type;
  switch (type) {
    case T::unknown: return PieceType::unknown;
    case T::control: return PieceType::control;
    case T::user_defined: return PieceType::user_defined;
    case T::unused: return PieceType::unused;
    case T::byte: return PieceType::byte;
    case T::normal: break;
  }
  return PieceType::normal;
}

void append_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// The same model with normalizer_spec.add_dummy_prefix = false: a trailing
// field in a message overrides earlier ones, so appending it is enough.
std::string without_dummy_prefix(std::string_view serialized) {
  const std::string off = {static_cast<char>(kNormAddDummyPrefix << 3), '\0'};
  std::string out;
  out.reserve(serialized.size() + 8);
  bool seen = false;
  WireReader top(serialized);
  while (!top.done()) {
    const auto field = top.next();
    if (field.number == kModelNormalizerSpec && field.wire_type == 2) {
      seen = true;
      append_varint(out, (kModelNormalizerSpec << 3) | 2);
      append_varint(out, field.bytes.size() + off.size());
      out.append(field.bytes);
      out.append(off);
    } else {
      out.append(serialized.substr(field.begin, field.end - field.begin));
    }
  }
  if (!seen) {
    append_varint(out, (kModelNormalizerSpec << 3) | 2);
    append_varint(out, off.size());
    out.append(off);
  }
  return out;
}

class SentencePieceTokenizer final : public spm::SpmTokenizerBase {
 public:
  SentencePieceTokenizer(const std::string& path, const TokenizerConfig& config) {
    const std::string serialized = read_file(path);
    const SentencePieceModelInfo model = read_sentencepiece_model(serialized, path);
    FLINT_CHECK(!model.pieces.empty(), ErrorContext{.file = path}, "not a SentencePiece model: it has no pieces");
    load(sp_, serialized, path);
    FLINT_CHECK(sp_.GetPieceSize() == static_cast<int>(model.pieces.size()), ErrorContext{.file = path},
                "sentencepiece reads {} pieces where the proto lists {}", sp_.GetPieceSize(), model.pieces.size());

    legacy_ = config.legacy.value_or(spm::kDefaultLegacy);
    if (!legacy_) load(sp_no_prefix_, without_dummy_prefix(serialized), path);

    for (const auto& model_piece : model.pieces) {
      const PieceType type = piece_type(model_piece.type);
      const bool special = type == PieceType::control || type == PieceType::unknown;
      const TokenId id = pieces_.add({.text = model_piece.text, .type = type, .special = special});
      // As transformers' converter: control pieces and <unk> are special added
      // tokens; user-defined pieces are added tokens that are always split out.
      if (special || type == PieceType::user_defined) splitter_.add({.text = model_piece.text, .id = id, .special = special});
    }
    add_config_tokens(config);

    const std::string config_file = config.dir.empty() ? path : config.dir + "/tokenizer_config.json";
    auto resolve = [&](const std::optional<std::string>& text, int fallback, const char* field) -> std::optional<TokenId> {
      if (text) {
        auto id = pieces_.find(*text);
        FLINT_CHECK(id.has_value(), ErrorContext{.file = config_file, .field = field}, "token '{}' is not in {}", *text,
                    path);
        return id;
      }
      if (fallback >= 0 && fallback < pieces_.size()) return fallback;
      return std::nullopt;
    };
    policy_.bos = resolve(config.bos_token, sp_.bos_id(), "bos_token");
    if (auto eos = resolve(config.eos_token, sp_.eos_id(), "eos_token")) policy_.eos.push_back(*eos);
    policy_.add_bos = config.add_bos_token.value_or(true);
    policy_.add_eos = config.add_eos_token.value_or(false);
  }

  std::string kind() const override { return "sentencepiece"; }

 protected:
  void encode_segment(std::string_view text, bool at_start, std::vector<TokenId>& out) const override {
    std::vector<int> ids;
    sentencepiece::util::Status status;
    if (legacy_) {
      // sentencepiece's own add_dummy_prefix puts "▁" before every segment,
      // which is what HF's Prepend("▁") normalizer does per segment.
      status = sp_.Encode(text, &ids);
    } else {
      // transformers 4's slow LlamaTokenizer with legacy=False: the model runs
      // without add_dummy_prefix, the input as a whole gets one "▁" in front
      // (even when it starts with a space: " Hello" is ▁ ▁Hello, as plain
      // sentencepiece gives), and a stretch after a special token gets none.
      // transformers encodes a stretch that starts with a space as
      // "<unk>" + stretch and drops the "<unk>" pieces; with
      // remove_extra_whitespaces off (Llama's models) that is the same as
      // encoding the stretch alone.
      std::string escaped = spm::escape_spaces(text);
      if (at_start) escaped.insert(0, spm::kSpaceMark);
      status = sp_no_prefix_.Encode(escaped, &ids);
    }
    if (!status.ok()) fail("sentencepiece failed to encode: {}", status.ToString());
    out.insert(out.end(), ids.begin(), ids.end());
  }

 private:
  static void load(sentencepiece::SentencePieceProcessor& sp, const std::string& serialized, const std::string& path) {
    const auto status = sp.LoadFromSerializedProto(serialized);
    if (!status.ok()) fail({.file = path}, "not a usable SentencePiece model: {}", status.ToString());
  }

  sentencepiece::SentencePieceProcessor sp_;
  sentencepiece::SentencePieceProcessor sp_no_prefix_;  // loaded only when !legacy_
  bool legacy_ = true;
};

}  // namespace

SentencePieceModelInfo read_sentencepiece_model(std::string_view serialized, const std::string& path) {
  try {
    return parse_model_proto(serialized);
  } catch (const Error& e) {
    throw Error("not a SentencePiece model: " + e.message(), {.file = path});
  }
}

std::unique_ptr<Tokenizer> make_sentencepiece_tokenizer(const std::string& model_path, const TokenizerConfig& config) {
  return std::make_unique<SentencePieceTokenizer>(model_path, config);
}

}  // namespace flint
