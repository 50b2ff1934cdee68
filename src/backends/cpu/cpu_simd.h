// backends/cpu/cpu_simd.h — AVX2 building blocks shared by the CPU kernels.
//
// Contract: everything here is compiled for AVX2 + FMA + F16C through function
// target attributes, never through global flags, so the rest of the binary runs
// on any x86-64. Callers reach these only after active_isa() == Isa::avx2.
// Loads are unaligned; weights in bf16/f16/f32 widen exactly to f32.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/dtype.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FLINT_CPU_HAVE_AVX2_KERNELS 1
#define FLINT_AVX2 __attribute__((target("avx2,fma,f16c")))
#else
#define FLINT_CPU_HAVE_AVX2_KERNELS 0
#define FLINT_AVX2
#endif

namespace flint::cpu {

// Element i of a weight row as f32, for tails and the portable path.
template <DType W>
inline float load1(const void* base, int64_t i) {
  if constexpr (W == DType::f32) {
    return static_cast<const float*>(base)[i];
  } else if constexpr (W == DType::bf16) {
    return bf16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
  } else {
    return f16_bits_to_f32(static_cast<const uint16_t*>(base)[i]);
  }
}

#if FLINT_CPU_HAVE_AVX2_KERNELS

// Eight consecutive elements starting at i, widened to f32.
template <DType W>
FLINT_AVX2 inline __m256 load8(const void* base, int64_t i) {
  if constexpr (W == DType::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(base) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(base) + i));
    if constexpr (W == DType::bf16) {
      // bf16 is the top half of an f32: zero-extend and shift into place.
      return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    } else {
      return _mm256_cvtph_ps(h);
    }
  }
}

FLINT_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

FLINT_AVX2 inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// e^x for 8 lanes, within ~2 ulp of expf over the range where the result is a
// normal float; inputs below -87.3 give ~1e-38 instead of a denormal, which
// every caller (softmax weights, silu) treats as zero anyway. Cody-Waite range
// reduction x = n ln2 + r, then a degree-6 polynomial for e^r on |r| <= ln2/2.
FLINT_AVX2 inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

#endif  // FLINT_CPU_HAVE_AVX2_KERNELS

}  // namespace flint::cpu
