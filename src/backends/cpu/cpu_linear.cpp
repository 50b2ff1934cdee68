// y = x W^T + b on the CPU, two ways:
// - GEMV (a few rows of x, i.e. decode): bound by reading W once from memory.
//   Each thread streams its own contiguous run of weight rows, four at a time,
//   widening bf16/f16 in registers; the rows of x stay in L1.
// - GEMM (prefill): bound by FLOPs. Goto-style blocking: x is packed once per
//   call into [k-block][6-token block][kc][6]; each thread packs a 128-row x
//   256-k panel of W into f32 [16-row slice][kc][16] (transposing 8x8 in
//   registers) and runs a 6x16 outer-product kernel (12 accumulators, two FMAs
//   per broadcast). The portable path converts panels and calls OpenBLAS.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_simd.h"
#include "core/error.h"

namespace flint::cpu {
namespace {

constexpr int64_t kMr = 6;     // tokens per micro-tile
constexpr int64_t kNr = 16;    // output features per micro-tile
constexpr int64_t kKc = 256;   // k per packed panel: a 16 x kc slice of W is 16 KiB, L1-resident
constexpr int64_t kNc = 128;   // output features per thread work item: the packed panel is 128 KiB, in L2
constexpr int64_t kMc = 96;    // tokens per pass over a panel: 96 x kc of packed x is 96 KiB, in L2
constexpr int64_t kGemmChunk = 768;  // tokens per pass over W: packed x of <= 768 x k floats (24 MiB at k = 8192)
constexpr int64_t kGenericPanelRows = 256;

// Reusable 64-byte aligned scratch; one per thread (thread_local at the use).
class Scratch {
 public:
  float* get(size_t count) {
    if (count > size_) {
      const size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
      buf_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (!buf_) throw std::bad_alloc();
      size_ = count;
    }
    return buf_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> buf_;
  size_t size_ = 0;
};

size_t elem_bytes(DType t) { return t == DType::f32 ? 4 : 2; }

const char* row_ptr(const void* w, DType t, int64_t row, int64_t k) {
  return static_cast<const char*>(w) + static_cast<size_t>(row) * static_cast<size_t>(k) * elem_bytes(t);
}

// Calls f.template operator()<W>() with the weight dtype as a template argument.
template <typename F>
void with_weight_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<DType::f32>(); return;
    case DType::bf16: f.template operator()<DType::bf16>(); return;
    case DType::f16: f.template operator()<DType::f16>(); return;
    default: fail("linear: weights of dtype {} are not supported on the CPU (f32, bf16, f16)", dtype_name(t));
  }
}

// ---------------------------------------------------------------- portable path

template <DType W>
void gemv_part_generic(const float* x, int64_t n, int64_t k, const void* w, int64_t rows, const float* bias,
                       float* out, int64_t ldo) {
#pragma omp for schedule(static) nowait
  for (int64_t r = 0; r < rows; ++r) {
    const char* row = row_ptr(w, W, r, k);
    for (int64_t t = 0; t < n; ++t) {
      // Eight partial sums: the same association as the vector path, and
      // something the compiler can vectorise without reassociating.
      float acc[8] = {};
      const float* xt = x + t * k;
      int64_t i = 0;
      for (; i + 8 <= k; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += load1<W>(row, i + j) * xt[i + j];
      float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; i < k; ++i) s += load1<W>(row, i) * xt[i];
      out[t * ldo + r] = s + (bias ? bias[r] : 0.0f);
    }
  }
}

template <DType W>
void gemm_part_generic(const float* x, int64_t n, int64_t k, const void* w, int64_t rows, float* out, int64_t ldo) {
  const auto in = static_cast<blasint>(k);
  if constexpr (W == DType::f32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n), static_cast<blasint>(rows), in, 1.0f,
                x, in, static_cast<const float*>(w), in, 0.0f, out, static_cast<blasint>(ldo));
  } else {
    thread_local Scratch scratch;
    float* panel = scratch.get(static_cast<size_t>(kGenericPanelRows * k));
    for (int64_t r0 = 0; r0 < rows; r0 += kGenericPanelRows) {
      const int64_t pr = std::min(kGenericPanelRows, rows - r0);
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < pr; ++r) {
        const char* row = row_ptr(w, W, r0 + r, k);
        for (int64_t i = 0; i < k; ++i) panel[r * k + i] = load1<W>(row, i);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n), static_cast<blasint>(pr), in,
                  1.0f, x, in, panel, in, 0.0f, out + r0, static_cast<blasint>(ldo));
    }
  }
}

void add_bias(int64_t n, int64_t cols, const float* bias, float* out, int64_t ldo) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < cols; ++c) out[t * ldo + c] += bias[c];
}

#if FLINT_CPU_HAVE_AVX2_KERNELS

// ---------------------------------------------------------------- AVX2 GEMV

// R weight rows x NT rows of x; out[t * ldo + r]. While it streams its rows it
// prefetches the same bytes of the R rows after them (`next`, or null): with
// K = 2048 a bf16 row is exactly one 4 KiB page, and hardware prefetchers stop
// at page boundaries, so without this every row would start with a miss.
template <DType W, int R, int NT>
FLINT_AVX2 inline void gemv_tile(const char* w, const char* next, int64_t k, const float* x, const float* bias,
                                 float* out, int64_t ldo) {
  const size_t row_bytes = static_cast<size_t>(k) * elem_bytes(W);
  constexpr int64_t kStep = 64 / static_cast<int64_t>(W == DType::f32 ? 4 : 2);  // elements per cache line
  __m256 acc[R][NT];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + kStep <= k; i += kStep) {
    if (next) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) _mm_prefetch(next + r * row_bytes + static_cast<size_t>(i) * elem_bytes(W), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int64_t u = 0; u < kStep; u += 8) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m256 wv = load8<W>(w + r * row_bytes, i + u);
#pragma GCC unroll 4
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * k + i + u), acc[r][t]);
      }
    }
  }
  for (; i + 8 <= k; i += 8) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = load8<W>(w + r * row_bytes, i);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * k + i), acc[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < NT; ++t) {
      float s = hsum(acc[r][t]);
      for (int64_t j = i; j < k; ++j) s += load1<W>(w + r * row_bytes, j) * x[t * k + j];
      out[t * ldo + r] = s + (bias ? bias[r] : 0.0f);
    }
  }
}

template <DType W>
FLINT_AVX2 void gemv_part_avx2(const float* x, int64_t n, int64_t k, const void* w, int64_t rows, const float* bias,
                               float* out, int64_t ldo) {
  const int64_t blocks = (rows + 3) / 4;
#pragma omp for schedule(static) nowait
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = b * 4;
    const char* wr = row_ptr(w, W, r0, k);
    const float* br = bias ? bias + r0 : nullptr;
    if (r0 + 4 <= rows) {
      const char* next = r0 + 8 <= rows ? row_ptr(w, W, r0 + 4, k) : nullptr;
      int64_t t = 0;
      // Only the first pass over the rows prefetches; later ones hit L1/L2.
      for (; t + 2 <= n; t += 2)
        gemv_tile<W, 4, 2>(wr, t == 0 ? next : nullptr, k, x + t * k, br, out + t * ldo + r0, ldo);
      if (t < n) gemv_tile<W, 4, 1>(wr, t == 0 ? next : nullptr, k, x + t * k, br, out + t * ldo + r0, ldo);
    } else {
      for (int64_t r = r0; r < rows; ++r)
        for (int64_t t = 0; t < n; ++t)
          gemv_tile<W, 1, 1>(row_ptr(w, W, r, k), nullptr, k, x + t * k, bias ? bias + r : nullptr,
                             out + t * ldo + r, ldo);
    }
  }
}

// ---------------------------------------------------------------- AVX2 GEMM

FLINT_AVX2 inline void transpose8(__m256 v[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// x [n, k] -> xp: for each k-block kb, for each 6-token block tb, [kcl][6]
// (tokens past n are zero). Called inside a parallel region.
FLINT_AVX2 void pack_x(const float* x, int64_t n, int64_t k, float* xp) {
  const int64_t ntb = (n + kMr - 1) / kMr, nkb = (k + kKc - 1) / kKc;
#pragma omp for schedule(static)
  for (int64_t item = 0; item < nkb * ntb; ++item) {
    const int64_t kb = item / ntb, tb = item % ntb;
    const int64_t k0 = kb * kKc, kcl = std::min(kKc, k - k0);
    float* dst = xp + kb * kKc * ntb * kMr + tb * kcl * kMr;
    for (int64_t i = 0; i < kMr; ++i) {
      const int64_t t = tb * kMr + i;
      if (t < n) {
        const float* src = x + t * k + k0;
        for (int64_t kk = 0; kk < kcl; ++kk) dst[kk * kMr + i] = src[kk];
      } else {
        for (int64_t kk = 0; kk < kcl; ++kk) dst[kk * kMr + i] = 0.0f;
      }
    }
  }
}

// Rows [m0, m0 + mrows) x columns [k0, k0 + kcl) of W -> wp: for each 16-row
// slice, [kcl][16] in f32 (rows past mrows are zero).
template <DType W>
FLINT_AVX2 void pack_w(const void* w, int64_t k, int64_t m0, int64_t mrows, int64_t k0, int64_t kcl, float* wp) {
  for (int64_t j = 0; j * kNr < mrows; ++j) {
    float* panel = wp + j * kcl * kNr;
    for (int64_t half = 0; half < 2; ++half) {
      const int64_t rr0 = j * kNr + half * 8;
      const int64_t valid = std::clamp<int64_t>(mrows - rr0, 0, 8);
      const char* rows[8];
      for (int64_t r = 0; r < 8; ++r) rows[r] = r < valid ? row_ptr(w, W, m0 + rr0 + r, k) : nullptr;
      int64_t kk = 0;
      if (valid == 8) {
        for (; kk + 8 <= kcl; kk += 8) {
          __m256 v[8];
#pragma GCC unroll 8
          for (int r = 0; r < 8; ++r) v[r] = load8<W>(rows[r], k0 + kk);
          transpose8(v);
#pragma GCC unroll 8
          for (int i = 0; i < 8; ++i) _mm256_storeu_ps(panel + (kk + i) * kNr + half * 8, v[i]);
        }
      }
      for (; kk < kcl; ++kk)
        for (int64_t r = 0; r < 8; ++r)
          panel[kk * kNr + half * 8 + r] = r < valid ? load1<W>(rows[r], k0 + kk) : 0.0f;
    }
  }
}

// c[6][16] (+)= a[kc][6] (outer) b[kc][16].
FLINT_AVX2 inline void kernel_6x16(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                   bool accumulate) {
  __m256 acc[kMr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kMr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += kMr;
    b += kNr;
  }
#pragma GCC unroll 6
  for (int i = 0; i < kMr; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      acc[i][0] = _mm256_add_ps(acc[i][0], _mm256_loadu_ps(ci));
      acc[i][1] = _mm256_add_ps(acc[i][1], _mm256_loadu_ps(ci + 8));
    }
    _mm256_storeu_ps(ci, acc[i][0]);
    _mm256_storeu_ps(ci + 8, acc[i][1]);
  }
}

// Brings rows [m0, m0 + count) x columns [k0, k0 + kKc) of W towards L2 while
// the kernels run on the current panel, so that the next pack_w reads cache,
// not DRAM: its rows are 512-byte pieces 4+ KiB apart, which the hardware
// prefetchers do not follow.
template <DType W>
FLINT_AVX2 inline void prefetch_w_rows(const void* w, int64_t k, int64_t m0, int64_t count, int64_t k0) {
  const int64_t bytes = std::min(kKc, k - k0) * static_cast<int64_t>(elem_bytes(W));
  for (int64_t r = 0; r < count; ++r) {
    const char* row = row_ptr(w, W, m0 + r, k) + static_cast<size_t>(k0) * elem_bytes(W);
    for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(row + b, _MM_HINT_T1);
  }
}

// Output columns [m0, m0 + mrows) of one part, all n tokens. out points at
// column m0 of token 0.
template <DType W>
FLINT_AVX2 void gemm_block(const float* xp, int64_t n, int64_t k, const void* w, int64_t m0, int64_t mrows,
                           const float* bias, float* out, int64_t ldo, float* wp) {
  const int64_t ntb = (n + kMr - 1) / kMr;
  for (int64_t k0 = 0; k0 < k; k0 += kKc) {
    const int64_t kcl = std::min(kKc, k - k0);
    const bool accumulate = k0 > 0;
    pack_w<W>(w, k, m0, mrows, k0, kcl, wp);
    const float* xk = xp + (k0 / kKc) * kKc * ntb * kMr;
    for (int64_t tc = 0; tc < ntb; tc += kMc / kMr) {
      const int64_t tc_end = std::min(ntb, tc + kMc / kMr);
      for (int64_t j = 0; j * kNr < mrows; ++j) {
        const float* bp = wp + j * kcl * kNr;
        const int64_t cols = std::min(kNr, mrows - j * kNr);
        if (tc == 0 && k0 + kKc < k) prefetch_w_rows<W>(w, k, m0 + j * kNr, cols, k0 + kKc);
        for (int64_t tb = tc; tb < tc_end; ++tb) {
          const int64_t rows = std::min(kMr, n - tb * kMr);
          const float* ap = xk + tb * kcl * kMr;
          float* cp = out + tb * kMr * ldo + j * kNr;
          if (rows == kMr && cols == kNr) {
            kernel_6x16(kcl, ap, bp, cp, ldo, accumulate);
          } else {
            alignas(32) float tile[kMr * kNr];
            kernel_6x16(kcl, ap, bp, tile, kNr, false);
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t c = 0; c < cols; ++c)
                cp[r * ldo + c] = (accumulate ? cp[r * ldo + c] : 0.0f) + tile[r * kNr + c];
          }
        }
      }
    }
  }
  if (bias)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < mrows; ++c) out[t * ldo + c] += bias[c];
}

struct GemmItem {
  size_t part;
  int64_t m0, mrows, col;
};

void linear_gemm_avx2_chunk(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts,
                            const float* bias, float* out, int64_t ldo) {
  const int64_t ntb = (n + kMr - 1) / kMr;
  thread_local Scratch x_scratch;
  float* xp = x_scratch.get(static_cast<size_t>(ntb * kMr * k));
  std::vector<GemmItem> items;
  int64_t col = 0;
  for (size_t p = 0; p < parts.size(); ++p) {
    for (int64_t m0 = 0; m0 < parts[p].rows; m0 += kNc)
      items.push_back({p, m0, std::min(kNc, parts[p].rows - m0), col + m0});
    col += parts[p].rows;
  }
  const auto count = static_cast<int64_t>(items.size());
#pragma omp parallel
  {
    pack_x(x, n, k, xp);
    thread_local Scratch w_scratch;
    float* wp = w_scratch.get(static_cast<size_t>(kNc * kKc));
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < count; ++i) {
      const GemmItem& it = items[static_cast<size_t>(i)];
      const WeightRows& part = parts[it.part];
      with_weight_dtype(part.dtype, [&]<DType W>() {
        gemm_block<W>(xp, n, k, part.data, it.m0, it.mrows, bias ? bias + it.col : nullptr, out + it.col, ldo, wp);
      });
    }
  }
}

// Long prompts run in chunks of tokens so that packed x stays bounded (it
// lives on in the caller's thread-local scratch); each chunk re-reads W, which
// costs little next to 2 * kGemmChunk FLOPs per weight.
void linear_gemm_avx2(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias,
                      float* out, int64_t ldo) {
  for (int64_t t0 = 0; t0 < n; t0 += kGemmChunk)
    linear_gemm_avx2_chunk(x + t0 * k, std::min(kGemmChunk, n - t0), k, parts, bias, out + t0 * ldo, ldo);
}

void linear_gemv_avx2(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias,
                      float* out, int64_t ldo) {
#pragma omp parallel
  {
    int64_t col = 0;
    for (const WeightRows& part : parts) {
      with_weight_dtype(part.dtype, [&]<DType W>() {
        gemv_part_avx2<W>(x, n, k, part.data, part.rows, bias ? bias + col : nullptr, out + col, ldo);
      });
      col += part.rows;
    }
  }
}

#endif  // FLINT_CPU_HAVE_AVX2_KERNELS

void linear_gemv_generic(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias,
                         float* out, int64_t ldo) {
#pragma omp parallel
  {
    int64_t col = 0;
    for (const WeightRows& part : parts) {
      with_weight_dtype(part.dtype, [&]<DType W>() {
        gemv_part_generic<W>(x, n, k, part.data, part.rows, bias ? bias + col : nullptr, out + col, ldo);
      });
      col += part.rows;
    }
  }
}

void linear_gemm_generic(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias,
                         float* out, int64_t ldo) {
  int64_t col = 0;
  for (const WeightRows& part : parts) {
    with_weight_dtype(part.dtype,
                      [&]<DType W>() { gemm_part_generic<W>(x, n, k, part.data, part.rows, out + col, ldo); });
    if (bias) add_bias(n, part.rows, bias + col, out + col, ldo);
    col += part.rows;
  }
}

}  // namespace

void linear(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias, float* out,
            int64_t ldo, LinearPath path) {
  int64_t total = 0;
  for (const WeightRows& part : parts) {
    with_weight_dtype(part.dtype, []<DType>() {});  // rejects unsupported dtypes before any work
    total += part.rows;
  }
  FLINT_CHECK(ldo >= total, "linear: output row stride {} < {} output features", ldo, total);
  if (n == 0 || total == 0) return;
  if (k == 0) {
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < total; ++c) out[t * ldo + c] = bias ? bias[c] : 0.0f;
    return;
  }
  if (path == LinearPath::automatic) path = n <= kGemvMaxRows ? LinearPath::gemv : LinearPath::gemm;
#if FLINT_CPU_HAVE_AVX2_KERNELS
  if (active_isa() == Isa::avx2) {
    if (path == LinearPath::gemv)
      linear_gemv_avx2(x, n, k, parts, bias, out, ldo);
    else
      linear_gemm_avx2(x, n, k, parts, bias, out, ldo);
    return;
  }
#endif
  if (path == LinearPath::gemv)
    linear_gemv_generic(x, n, k, parts, bias, out, ldo);
  else
    linear_gemm_generic(x, n, k, parts, bias, out, ldo);
}

}  // namespace flint::cpu
