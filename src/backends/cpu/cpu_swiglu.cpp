// out = silu(gate) * up, with silu(g) = g / (1 + e^-g) as torch computes it.
// A prefill step evaluates one exponential per MLP unit per token, so the AVX2
// path uses the vector exp8 (within ~2 ulp of expf).
#include <cmath>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_simd.h"

namespace flint::cpu {
namespace {

inline float silu_mul(float g, float u) { return g / (1.0f + std::exp(-g)) * u; }

#if FLINT_CPU_HAVE_AVX2_KERNELS
FLINT_AVX2 void swiglu_row_avx2(const float* gate, const float* up, int64_t f, float* out) {
  const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= f; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(zero, g));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
  for (; i < f; ++i) out[i] = silu_mul(gate[i], up[i]);
}
#endif

}  // namespace

void swiglu(const float* gate_up, int64_t n, int64_t f, float* out) {
  const bool avx2 = active_isa() == Isa::avx2;
  (void)avx2;
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t t = 0; t < n; ++t) {
    const float* gate = gate_up + t * 2 * f;
    const float* up = gate + f;
    float* o = out + t * f;
#if FLINT_CPU_HAVE_AVX2_KERNELS
    if (avx2) {
      swiglu_row_avx2(gate, up, f, o);
      continue;
    }
#endif
    for (int64_t i = 0; i < f; ++i) o[i] = silu_mul(gate[i], up[i]);
  }
}

}  // namespace flint::cpu
