// RoPE inverse frequencies: default, linear, Llama 3.1's scaling against an
// independent formula and published-config spot values, dynamic NTK by length.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "model/config.h"

namespace flint {
namespace {

LlamaConfig rope_config(double theta, int64_t head_dim, RopeScaling scaling) {
  LlamaConfig c;
  c.hidden_size = 4096;
  c.num_attention_heads = c.num_key_value_heads = 4096 / head_dim;
  c.head_dim = head_dim;
  c.rope_theta = theta;
  c.rope_scaling = scaling;
  c.max_position_embeddings = 131072;
  c.validate();
  return c;
}

TEST(Rope, DefaultFrequencies) {
  for (const int64_t d : {8, 64, 128}) {
    const std::vector<double> f = rope_inv_freq(rope_config(10000.0, d, {}));
    ASSERT_EQ(f.size(), static_cast<size_t>(d / 2));
    EXPECT_EQ(f[0], 1.0);
    // theta^(-2i/d) = exp(-(2i/d) ln theta): an independent way to the same value.
    for (size_t i = 0; i < f.size(); ++i)
      EXPECT_NEAR(f[i], std::exp(-2.0 * static_cast<double>(i) / static_cast<double>(d) * std::log(10000.0)), 1e-15 * 4)
          << i;
    for (size_t i = 1; i < f.size(); ++i) EXPECT_LT(f[i], f[i - 1]);
  }
}

TEST(Rope, LinearDividesByTheFactor) {
  const std::vector<double> plain = rope_inv_freq(rope_config(10000.0, 128, {}));
  const std::vector<double> linear = rope_inv_freq(rope_config(10000.0, 128, {RopeType::linear, 4.0}));
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_DOUBLE_EQ(linear[i], plain[i] / 4.0);
}

// Llama 3.1 as published: theta 500000, factor 8, low 1, high 4, original 8192,
// head_dim 128. Expected values computed in double with Python from the
// formula in transformers' _compute_llama3_parameters.
TEST(Rope, Llama31SpotValues) {
  const std::vector<double> f = rope_inv_freq(rope_config(500000.0, 128, {RopeType::llama3, 8.0, 1.0, 4.0, 8192}));
  ASSERT_EQ(f.size(), 64u);
  const std::vector<std::pair<size_t, double>> spots = {
      {0, 1.0},                      // wavelength 2 pi: high frequency, unchanged
      {20, 0.016560440080994446},    // wavelength 379 < 2048: unchanged
      {28, 0.0032114459947525913},   // wavelength 1956.5: last unchanged
      {29, 0.002166570763503359},    // wavelength 2402: blended
      {30, 0.0013718935677611381},   // wavelength 2948: blended
      {32, 0.0005248461609929547},   // wavelength 4443: blended
      {34, 0.00017850781276799638},  // wavelength 6695: blended
      {35, 9.556212353964683e-05},   // wavelength 8219 > 8192: divided by 8
      {63, 3.068925988914511e-07},   // lowest frequency, divided by 8
  };
  for (const auto& [i, want] : spots) EXPECT_NEAR(f[i], want, 1e-14 * want) << "i = " << i;
}

// The same scaling written the other way round: classify each frequency by its
// period in positions and blend with a clamped ramp, for other shapes too.
TEST(Rope, Llama3MatchesAnIndependentFormula) {
  struct Case {
    double theta, factor, low, high;
    int64_t orig, head_dim;
  };
  for (const Case& k : {Case{500000.0, 8.0, 1.0, 4.0, 8192, 128}, Case{500000.0, 32.0, 1.0, 4.0, 8192, 64},
                        Case{10000.0, 4.0, 2.0, 8.0, 2048, 96}, Case{1e6, 16.0, 0.5, 3.0, 4096, 128}}) {
    const std::vector<double> f =
        rope_inv_freq(rope_config(k.theta, k.head_dim, {RopeType::llama3, k.factor, k.low, k.high, k.orig}));
    ASSERT_EQ(f.size(), static_cast<size_t>(k.head_dim / 2));
    int blended = 0;
    for (size_t i = 0; i < f.size(); ++i) {
      const double base = std::pow(k.theta, -2.0 * static_cast<double>(i) / static_cast<double>(k.head_dim));
      const double period = 2 * std::numbers::pi / base;
      // How many times the original context fits this period, mapped to [0, 1]
      // between low_freq_factor (0: fully scaled) and high_freq_factor (1: kept).
      const double ramp = std::clamp((static_cast<double>(k.orig) / period - k.low) / (k.high - k.low), 0.0, 1.0);
      const double want = base * (ramp + (1 - ramp) / k.factor);
      EXPECT_NEAR(f[i], want, 1e-13 * want) << "i = " << i << " theta " << k.theta;
      blended += ramp > 0 && ramp < 1;
    }
    EXPECT_GT(blended, 0);  // every case exercises the smooth band
  }
}

TEST(Rope, DynamicIsDefaultUntilPastMaxPositions) {
  const LlamaConfig plain = rope_config(10000.0, 128, {});
  const LlamaConfig dyn = rope_config(10000.0, 128, {RopeType::dynamic, 2.0});
  EXPECT_EQ(rope_inv_freq(dyn), rope_inv_freq(plain));
  EXPECT_EQ(rope_inv_freq_for_length(dyn, 100), rope_inv_freq(plain));
  EXPECT_EQ(rope_inv_freq_for_length(dyn, dyn.max_position_embeddings), rope_inv_freq(plain));
  for (const int64_t len : {dyn.max_position_embeddings + 1, 2 * dyn.max_position_embeddings, int64_t{1} << 20}) {
    const std::vector<double> f = rope_inv_freq_for_length(dyn, len);
    const double d = 128, s = static_cast<double>(len) / static_cast<double>(dyn.max_position_embeddings);
    const double base = 10000.0 * std::pow(2.0 * s - 1.0, d / (d - 2));
    for (size_t i = 0; i < f.size(); ++i)
      EXPECT_NEAR(f[i], std::pow(base, -2.0 * static_cast<double>(i) / d), 1e-13 * f[i]) << len << " " << i;
    EXPECT_LT(f.back(), rope_inv_freq(plain).back());  // a larger base: slower rotations
  }
  // Other types do not depend on the length.
  const LlamaConfig l3 = rope_config(500000.0, 128, {RopeType::llama3, 8.0, 1.0, 4.0, 8192});
  EXPECT_EQ(rope_inv_freq_for_length(l3, 1 << 20), rope_inv_freq(l3));
}

}  // namespace
}  // namespace flint
