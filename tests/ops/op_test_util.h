// tests/ops/op_test_util.h — random inputs and tolerances shared by the op tests.
//
// Inputs are uniform in [-1, 1) from a seed each test names (distinct per case,
// so a failure reproduces); narrow dtypes store the rounded value and the
// double-precision references read the stored value back, so rounding of the
// inputs is never mistaken for an op error.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace flint::testing {

// Unit roundoff of f32.
inline constexpr double kF32Unit = 1.0 / (1 << 24);

// gamma_n = n u / (1 - n u): the classic bound on the relative error of any
// f32 sum of n terms, whatever the order of additions.
inline double gamma_f32(int64_t n) {
  const double nu = static_cast<double>(n) * kF32Unit;
  return nu / (1.0 - nu);
}

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(seed) {}
  float uniform(float lo = -1.0f, float hi = 1.0f) { return std::uniform_real_distribution<float>(lo, hi)(gen_); }
  int32_t integer(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(gen_); }
  std::mt19937_64& gen() { return gen_; }

  // A host tensor of `dtype` with uniform values in [lo, hi).
  Tensor tensor(DType dtype, Shape shape, float lo = -1.0f, float hi = 1.0f) {
    Tensor t = Tensor::empty(dtype, std::move(shape));
    for (int64_t i = 0; i < t.numel(); ++i) store_from_f32(dtype, t.raw(), static_cast<uint64_t>(i), uniform(lo, hi));
    return t;
  }

 private:
  std::mt19937_64 gen_;
};

inline double at(const Tensor& t, int64_t i) { return static_cast<double>(t.item_f32(i)); }

// Runs a test body once per instruction set this CPU has, restoring detection
// afterwards (so the portable path is tested on AVX2 machines too).
class IsaScope {
 public:
  explicit IsaScope(cpu::Isa isa) { cpu::set_isa_override(isa); }
  ~IsaScope() { cpu::set_isa_override(std::nullopt); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;
};

inline std::vector<cpu::Isa> available_isas() {
  std::vector<cpu::Isa> out = {cpu::Isa::generic};
  if (cpu::detected_isa() == cpu::Isa::avx2) out.push_back(cpu::Isa::avx2);
  return out;
}

inline const char* isa_name(cpu::Isa isa) { return isa == cpu::Isa::avx2 ? "avx2" : "generic"; }

}  // namespace flint::testing
