// core/dtype.h — element types and their conversions.
//
// Contract:
// - Every float conversion *to* a narrow type rounds to nearest, ties to even.
// - NaN stays NaN (canonical quiet NaN, sign kept); +-Inf stays Inf where the
//   target has Inf.
// - Overflow: f16, bf16 and f8e5m2 go to +-Inf (IEEE behaviour); f8e4m3fn has no
//   Inf and goes to NaN, as PyTorch's cast does. With Overflow::saturate every
//   narrow type clamps to its largest finite value instead (and Inf clamps too;
//   this is the mode quantizers want).
// - Decoding (narrow -> float) is exact: every value of these types is a float.
// Packed 4-bit types hold two elements per byte, element 2i in the low nibble.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace flint {

enum class DType : uint8_t {
  f32,
  f16,
  bf16,
  f8e4m3fn,
  f8e5m2,
  i8,
  u8,
  i32,
  i64,
  i4,  // packed signed 4-bit, two per byte, low nibble first
  u4,  // packed unsigned 4-bit, two per byte, low nibble first
};

inline constexpr DType kAllDTypes[] = {DType::f32, DType::f16, DType::bf16, DType::f8e4m3fn, DType::f8e5m2, DType::i8,
                                       DType::u8,  DType::i32, DType::i64,  DType::i4,       DType::u4};

int dtype_bits(DType t);
bool dtype_is_float(DType t);
bool dtype_is_packed(DType t);  // fewer than 8 bits per element
std::string_view dtype_name(DType t);  // "bf16", "f8e4m3fn", ...
// Bytes taken by `count` elements; packed types round up to whole bytes.
// Throws flint::Error when the byte count does not fit in 64 bits.
uint64_t dtype_bytes(DType t, uint64_t count);

// Names as safetensors writes them ("BF16", "F8_E4M3", ...); packed 4-bit types
// have no safetensors name (checkpoints pack them into I32/U8 tensors).
std::optional<DType> dtype_from_safetensors(std::string_view name);
std::optional<std::string_view> dtype_safetensors_name(DType t);
// Accepts our names ("bf16") and torch's ("bfloat16", "float16", "float32", ...).
std::optional<DType> dtype_from_name(std::string_view name);

enum class Overflow { ieee, saturate };

// Raw bit patterns of the narrow float types.
uint16_t f32_to_f16_bits(float x, Overflow overflow = Overflow::ieee);
uint16_t f32_to_bf16_bits(float x, Overflow overflow = Overflow::ieee);
uint8_t f32_to_f8e4m3fn_bits(float x, Overflow overflow = Overflow::ieee);
uint8_t f32_to_f8e5m2_bits(float x, Overflow overflow = Overflow::ieee);

float f16_bits_to_f32(uint16_t bits);
float f8e4m3fn_bits_to_f32(uint8_t bits);
float f8e5m2_bits_to_f32(uint8_t bits);

// bf16 -> f32 is a shift; inline because it sits in every CPU inner loop.
inline float bf16_bits_to_f32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  __builtin_memcpy(&f, &u, sizeof f);
  return f;
}

// Packed 4-bit access: element `i` of a packed array.
inline int8_t i4_get(const uint8_t* data, uint64_t i) {
  uint8_t nibble = (data[i / 2] >> ((i % 2) * 4)) & 0xF;
  return static_cast<int8_t>(static_cast<int8_t>(nibble << 4) >> 4);  // sign-extend
}
inline uint8_t u4_get(const uint8_t* data, uint64_t i) { return (data[i / 2] >> ((i % 2) * 4)) & 0xF; }
inline void u4_set(uint8_t* data, uint64_t i, uint8_t value) {
  int shift = static_cast<int>(i % 2) * 4;
  data[i / 2] = static_cast<uint8_t>((data[i / 2] & ~(0xF << shift)) | ((value & 0xF) << shift));
}
inline void i4_set(uint8_t* data, uint64_t i, int8_t value) { u4_set(data, i, static_cast<uint8_t>(value) & 0xF); }

// Element `i` of a buffer of type `t`, as float (integers convert exactly when
// they fit in 24 bits). For tests, dumps and slow paths, not inner loops.
float load_as_f32(DType t, const void* data, uint64_t i);
// Stores `x` as element `i`; integer types round to nearest and saturate.
void store_from_f32(DType t, void* data, uint64_t i, float x);

}  // namespace flint
