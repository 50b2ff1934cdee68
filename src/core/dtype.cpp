#include "core/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace flint {

int dtype_bits(DType t) {
  switch (t) {
    case DType::f32: return 32;
    case DType::f16: return 16;
    case DType::bf16: return 16;
    case DType::f8e4m3fn: return 8;
    case DType::f8e5m2: return 8;
    case DType::i8: return 8;
    case DType::u8: return 8;
    case DType::i32: return 32;
    case DType::i64: return 64;
    case DType::i4: return 4;
    case DType::u4: return 4;
  }
  FLINT_ASSERT(false);
}

bool dtype_is_float(DType t) {
  return t == DType::f32 || t == DType::f16 || t == DType::bf16 || t == DType::f8e4m3fn || t == DType::f8e5m2;
}

bool dtype_is_packed(DType t) { return dtype_bits(t) < 8; }

uint64_t dtype_bytes(DType t, uint64_t count) {
  // count * bits could wrap for huge shapes and make a tiny allocation look
  // big enough; packed types are two per byte, rounded up, which cannot wrap.
  if (dtype_is_packed(t)) return count / 2 + count % 2;
  uint64_t bytes = 0;
  FLINT_CHECK(!__builtin_mul_overflow(count, static_cast<uint64_t>(dtype_bits(t) / 8), &bytes),
              "{} elements of {} take more than 2^64 bytes", count, dtype_name(t));
  return bytes;
}

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::f16: return "f16";
    case DType::bf16: return "bf16";
    case DType::f8e4m3fn: return "f8e4m3fn";
    case DType::f8e5m2: return "f8e5m2";
    case DType::i8: return "i8";
    case DType::u8: return "u8";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::i4: return "i4";
    case DType::u4: return "u4";
  }
  FLINT_ASSERT(false);
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
  if (name == "F32") return DType::f32;
  if (name == "F16") return DType::f16;
  if (name == "BF16") return DType::bf16;
  if (name == "F8_E4M3") return DType::f8e4m3fn;
  if (name == "F8_E5M2") return DType::f8e5m2;
  if (name == "I8") return DType::i8;
  if (name == "U8") return DType::u8;
  if (name == "I32") return DType::i32;
  if (name == "I64") return DType::i64;
  return std::nullopt;
}

std::optional<std::string_view> dtype_safetensors_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::f8e4m3fn: return "F8_E4M3";
    case DType::f8e5m2: return "F8_E5M2";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::i4:
    case DType::u4: return std::nullopt;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType t : kAllDTypes)
    if (dtype_name(t) == name) return t;
  if (name == "float32" || name == "float") return DType::f32;
  if (name == "float16" || name == "half") return DType::f16;
  if (name == "bfloat16") return DType::bf16;
  if (name == "float8_e4m3fn") return DType::f8e4m3fn;
  if (name == "float8_e5m2") return DType::f8e5m2;
  if (name == "int8") return DType::i8;
  if (name == "uint8") return DType::u8;
  if (name == "int32") return DType::i32;
  if (name == "int64") return DType::i64;
  return std::nullopt;
}

namespace {

// v / 2^shift rounded to nearest, ties to even.
uint32_t shift_right_rne(uint32_t v, int shift) {
  if (shift <= 0) return v;
  if (shift >= 32) return 0;  // v < 2^24 here, so below half of one unit
  uint32_t q = v >> shift;
  uint32_t rem = v & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1u))) ++q;
  return q;
}

// A binary float format narrower than f32 in both exponent and mantissa.
struct NarrowFormat {
  int exp_bits;
  int man_bits;
  bool has_inf;        // IEEE-style Inf (all-ones exponent, zero mantissa)
  uint32_t max_code;   // largest finite magnitude code
  uint32_t nan_code;   // canonical quiet NaN magnitude code
};

constexpr NarrowFormat kF16{5, 10, true, 0x7BFF, 0x7E00};
constexpr NarrowFormat kF8E4M3FN{4, 3, false, 0x7E, 0x7F};
constexpr NarrowFormat kF8E5M2{5, 2, true, 0x7B, 0x7E};

uint32_t encode_narrow(float x, const NarrowFormat& f, Overflow overflow) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint32_t sign = (bits >> 31) << (f.exp_bits + f.man_bits);
  const uint32_t e32 = (bits >> 23) & 0xFF;
  const uint32_t m32 = bits & 0x7FFFFF;
  const uint32_t inf_code = ((1u << f.exp_bits) - 1) << f.man_bits;

  if (e32 == 0xFF) {
    if (m32 != 0) return sign | f.nan_code;
    if (overflow == Overflow::saturate) return sign | f.max_code;
    return sign | (f.has_inf ? inf_code : f.nan_code);
  }
  // f32 subnormals (< 2^-126) are far below half the smallest subnormal of
  // every format here, so they round to zero.
  if (e32 == 0) return sign;

  const int bias = (1 << (f.exp_bits - 1)) - 1;
  const int e = static_cast<int>(e32) - 127;
  uint32_t code;
  if (e >= 1 - bias) {
    // Normal in the target: round the mantissa; a carry out of the mantissa
    // correctly bumps the exponent field.
    code = (static_cast<uint32_t>(e + bias) << f.man_bits) + shift_right_rne(m32, 23 - f.man_bits);
  } else {
    // Subnormal in the target: shift the full significand further right. A
    // round-up into the smallest normal comes out right by construction.
    code = shift_right_rne(m32 | 0x800000u, 23 - f.man_bits + (1 - bias - e));
  }
  if (code > f.max_code) {
    if (overflow == Overflow::saturate) return sign | f.max_code;
    return sign | (f.has_inf ? inf_code : f.nan_code);
  }
  return sign | code;
}

float decode_narrow(uint32_t code, const NarrowFormat& f) {
  const int bias = (1 << (f.exp_bits - 1)) - 1;
  const uint32_t man_mask = (1u << f.man_bits) - 1;
  const uint32_t exp_mask = (1u << f.exp_bits) - 1;
  const bool negative = (code >> (f.exp_bits + f.man_bits)) & 1u;
  const uint32_t exp = (code >> f.man_bits) & exp_mask;
  const uint32_t man = code & man_mask;
  float value;
  if (f.has_inf && exp == exp_mask) {
    value = man == 0 ? std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  } else if (!f.has_inf && (code & ((exp_mask << f.man_bits) | man_mask)) == f.nan_code) {
    value = std::numeric_limits<float>::quiet_NaN();
  } else if (exp == 0) {
    value = std::ldexp(static_cast<float>(man), 1 - bias - f.man_bits);
  } else {
    value = std::ldexp(static_cast<float>(man | (1u << f.man_bits)), static_cast<int>(exp) - bias - f.man_bits);
  }
  return negative ? -value : value;
}

}  // namespace

uint16_t f32_to_f16_bits(float x, Overflow overflow) {
  return static_cast<uint16_t>(encode_narrow(x, kF16, overflow));
}

uint8_t f32_to_f8e4m3fn_bits(float x, Overflow overflow) {
  return static_cast<uint8_t>(encode_narrow(x, kF8E4M3FN, overflow));
}

uint8_t f32_to_f8e5m2_bits(float x, Overflow overflow) {
  return static_cast<uint8_t>(encode_narrow(x, kF8E5M2, overflow));
}

uint16_t f32_to_bf16_bits(float x, Overflow overflow) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
  if (std::isnan(x)) return sign | 0x7FC0;
  if (std::isinf(x)) return overflow == Overflow::saturate ? (sign | 0x7F7F) : static_cast<uint16_t>(bits >> 16);
  // bf16 keeps f32's exponent, so rounding is adding a bias below the cut:
  // 0x7FFF plus the lowest kept bit gives ties-to-even; a carry overflows
  // cleanly into the exponent and, past the largest value, into Inf.
  const uint32_t rounded = bits + 0x7FFFu + ((bits >> 16) & 1u);
  uint16_t out = static_cast<uint16_t>(rounded >> 16);
  if (overflow == Overflow::saturate && (out & 0x7FFF) == 0x7F80) out = sign | 0x7F7F;
  return out;
}

float f16_bits_to_f32(uint16_t bits) { return decode_narrow(bits, kF16); }
float f8e4m3fn_bits_to_f32(uint8_t bits) { return decode_narrow(bits, kF8E4M3FN); }
float f8e5m2_bits_to_f32(uint8_t bits) { return decode_narrow(bits, kF8E5M2); }

float load_as_f32(DType t, const void* data, uint64_t i) {
  const auto* p = static_cast<const uint8_t*>(data);
  switch (t) {
    case DType::f32: {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    case DType::f16: {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      return f16_bits_to_f32(v);
    }
    case DType::bf16: {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      return bf16_bits_to_f32(v);
    }
    case DType::f8e4m3fn: return f8e4m3fn_bits_to_f32(p[i]);
    case DType::f8e5m2: return f8e5m2_bits_to_f32(p[i]);
    case DType::i8: return static_cast<float>(static_cast<int8_t>(p[i]));
    case DType::u8: return static_cast<float>(p[i]);
    case DType::i32: {
      int32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      return static_cast<float>(v);
    }
    case DType::i64: {
      int64_t v;
      std::memcpy(&v, p + 8 * i, 8);
      return static_cast<float>(v);
    }
    case DType::i4: return static_cast<float>(i4_get(p, i));
    case DType::u4: return static_cast<float>(u4_get(p, i));
  }
  FLINT_ASSERT(false);
}

namespace {
template <typename Int>
Int round_saturate(float x) {
  if (std::isnan(x)) return 0;
  const double r = std::nearbyint(static_cast<double>(x));
  if (r <= static_cast<double>(std::numeric_limits<Int>::min())) return std::numeric_limits<Int>::min();
  if (r >= static_cast<double>(std::numeric_limits<Int>::max())) return std::numeric_limits<Int>::max();
  return static_cast<Int>(r);
}
}  // namespace

void store_from_f32(DType t, void* data, uint64_t i, float x) {
  auto* p = static_cast<uint8_t*>(data);
  switch (t) {
    case DType::f32: std::memcpy(p + 4 * i, &x, 4); return;
    case DType::f16: {
      uint16_t v = f32_to_f16_bits(x);
      std::memcpy(p + 2 * i, &v, 2);
      return;
    }
    case DType::bf16: {
      uint16_t v = f32_to_bf16_bits(x);
      std::memcpy(p + 2 * i, &v, 2);
      return;
    }
    case DType::f8e4m3fn: p[i] = f32_to_f8e4m3fn_bits(x); return;
    case DType::f8e5m2: p[i] = f32_to_f8e5m2_bits(x); return;
    case DType::i8: p[i] = static_cast<uint8_t>(round_saturate<int8_t>(x)); return;
    case DType::u8: p[i] = round_saturate<uint8_t>(x); return;
    case DType::i32: {
      int32_t v = round_saturate<int32_t>(x);
      std::memcpy(p + 4 * i, &v, 4);
      return;
    }
    case DType::i64: {
      int64_t v = round_saturate<int64_t>(x);
      std::memcpy(p + 8 * i, &v, 8);
      return;
    }
    case DType::i4: {
      float c = std::isnan(x) ? 0.0f : std::fmin(std::fmax(std::nearbyint(x), -8.0f), 7.0f);
      i4_set(p, i, static_cast<int8_t>(c));
      return;
    }
    case DType::u4: {
      float c = std::isnan(x) ? 0.0f : std::fmin(std::fmax(std::nearbyint(x), 0.0f), 15.0f);
      u4_set(p, i, static_cast<uint8_t>(c));
      return;
    }
  }
  FLINT_ASSERT(false);
}

}  // namespace flint
