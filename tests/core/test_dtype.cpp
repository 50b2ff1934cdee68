// The narrow float formats are checked against a decoder and an encoder
// written here from the IEEE field definitions, in double: every 8- and 16-bit
// pattern is decoded, every pair of neighbouring values is split at its midpoint,
// and a sweep of f32 bit patterns is rounded by nearest-value search.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace flint {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Collects failures of a loop over many cases and reports the first few, so a
// broken conversion prints a readable list instead of 65536 assertions.
class Mismatches {
 public:
  void add(const std::string& what) {
    if (count_ < 12) text_ += "  " + what + "\n";
    ++count_;
  }
  int count() const { return count_; }
  const std::string& text() const { return text_; }

 private:
  int count_ = 0;
  std::string text_;
};

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%X", v);
  return buf;
}

std::string show(double v) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// ---------------------------------------------------------------------------
// The reference: a binary float format described by its fields.

struct NarrowCodec {
  const char* name;
  int exp_bits;
  int man_bits;
  // true: IEEE specials (all-ones exponent is Inf or NaN). false: the "fn"
  // convention of f8e4m3fn: no Inf, and only S.1111.111 is NaN.
  bool ieee_specials;
  float (*decode)(uint32_t code);
  uint32_t (*encode)(float x, Overflow overflow);

  int width() const { return 1 + exp_bits + man_bits; }
  uint32_t sign_bit() const { return 1u << (exp_bits + man_bits); }
  uint32_t exp_all_ones() const { return (1u << exp_bits) - 1; }
  uint32_t man_all_ones() const { return (1u << man_bits) - 1; }
  int bias() const { return (1 << (exp_bits - 1)) - 1; }
};

double reference_decode(const NarrowCodec& f, uint32_t code) {
  const bool negative = (code & f.sign_bit()) != 0;
  const uint32_t exp = (code >> f.man_bits) & f.exp_all_ones();
  const uint32_t man = code & f.man_all_ones();
  double magnitude;
  if (f.ieee_specials && exp == f.exp_all_ones()) {
    magnitude = man == 0 ? kInf : std::numeric_limits<double>::quiet_NaN();
  } else if (!f.ieee_specials && exp == f.exp_all_ones() && man == f.man_all_ones()) {
    magnitude = std::numeric_limits<double>::quiet_NaN();
  } else if (exp == 0) {
    magnitude = std::ldexp(static_cast<double>(man), 1 - f.bias() - f.man_bits);
  } else {
    const double significand = 1.0 + std::ldexp(static_cast<double>(man), -f.man_bits);
    magnitude = std::ldexp(significand, static_cast<int>(exp) - f.bias());
  }
  return negative ? -magnitude : magnitude;
}

// What the reference knows about a format: the finite non-negative values in
// code order (which the tests check is value order).
struct FormatTable {
  std::vector<double> values;  // values[code] for codes 0 .. max_code
  uint32_t max_code = 0;       // largest finite non-negative code
  double max_value = 0;
  // First value past the largest finite one, as if the format went on; the
  // midpoint to it is where overflow starts.
  double overflow_midpoint = 0;
};

FormatTable build_table(const NarrowCodec& f) {
  FormatTable t;
  for (uint32_t code = 0; code < f.sign_bit(); ++code) {
    const double v = reference_decode(f, code);
    if (!std::isfinite(v)) break;
    t.values.push_back(v);
    t.max_code = code;
  }
  t.max_value = t.values.back();
  const double ulp_at_max = t.values[t.max_code] - t.values[t.max_code - 1];
  t.overflow_midpoint = t.max_value + ulp_at_max / 2;
  return t;
}

bool is_nan_code(const NarrowCodec& f, uint32_t code) { return std::isnan(reference_decode(f, code)); }

// The code an overflowing value becomes (without its sign).
uint32_t overflow_code(const NarrowCodec& f, const FormatTable& t, Overflow overflow) {
  if (overflow == Overflow::saturate) return t.max_code;
  if (f.ieee_specials) return f.exp_all_ones() << f.man_bits;  // Inf
  return f.exp_all_ones() << f.man_bits | f.man_all_ones();     // the one NaN
}

// Nearest representable value by binary search, ties to the even code. `x`
// is finite or infinite, never NaN.
uint32_t reference_encode(const NarrowCodec& f, const FormatTable& t, double x, Overflow overflow) {
  const uint32_t sign = std::signbit(x) ? f.sign_bit() : 0;
  const double a = std::fabs(x);
  if (a > t.max_value) {
    // Past the largest value, rounding is to the largest value or to the
    // (virtual) next code, which overflows; the tie goes to the even one.
    const bool max_is_even = (t.max_code & 1u) == 0;
    if (a < t.overflow_midpoint || (a == t.overflow_midpoint && max_is_even)) return sign | t.max_code;
    return sign | overflow_code(f, t, overflow);
  }
  const auto it = std::lower_bound(t.values.begin(), t.values.end(), a);
  auto upper = static_cast<uint32_t>(it - t.values.begin());
  if (t.values[upper] == a) return sign | upper;
  const uint32_t lower = upper - 1;
  const double below = a - t.values[lower];
  const double above = t.values[upper] - a;
  if (below < above) return sign | lower;
  if (above < below) return sign | upper;
  return sign | ((lower & 1u) == 0 ? lower : upper);
}

// ---------------------------------------------------------------------------
// The four formats under test.

const NarrowCodec kCodecs[] = {
    {"f16", 5, 10, true, [](uint32_t c) { return f16_bits_to_f32(static_cast<uint16_t>(c)); },
     [](float x, Overflow o) { return static_cast<uint32_t>(f32_to_f16_bits(x, o)); }},
    {"bf16", 8, 7, true, [](uint32_t c) { return bf16_bits_to_f32(static_cast<uint16_t>(c)); },
     [](float x, Overflow o) { return static_cast<uint32_t>(f32_to_bf16_bits(x, o)); }},
    {"f8e4m3fn", 4, 3, false, [](uint32_t c) { return f8e4m3fn_bits_to_f32(static_cast<uint8_t>(c)); },
     [](float x, Overflow o) { return static_cast<uint32_t>(f32_to_f8e4m3fn_bits(x, o)); }},
    {"f8e5m2", 5, 2, true, [](uint32_t c) { return f8e5m2_bits_to_f32(static_cast<uint8_t>(c)); },
     [](float x, Overflow o) { return static_cast<uint32_t>(f32_to_f8e5m2_bits(x, o)); }},
};

// Names the format in gtest's failure lines instead of dumping its bytes.
void PrintTo(const NarrowCodec& codec, std::ostream* os) { *os << codec.name; }

class NarrowFloat : public ::testing::TestWithParam<NarrowCodec> {
 protected:
  const NarrowCodec& f = GetParam();
  const FormatTable t = build_table(GetParam());
};

INSTANTIATE_TEST_SUITE_P(Formats, NarrowFloat, ::testing::ValuesIn(kCodecs),
                         [](const ::testing::TestParamInfo<NarrowCodec>& p) { return std::string(p.param.name); });

// The reference itself, pinned to published constants of each format.
TEST(NarrowFloatReference, KnownValues) {
  const NarrowCodec& f16 = kCodecs[0];
  const NarrowCodec& bf16 = kCodecs[1];
  const NarrowCodec& e4m3 = kCodecs[2];
  const NarrowCodec& e5m2 = kCodecs[3];
  EXPECT_EQ(reference_decode(f16, 0x3C00), 1.0);
  EXPECT_EQ(reference_decode(f16, 0xC000), -2.0);
  EXPECT_EQ(reference_decode(f16, 0x0001), std::ldexp(1.0, -24));
  EXPECT_EQ(build_table(f16).max_value, 65504.0);
  EXPECT_EQ(reference_decode(bf16, 0x3F80), 1.0);
  EXPECT_EQ(reference_decode(bf16, 0x0001), std::ldexp(1.0, -133));
  EXPECT_EQ(build_table(bf16).max_value, static_cast<double>(std::bit_cast<float>(0x7F7F0000u)));
  EXPECT_EQ(reference_decode(e4m3, 0x38), 1.0);
  EXPECT_EQ(reference_decode(e4m3, 0x01), std::ldexp(1.0, -9));
  EXPECT_EQ(reference_decode(e4m3, 0x78), 256.0);  // all-ones exponent is a normal binade
  EXPECT_TRUE(std::isnan(reference_decode(e4m3, 0x7F)));
  EXPECT_EQ(build_table(e4m3).max_value, 448.0);
  EXPECT_EQ(build_table(e4m3).max_code, 0x7Eu);
  EXPECT_EQ(reference_decode(e5m2, 0x3C), 1.0);
  EXPECT_EQ(reference_decode(e5m2, 0x01), std::ldexp(1.0, -16));
  EXPECT_EQ(reference_decode(e5m2, 0x7C), kInf);
  EXPECT_EQ(build_table(e5m2).max_value, 57344.0);
}

TEST_P(NarrowFloat, DecodesEveryBitPattern) {
  Mismatches bad;
  for (uint32_t code = 0; code < (1u << f.width()); ++code) {
    const double want = reference_decode(f, code);
    const float got = f.decode(code);
    const bool negative = (code & f.sign_bit()) != 0;
    if (std::isnan(want)) {
      if (!std::isnan(got) || std::signbit(got) != negative) bad.add(hex(code) + " -> " + show(got) + ", want NaN");
    } else if (static_cast<double>(got) != want || std::signbit(got) != negative) {
      bad.add(hex(code) + " -> " + show(got) + ", want " + show(want));
    }
  }
  EXPECT_EQ(bad.count(), 0) << bad.text();
}

TEST_P(NarrowFloat, ValuesAreOrderedByCode) {
  // The encoder's search relies on it; so does every kernel that compares codes.
  for (size_t i = 1; i < t.values.size(); ++i) ASSERT_LT(t.values[i - 1], t.values[i]) << f.name << " code " << i;
}

TEST_P(NarrowFloat, EveryFiniteCodeRoundTrips) {
  Mismatches bad;
  for (uint32_t sign : {0u, f.sign_bit()}) {
    for (uint32_t code = 0; code <= t.max_code; ++code) {
      const double v = reference_decode(f, sign | code);
      const auto x = static_cast<float>(v);
      ASSERT_EQ(static_cast<double>(x), v) << "every value of " << f.name << " must be a float";
      for (Overflow mode : {Overflow::ieee, Overflow::saturate}) {
        const uint32_t got = f.encode(x, mode);
        if (got != (sign | code)) bad.add(show(v) + " -> " + hex(got) + ", want " + hex(sign | code));
      }
    }
  }
  EXPECT_EQ(bad.count(), 0) << bad.text();
}

TEST_P(NarrowFloat, MidpointsTieToEvenAndNeighboursRoundToNearest) {
  Mismatches bad;
  for (uint32_t sign : {0u, f.sign_bit()}) {
    const float s = sign ? -1.0f : 1.0f;
    for (uint32_t lower = 0; lower < t.max_code; ++lower) {
      const uint32_t upper = lower + 1;
      const double mid = (t.values[lower] + t.values[upper]) / 2;
      const auto m = static_cast<float>(mid);
      ASSERT_EQ(static_cast<double>(m), mid) << f.name << ": midpoint not exact in float";
      const uint32_t even = (lower & 1u) == 0 ? lower : upper;
      const float just_below = std::nextafter(m, 0.0f);
      const float just_above = std::nextafter(m, std::numeric_limits<float>::infinity());
      const struct {
        float x;
        uint32_t want;
      } cases[] = {{s * m, sign | even}, {s * just_below, sign | lower}, {s * just_above, sign | upper}};
      for (const auto& c : cases) {
        const uint32_t got = f.encode(c.x, Overflow::ieee);
        if (got != c.want) bad.add(show(c.x) + " -> " + hex(got) + ", want " + hex(c.want));
      }
    }
  }
  EXPECT_EQ(bad.count(), 0) << bad.text();
}

TEST_P(NarrowFloat, OverflowGoesToInfOrNaNOrSaturates) {
  const auto threshold = static_cast<float>(t.overflow_midpoint);
  ASSERT_EQ(static_cast<double>(threshold), t.overflow_midpoint);
  const float inf = std::numeric_limits<float>::infinity();
  const bool max_is_even = (t.max_code & 1u) == 0;
  for (uint32_t sign : {0u, f.sign_bit()}) {
    const float s = sign ? -1.0f : 1.0f;
    for (Overflow mode : {Overflow::ieee, Overflow::saturate}) {
      SCOPED_TRACE(std::string(f.name) + (sign ? " negative" : " positive") +
                   (mode == Overflow::ieee ? " ieee" : " saturate"));
      const uint32_t over = sign | overflow_code(f, t, mode);
      const uint32_t max = sign | t.max_code;
      EXPECT_EQ(f.encode(s * static_cast<float>(t.max_value), mode), max);
      EXPECT_EQ(f.encode(s * std::nextafter(threshold, 0.0f), mode), max);
      EXPECT_EQ(f.encode(s * threshold, mode), max_is_even ? max : over);
      EXPECT_EQ(f.encode(s * std::nextafter(threshold, inf), mode), over);
      EXPECT_EQ(f.encode(s * std::numeric_limits<float>::max(), mode), over);
      EXPECT_EQ(f.encode(s * inf, mode), over);
    }
  }
  // In IEEE mode the overflow code is Inf where the format has Inf, else NaN.
  const uint32_t inf_code = f.encode(inf, Overflow::ieee);
  const uint32_t neg_inf_code = f.encode(-inf, Overflow::ieee);
  if (f.ieee_specials) {
    EXPECT_EQ(reference_decode(f, inf_code), kInf);
    EXPECT_EQ(reference_decode(f, neg_inf_code), -kInf);
  } else {
    EXPECT_TRUE(is_nan_code(f, inf_code));
    EXPECT_TRUE(is_nan_code(f, neg_inf_code));
    EXPECT_NE(neg_inf_code & f.sign_bit(), 0u);
  }
}

TEST_P(NarrowFloat, NaNStaysNaNWithItsSign) {
  // Payloads only in the low bits catch an encoder that truncates f32 to its
  // top bits (0x7F800001 would become Inf).
  const uint32_t nans[] = {0x7FC00000, 0x7F800001, 0x7FFFFFFF, 0x7FA00000, 0x7F800100};
  for (uint32_t bits : nans) {
    for (uint32_t sign_bits : {0u, 0x80000000u}) {
      const float x = std::bit_cast<float>(bits | sign_bits);
      for (Overflow mode : {Overflow::ieee, Overflow::saturate}) {
        const uint32_t code = f.encode(x, mode);
        EXPECT_TRUE(is_nan_code(f, code)) << f.name << ": " << hex(bits | sign_bits) << " -> " << hex(code);
        EXPECT_EQ((code & f.sign_bit()) != 0, sign_bits != 0) << hex(bits | sign_bits);
        EXPECT_LT(code, 1u << f.width());
        if (f.ieee_specials) {  // quiet: top mantissa bit set
          EXPECT_NE(code & (1u << (f.man_bits - 1)), 0u) << hex(code);
        }
        EXPECT_TRUE(std::isnan(f.decode(code)));
      }
    }
  }
}

TEST_P(NarrowFloat, TinyValuesGoToSignedZero) {
  const auto smallest = static_cast<float>(t.values[1]);
  const float tiny[] = {smallest / 4, std::nextafter(smallest / 2, 0.0f), std::numeric_limits<float>::denorm_min(),
                        std::bit_cast<float>(0x00000F00u)};
  for (float x : tiny) {
    ASSERT_GT(x, 0.0f);
    EXPECT_EQ(f.encode(x, Overflow::ieee), 0u) << f.name << " " << show(x);
    EXPECT_EQ(f.encode(-x, Overflow::ieee), f.sign_bit()) << f.name << " " << show(-x);
  }
  EXPECT_EQ(f.encode(0.0f, Overflow::ieee), 0u);
  EXPECT_EQ(f.encode(-0.0f, Overflow::ieee), f.sign_bit());
}

TEST_P(NarrowFloat, SweepOfF32BitPatternsMatchesNearestValueSearch) {
  Mismatches bad;
  // 4099 is prime, so the sweep visits every exponent with varied mantissas.
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += 4099) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(bits));
    for (Overflow mode : {Overflow::ieee, Overflow::saturate}) {
      const uint32_t got = f.encode(x, mode);
      if (std::isnan(x)) {
        if (!is_nan_code(f, got) || ((got & f.sign_bit()) != 0) != std::signbit(x))
          bad.add(hex(static_cast<uint32_t>(bits)) + " (NaN) -> " + hex(got));
        continue;
      }
      const uint32_t want = reference_encode(f, t, static_cast<double>(x), mode);
      if (got != want) {
        bad.add(hex(static_cast<uint32_t>(bits)) + " = " + show(x) + (mode == Overflow::ieee ? " ieee" : " saturate") +
                " -> " + hex(got) + ", want " + hex(want));
      }
    }
  }
  EXPECT_EQ(bad.count(), 0) << bad.text();
}

// ---------------------------------------------------------------------------
// Spot checks a reader can verify by hand.

TEST(NarrowFloatSpots, F8E4M3FNOverflowMatchesPyTorch) {
  // torch.tensor([x]).to(torch.float8_e4m3fn): 448 is the largest value, the
  // tie at 464 rounds to it (even code 0x7E), anything above becomes NaN.
  EXPECT_EQ(f32_to_f8e4m3fn_bits(448.0f), 0x7E);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(460.0f), 0x7E);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(464.0f), 0x7E);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(465.0f), 0x7F);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(480.0f), 0x7F);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(1e6f), 0x7F);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(-480.0f), 0xFF);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(1e6f, Overflow::saturate), 0x7E);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(-1e6f, Overflow::saturate), 0xFE);
  EXPECT_EQ(f32_to_f8e4m3fn_bits(-std::numeric_limits<float>::infinity(), Overflow::saturate), 0xFE);
  EXPECT_EQ(f8e4m3fn_bits_to_f32(0x7E), 448.0f);
  EXPECT_EQ(f8e4m3fn_bits_to_f32(0x78), 256.0f);
  EXPECT_TRUE(std::isnan(f8e4m3fn_bits_to_f32(0xFF)));
  EXPECT_EQ(f32_to_f8e4m3fn_bits(std::ldexp(1.0f, -9)), 0x01);      // smallest subnormal
  EXPECT_EQ(f32_to_f8e4m3fn_bits(std::ldexp(1.0f, -10)), 0x00);     // half of it: tie to even (zero)
  EXPECT_EQ(f32_to_f8e4m3fn_bits(std::ldexp(3.0f, -10)), 0x02);     // 1.5 x smallest: tie to even (2)
  EXPECT_EQ(f32_to_f8e4m3fn_bits(std::ldexp(15.0f, -10)), 0x08);    // rounds up into the first normal
}

TEST(NarrowFloatSpots, F8E5M2AndF16Overflow) {
  EXPECT_EQ(f32_to_f8e5m2_bits(57344.0f), 0x7B);
  EXPECT_EQ(f32_to_f8e5m2_bits(61439.0f), 0x7B);
  EXPECT_EQ(f32_to_f8e5m2_bits(61440.0f), 0x7C);  // tie goes to the even code: Inf
  EXPECT_EQ(f32_to_f8e5m2_bits(61440.0f, Overflow::saturate), 0x7B);
  EXPECT_EQ(f32_to_f8e5m2_bits(-std::numeric_limits<float>::infinity()), 0xFC);
  EXPECT_EQ(f32_to_f16_bits(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16_bits(65519.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16_bits(65520.0f), 0x7C00);
  EXPECT_EQ(f32_to_f16_bits(-65520.0f, Overflow::saturate), 0xFBFF);
  EXPECT_EQ(f32_to_f16_bits(std::numeric_limits<float>::infinity(), Overflow::saturate), 0x7BFF);
  EXPECT_EQ(f32_to_f16_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie, even stays
  EXPECT_EQ(f32_to_f16_bits(1.0f + std::ldexp(3.0f, -11)), 0x3C02);  // tie, odd rounds up
  EXPECT_EQ(f32_to_f16_bits(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(f32_to_f16_bits(std::ldexp(1023.0f, -24) + std::ldexp(1.0f, -25)), 0x0400);  // into the first normal
}

TEST(NarrowFloatSpots, Bf16KeepsF32Range) {
  // bf16 is f32's top half: its subnormals are f32 subnormals and must survive.
  EXPECT_EQ(f32_to_bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16_bits(std::numeric_limits<float>::min()), 0x0080);
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x00010000u)), 0x0001);
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x00018000u)), 0x0002);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x00028000u)), 0x0002);  // tie, even stays
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x80008000u)), 0x8000);  // tie between -0 and -smallest
  EXPECT_EQ(f32_to_bf16_bits(std::bit_cast<float>(0x80008001u)), 0x8001);
  EXPECT_EQ(f32_to_bf16_bits(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(f32_to_bf16_bits(std::numeric_limits<float>::max(), Overflow::saturate), 0x7F7F);
  EXPECT_EQ(f32_to_bf16_bits(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16_bits(-std::numeric_limits<float>::infinity(), Overflow::saturate), 0xFF7F);
  EXPECT_EQ(bf16_bits_to_f32(0x0001), std::bit_cast<float>(0x00010000u));
}

// ---------------------------------------------------------------------------
// Integer types and buffers of any type.

TEST(DTypeTraits, BitsKindsAndBytes) {
  const struct {
    DType t;
    int bits;
    bool is_float;
  } cases[] = {{DType::f32, 32, true},     {DType::f16, 16, true},    {DType::bf16, 16, true}, {DType::f8e4m3fn, 8, true},
               {DType::f8e5m2, 8, true},   {DType::i8, 8, false},     {DType::u8, 8, false},   {DType::i32, 32, false},
               {DType::i64, 64, false},    {DType::i4, 4, false},     {DType::u4, 4, false}};
  ASSERT_EQ(std::size(cases), std::size(kAllDTypes));
  for (const auto& c : cases) {
    SCOPED_TRACE(dtype_name(c.t));
    EXPECT_EQ(dtype_bits(c.t), c.bits);
    EXPECT_EQ(dtype_is_float(c.t), c.is_float);
    EXPECT_EQ(dtype_is_packed(c.t), c.bits < 8);
    EXPECT_EQ(dtype_bytes(c.t, 0), 0u);
    EXPECT_EQ(dtype_bytes(c.t, 6), 6u * static_cast<uint64_t>(c.bits) / 8);
  }
  EXPECT_EQ(dtype_bytes(DType::i4, 1), 1u);
  EXPECT_EQ(dtype_bytes(DType::u4, 3), 2u);
  EXPECT_EQ(dtype_bytes(DType::i4, 4096), 2048u);
  EXPECT_EQ(dtype_bytes(DType::u4, UINT64_MAX), uint64_t{1} << 63);
  EXPECT_EQ(dtype_bytes(DType::u8, UINT64_MAX), UINT64_MAX);
  EXPECT_EQ(dtype_bytes(DType::bf16, uint64_t{1} << 62), uint64_t{1} << 63);
}

TEST(DTypeTraits, ByteCountsThatDoNotFitIn64BitsThrow) {
  EXPECT_THROW(dtype_bytes(DType::f32, uint64_t{1} << 62), Error);
  EXPECT_THROW(dtype_bytes(DType::i64, uint64_t{1} << 61), Error);
  EXPECT_THROW(dtype_bytes(DType::f16, UINT64_MAX), Error);
  EXPECT_EQ(dtype_bytes(DType::i64, (uint64_t{1} << 61) - 1), UINT64_MAX - 7);
}

TEST(DTypeNames, OurNamesRoundTrip) {
  for (DType t : kAllDTypes) {
    const auto back = dtype_from_name(dtype_name(t));
    ASSERT_TRUE(back.has_value()) << dtype_name(t);
    EXPECT_EQ(*back, t);
  }
  EXPECT_EQ(dtype_name(DType::bf16), "bf16");
  EXPECT_EQ(dtype_name(DType::f8e4m3fn), "f8e4m3fn");
  EXPECT_EQ(dtype_name(DType::u4), "u4");
}

TEST(DTypeNames, TorchNames) {
  const struct {
    const char* name;
    DType t;
  } cases[] = {{"float32", DType::f32},         {"float", DType::f32},           {"float16", DType::f16},
               {"half", DType::f16},            {"bfloat16", DType::bf16},       {"float8_e4m3fn", DType::f8e4m3fn},
               {"float8_e5m2", DType::f8e5m2},  {"int8", DType::i8},             {"uint8", DType::u8},
               {"int32", DType::i32},           {"int64", DType::i64}};
  for (const auto& c : cases) {
    EXPECT_EQ(dtype_from_name(c.name), std::optional<DType>(c.t)) << c.name;
  }
  for (const char* unknown : {"", "float64", "BF16", "bf 16", "torch.bfloat16", "int4", "f8", "bf16 "}) {
    EXPECT_EQ(dtype_from_name(unknown), std::nullopt) << "'" << unknown << "'";
  }
}

TEST(DTypeNames, SafetensorsNames) {
  const struct {
    const char* name;
    DType t;
  } cases[] = {{"F32", DType::f32},  {"F16", DType::f16}, {"BF16", DType::bf16}, {"F8_E4M3", DType::f8e4m3fn},
               {"F8_E5M2", DType::f8e5m2}, {"I8", DType::i8}, {"U8", DType::u8}, {"I32", DType::i32},
               {"I64", DType::i64}};
  for (const auto& c : cases) {
    EXPECT_EQ(dtype_from_safetensors(c.name), std::optional<DType>(c.t)) << c.name;
    EXPECT_EQ(dtype_safetensors_name(c.t), std::optional<std::string_view>(c.name));
  }
  EXPECT_EQ(dtype_safetensors_name(DType::i4), std::nullopt);
  EXPECT_EQ(dtype_safetensors_name(DType::u4), std::nullopt);
  // Names safetensors defines that Flint does not load, and near misses.
  for (const char* unknown : {"F64", "I16", "U16", "U32", "U64", "BOOL", "F8_E8M0", "bf16", "f32", "", "F8_E4M3FN"}) {
    EXPECT_EQ(dtype_from_safetensors(unknown), std::nullopt) << "'" << unknown << "'";
  }
}

// Stores x as element 1 of a zeroed buffer and reads it back.
template <typename Int>
Int store_int(DType t, float x) {
  Int buf[3] = {};
  store_from_f32(t, buf, 1, x);
  EXPECT_EQ(buf[0], Int{0});
  EXPECT_EQ(buf[2], Int{0});
  return buf[1];
}

TEST(IntegerStore, RoundsToNearestEvenAndSaturates) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const struct {
    float x;
    int8_t want;
  } i8_cases[] = {{0.4f, 0},    {0.5f, 0},     {1.5f, 2},    {2.5f, 2},      {-0.5f, 0},   {-1.5f, -2},
                  {-2.6f, -3},  {126.6f, 127}, {127.5f, 127}, {1000.0f, 127}, {-128.4f, -128},
                  {-128.5f, -128}, {-1e9f, -128}, {inf, 127},  {-inf, -128},   {nan, 0}};
  for (const auto& c : i8_cases) EXPECT_EQ(store_int<int8_t>(DType::i8, c.x), c.want) << "i8 " << c.x;

  const struct {
    float x;
    uint8_t want;
  } u8_cases[] = {{-0.4f, 0}, {-1.0f, 0}, {0.5f, 0}, {1.5f, 2}, {254.5f, 254}, {255.4f, 255},
                  {255.5f, 255}, {300.0f, 255}, {inf, 255}, {-inf, 0}, {nan, 0}};
  for (const auto& c : u8_cases) EXPECT_EQ(store_int<uint8_t>(DType::u8, c.x), c.want) << "u8 " << c.x;

  const struct {
    float x;
    int32_t want;
  } i32_cases[] = {{123456.5f, 123456},     {-123457.5f, -123458},         {2147483648.0f, INT32_MAX},
                   {1e10f, INT32_MAX},      {-2147483648.0f, INT32_MIN},   {-1e10f, INT32_MIN},
                   {16777216.0f, 16777216}, {2147483520.0f, 2147483520},   {nan, 0}};
  for (const auto& c : i32_cases) EXPECT_EQ(store_int<int32_t>(DType::i32, c.x), c.want) << "i32 " << c.x;

  const struct {
    float x;
    int64_t want;
  } i64_cases[] = {{std::ldexp(1.0f, 62), int64_t{1} << 62}, {std::ldexp(1.0f, 63), INT64_MAX},
                   {-std::ldexp(1.0f, 63), INT64_MIN},       {1e30f, INT64_MAX},
                   {-1e30f, INT64_MIN},                      {-7.5f, -8},
                   {inf, INT64_MAX},                         {nan, 0}};
  for (const auto& c : i64_cases) EXPECT_EQ(store_int<int64_t>(DType::i64, c.x), c.want) << "i64 " << c.x;
}

TEST(IntegerLoad, ConvertsToNearestFloat) {
  const int8_t i8[] = {-128, -1, 127};
  EXPECT_EQ(load_as_f32(DType::i8, i8, 0), -128.0f);
  EXPECT_EQ(load_as_f32(DType::i8, i8, 2), 127.0f);
  const uint8_t u8[] = {0, 200, 255};
  EXPECT_EQ(load_as_f32(DType::u8, u8, 1), 200.0f);
  EXPECT_EQ(load_as_f32(DType::u8, u8, 2), 255.0f);
  const int32_t i32[] = {0, -16777216, 16777217, INT32_MIN};
  EXPECT_EQ(load_as_f32(DType::i32, i32, 1), -16777216.0f);
  EXPECT_EQ(load_as_f32(DType::i32, i32, 2), 16777216.0f);  // 2^24 + 1 is a tie: to even
  EXPECT_EQ(load_as_f32(DType::i32, i32, 3), -2147483648.0f);
  const int64_t i64[] = {1, INT64_MAX, -(int64_t{1} << 40)};
  EXPECT_EQ(load_as_f32(DType::i64, i64, 1), std::ldexp(1.0f, 63));
  EXPECT_EQ(load_as_f32(DType::i64, i64, 2), -std::ldexp(1.0f, 40));
}

TEST(FloatBuffers, StoreAndLoadUseTheIeeeConversions) {
  float f32[2] = {};
  store_from_f32(DType::f32, f32, 1, -3.25f);
  EXPECT_EQ(f32[1], -3.25f);
  EXPECT_EQ(load_as_f32(DType::f32, f32, 1), -3.25f);

  uint16_t h[3] = {};
  store_from_f32(DType::f16, h, 2, 1e6f);
  EXPECT_EQ(h[2], 0x7C00);  // overflow is Inf, not saturation
  store_from_f32(DType::f16, h, 1, 0.1f);
  EXPECT_EQ(h[1], f32_to_f16_bits(0.1f));
  EXPECT_EQ(h[0], 0);
  EXPECT_EQ(load_as_f32(DType::f16, h, 1), f16_bits_to_f32(h[1]));

  uint16_t b[2] = {};
  store_from_f32(DType::bf16, b, 1, -2.0f);
  EXPECT_EQ(b[1], 0xC000);
  EXPECT_EQ(load_as_f32(DType::bf16, b, 1), -2.0f);

  uint8_t e4[2] = {}, e5[2] = {};
  store_from_f32(DType::f8e4m3fn, e4, 1, 500.0f);
  EXPECT_EQ(e4[1], 0x7F);
  store_from_f32(DType::f8e5m2, e5, 1, -1.0f);
  EXPECT_EQ(e5[1], 0xBC);
  EXPECT_EQ(load_as_f32(DType::f8e5m2, e5, 1), -1.0f);
  EXPECT_EQ(e4[0], 0);
  EXPECT_EQ(e5[0], 0);
}

// ---------------------------------------------------------------------------
// Packed 4-bit.

TEST(Packed4Bit, LowNibbleIsTheEvenElement) {
  uint8_t data[2] = {};
  i4_set(data, 0, 1);
  i4_set(data, 1, -2);
  i4_set(data, 2, 7);
  i4_set(data, 3, -8);
  EXPECT_EQ(data[0], 0xE1);
  EXPECT_EQ(data[1], 0x87);
  EXPECT_EQ(i4_get(data, 1), -2);
  EXPECT_EQ(i4_get(data, 3), -8);
  EXPECT_EQ(u4_get(data, 1), 0xE);
  EXPECT_EQ(u4_get(data, 2), 7);
}

TEST(Packed4Bit, EveryByteDecodesAndEveryNibbleSetsWithoutTouchingItsNeighbour) {
  for (int byte = 0; byte < 256; ++byte) {
    const auto b = static_cast<uint8_t>(byte);
    const int lo = byte & 0xF, hi = byte >> 4;
    ASSERT_EQ(u4_get(&b, 0), lo);
    ASSERT_EQ(u4_get(&b, 1), hi);
    ASSERT_EQ(i4_get(&b, 0), lo >= 8 ? lo - 16 : lo);
    ASSERT_EQ(i4_get(&b, 1), hi >= 8 ? hi - 16 : hi);
    ASSERT_EQ(load_as_f32(DType::i4, &b, 1), static_cast<float>(hi >= 8 ? hi - 16 : hi));
    ASSERT_EQ(load_as_f32(DType::u4, &b, 0), static_cast<float>(lo));
    for (int v = 0; v < 16; ++v) {
      uint8_t u = b;
      u4_set(&u, 0, static_cast<uint8_t>(v));
      ASSERT_EQ(u, (byte & 0xF0) | v);
      u = b;
      u4_set(&u, 1, static_cast<uint8_t>(v));
      ASSERT_EQ(u, (byte & 0x0F) | (v << 4));
      uint8_t s = b;
      i4_set(&s, 1, static_cast<int8_t>(v - 8));
      ASSERT_EQ(i4_get(&s, 1), v - 8);
      ASSERT_EQ(u4_get(&s, 0), lo);
    }
  }
}

TEST(Packed4Bit, StoreRoundsAndSaturates) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const struct {
    float x;
    int want;
  } i4_cases[] = {{0.4f, 0},  {-0.4f, 0},  {2.5f, 2},   {3.5f, 4},  {-3.5f, -4},   {6.6f, 7},
                  {7.5f, 7},  {100.0f, 7}, {-8.0f, -8}, {-8.5f, -8}, {-1e9f, -8}, {nan, 0}};
  for (const auto& c : i4_cases) {
    for (uint64_t i : {0, 1}) {
      uint8_t data[2] = {0xAA, 0xAA};
      store_from_f32(DType::i4, data, i + 2, c.x);
      EXPECT_EQ(i4_get(data, i + 2), c.want) << "i4 " << c.x;
      EXPECT_EQ(u4_get(data, 3 - i), 0xA) << "neighbour of element " << i + 2;
      EXPECT_EQ(data[0], 0xAA);
    }
  }
  const struct {
    float x;
    int want;
  } u4_cases[] = {{-1.0f, 0}, {0.5f, 0}, {1.5f, 2}, {14.5f, 14}, {15.4f, 15}, {15.5f, 15}, {100.0f, 15}, {nan, 0}};
  for (const auto& c : u4_cases) {
    uint8_t data[1] = {0x55};
    store_from_f32(DType::u4, data, 1, c.x);
    EXPECT_EQ(u4_get(data, 1), c.want) << "u4 " << c.x;
    EXPECT_EQ(u4_get(data, 0), 5);
  }
}

}  // namespace
}  // namespace flint
