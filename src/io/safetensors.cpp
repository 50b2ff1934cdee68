// Reading one safetensors file. The checks follow the reference implementation
// (huggingface/safetensors, Metadata::validate): a header of at most 100 MB that
// is a JSON object, and tensors that tile the data section exactly — sorted by
// offset, the first starts at 0, each starts where the previous ended, the last
// ends at the end of the file. Files that pass here load in transformers too.
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "io/strict_json.h"

namespace flint {
namespace {

using json = nlohmann::ordered_json;

// The reference reader's limit; it keeps a hostile length from making us parse
// gigabytes of JSON.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

constexpr std::string_view kMetadataKey = "__metadata__";

// Safetensors dtypes that exist but that Flint has no kernels for.
bool is_known_unsupported_dtype(std::string_view name) {
  for (std::string_view n : {"F64", "BOOL", "I16", "U16", "U32", "U64", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64"})
    if (n == name) return true;
  return false;
}

uint64_t read_u64_le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint64_t>(p[i]);
  return v;
}

class HeaderParser {
 public:
  HeaderParser(const std::string& path, uint64_t data_bytes) : path_(path), data_bytes_(data_bytes) {}

  SafetensorsEntry parse_entry(const std::string& name, const json& value) const {
    const ErrorContext at{.file = path_, .tensor = printable(name)};
    FLINT_CHECK(value.is_object(), at, "expected an object with dtype, shape and data_offsets, got {}",
                json_type_name(value));
    for (const auto& [key, _] : value.items())
      FLINT_CHECK(key == "dtype" || key == "shape" || key == "data_offsets", field(at, printable(key)),
                  "unknown key; an entry holds only dtype, shape and data_offsets");
    SafetensorsEntry e;
    e.name = name;
    e.dtype = parse_dtype(at, require(at, value, "dtype"));
    e.shape = parse_shape(at, require(at, value, "shape"));
    parse_offsets(at, require(at, value, "data_offsets"), e);

    const uint64_t expected = byte_count(at, e);
    FLINT_CHECK(e.end - e.begin == expected, field(at, "data_offsets"),
                "shape {} of {} takes {} bytes but data_offsets [{}, {}] hold {}", shape_to_string(e.shape),
                dtype_name(e.dtype), expected, e.begin, e.end, e.end - e.begin);
    FLINT_CHECK(e.end <= data_bytes_, field(at, "data_offsets"),
                "[{}, {}] runs past the end of the data section ({} bytes)", e.begin, e.end, data_bytes_);
    return e;
  }

  std::map<std::string, std::string> parse_metadata(const json& value) const {
    const ErrorContext at{.file = path_, .field = std::string(kMetadataKey)};
    std::map<std::string, std::string> out;
    if (value.is_null()) return out;  // the reference reader reads null as "no metadata"
    FLINT_CHECK(value.is_object(), at, "expected an object of strings, got {}", json_type_name(value));
    for (const auto& [key, v] : value.items()) {
      FLINT_CHECK(v.is_string(), at, "value of '{}' is {}, expected a string", printable(key), json_type_name(v));
      out.emplace(key, v.get<std::string>());
    }
    return out;
  }

 private:
  static ErrorContext field(ErrorContext at, std::string name) {
    at.field = std::move(name);
    return at;
  }

  static const json& require(const ErrorContext& at, const json& entry, const char* key) {
    auto it = entry.find(key);
    FLINT_CHECK(it != entry.end(), field(at, key), "missing");
    return *it;
  }

  static DType parse_dtype(const ErrorContext& at, const json& v) {
    FLINT_CHECK(v.is_string(), field(at, "dtype"), "expected a string, got {}", json_type_name(v));
    const auto& name = v.get_ref<const std::string&>();
    if (auto t = dtype_from_safetensors(name)) return *t;
    constexpr std::string_view supported = "BF16, F16, F32, F8_E4M3, F8_E5M2, I8, U8, I32, I64";
    FLINT_CHECK(!is_known_unsupported_dtype(name), field(at, "dtype"), "unsupported dtype {} (Flint reads {})", name,
                supported);
    fail(field(at, "dtype"), "unknown dtype '{}' (Flint reads {})", printable(name, 40), supported);
  }

  static Shape parse_shape(const ErrorContext& at, const json& v) {
    FLINT_CHECK(v.is_array(), field(at, "shape"), "expected an array of dimensions, got {}", json_type_name(v));
    Shape shape;
    for (size_t i = 0; i < v.size(); ++i) {
      const json& d = v[i];
      FLINT_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t{std::numeric_limits<int64_t>::max()},
                  field(at, "shape"), "dimension {} is {} ({}); dimensions are integers in [0, 2^63)", i,
                  printable(d.dump(), 40), json_type_name(d));
      shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    return shape;
  }

  static void parse_offsets(const ErrorContext& at, const json& v, SafetensorsEntry& e) {
    const ErrorContext f = field(at, "data_offsets");
    FLINT_CHECK(v.is_array() && v.size() == 2, f, "expected [begin, end], got {}", printable(v.dump(), 60));
    for (const json& o : v)
      FLINT_CHECK(o.is_number_unsigned(), f, "offset {} is {}, expected an unsigned integer", printable(o.dump(), 40),
                  json_type_name(o));
    e.begin = v[0].get<uint64_t>();
    e.end = v[1].get<uint64_t>();
    FLINT_CHECK(e.begin <= e.end, f, "begin {} is after end {}", e.begin, e.end);
  }

  // shape x element size in bytes, computed without wrapping: a wrapped product
  // could match a small byte range and make a view read far past it.
  static uint64_t byte_count(const ErrorContext& at, const SafetensorsEntry& e) {
    uint64_t bytes = static_cast<uint64_t>(dtype_bits(e.dtype) / 8);
    for (int64_t d : e.shape)
      FLINT_CHECK(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes), field(at, "shape"),
                  "shape {} of {} takes more than 2^64 bytes", shape_to_string(e.shape), dtype_name(e.dtype));
    return bytes;
  }

  const std::string& path_;
  uint64_t data_bytes_;
};

// Sorted by offset, the ranges must tile [0, data_bytes) with no gap or overlap.
void check_tiling(const std::string& path, const std::vector<SafetensorsEntry>& entries, uint64_t data_bytes) {
  std::vector<size_t> order(entries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::tie(entries[a].begin, entries[a].end, a) < std::tie(entries[b].begin, entries[b].end, b);
  });
  uint64_t covered = 0;
  const SafetensorsEntry* previous = nullptr;
  for (size_t i : order) {
    const SafetensorsEntry& e = entries[i];
    const ErrorContext at{.file = path, .tensor = printable(e.name), .field = "data_offsets"};
    FLINT_CHECK(e.begin >= covered, at, "[{}, {}] overlaps tensor '{}' at [{}, {}]", e.begin, e.end,
                previous ? printable(previous->name) : "", previous ? previous->begin : 0,
                previous ? previous->end : 0);
    FLINT_CHECK(e.begin == covered, at,
                "[{}, {}] leaves bytes [{}, {}) of the data section unused; tensors must be packed back to back",
                e.begin, e.end, covered, e.begin);
    covered = e.end;
    previous = &e;
  }
  FLINT_CHECK(covered == data_bytes, ErrorContext{.file = path},
              "the tensors cover {} bytes but the data section has {}: {} bytes after the last tensor", covered,
              data_bytes, data_bytes - covered);
}

}  // namespace

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->file_ = MappedFile::open(path);
  const std::span<const std::byte> bytes = f->file_->bytes();
  const ErrorContext at{.file = path};

  FLINT_CHECK(bytes.size() >= 8, at, "{} bytes is too short for a safetensors file (8-byte header length first)",
              bytes.size());
  const uint64_t header_bytes = read_u64_le(bytes.data());
  FLINT_CHECK(header_bytes <= kMaxHeaderBytes, at, "header length {} is over the {}-byte limit", header_bytes,
              kMaxHeaderBytes);
  FLINT_CHECK(header_bytes <= bytes.size() - 8, at, "header length {} runs past the end of the file ({} bytes)",
              header_bytes, bytes.size());
  f->data_offset_ = 8 + header_bytes;
  const uint64_t data_bytes = bytes.size() - f->data_offset_;

  // The spec: the header starts with '{' and may be padded with spaces (0x20).
  std::string_view text(reinterpret_cast<const char*>(bytes.data() + 8), header_bytes);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  FLINT_CHECK(text.starts_with('{') && text.ends_with('}'), at,
              "the header must be a JSON object padded only with spaces");
  const json header = parse_strict_json(text, ErrorContext{.file = path, .field = "header"});
  FLINT_CHECK(header.is_object(), at, "the header must be a JSON object, got {}", json_type_name(header));

  const HeaderParser parser(path, data_bytes);
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      f->metadata_ = parser.parse_metadata(value);
      continue;
    }
    f->index_.emplace(name, f->entries_.size());
    f->entries_.push_back(parser.parse_entry(name, value));
  }
  check_tiling(path, f->entries_, data_bytes);
  return f;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::view(const SafetensorsEntry& entry) const {
  // open() proved begin..end lies in the data section and matches the shape.
  return Tensor::wrap(file_, static_cast<size_t>(data_offset_ + entry.begin), entry.dtype, entry.shape);
}

Tensor SafetensorsFile::view(const std::string& name) const {
  const SafetensorsEntry* entry = find(name);
  FLINT_CHECK(entry != nullptr, ErrorContext{.file = path(), .tensor = printable(name)},
              "not in this file ({} tensors)", entries_.size());
  return view(*entry);
}

}  // namespace flint
