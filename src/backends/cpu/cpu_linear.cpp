// y = x W^T + b on the CPU.
//
// Every output is summed in one order, whatever the path and however many rows
// of x share the call (the batch invariance cpu_kernels.h promises): eight lane
// sums over k = 8q + l, each a chain of FMAs in q order; their fixed-tree sum
// (hsum); the k % 8 tail in order; then the bias. The paths differ only in how
// they walk (rows of W) x (rows of x) tiles:
// - GEMV (a few rows of x, i.e. decode): bound by reading W once from memory.
//   Each thread streams its own contiguous run of weight rows, four at a time,
//   widening bf16/f16 in registers; the rows of x stay in L1.
// - GEMM (prefill): bound by FLOPs. A work item is a block of 16 weight rows.
//   It walks k in chunks, widening the block's chunk once into an L1 panel,
//   and runs every token group's 4-row x 3-token tiles (twelve lane-sum
//   accumulators) over it; between chunks the accumulators wait in an
//   L2-resident buffer, so each chain of FMAs simply continues.
// The portable path is the same order in plain C++ with a multiply and an add
// where the vector paths fuse them (the backend is built with
// -ffp-contract=off, so the compiler cannot fuse some sites and not others).
#include <omp.h>

#include <algorithm>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_simd.h"
#include "core/error.h"

namespace flint::cpu {
namespace {

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

// Runs body(part_index, first_output_column) for each part.
template <typename F>
void for_each_part(std::span<const WeightRows> parts, F&& body) {
  int64_t col = 0;
  for (size_t p = 0; p < parts.size(); ++p) {
    body(p, col);
    col += parts[p].rows;
  }
}

// The last steps of the one order, shared by every path: the k % 8 tail after
// the lane sums, then the bias.
template <DType W>
inline float finish_dot(float lanes_sum, const char* wrow, const float* xrow, int64_t k, const float* bias) {
  float s = lanes_sum;
  for (int64_t j = k / 8 * 8; j < k; ++j) s += load1<W>(wrow, j) * xrow[j];
  return s + (bias ? *bias : 0.0f);
}

// ---------------------------------------------------------------- portable path

// Eight lane sums added as hsum() adds them: (l0 + l4) + (l2 + l6), then
// (l1 + l5) + (l3 + l7), then those two.
inline float lanes_tree_sum(const float (&a)[8]) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

template <DType W>
float dot_generic(const char* row, const float* xt, int64_t k) {
  float acc[8] = {};
  for (int64_t i = 0; i + 8 <= k; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += load1<W>(row, i + j) * xt[i + j];
  return lanes_tree_sum(acc);
}

// One implementation for every number of rows of x: blocks of 16 weight rows
// per work item, so that a block stays in cache while the tokens go by.
void linear_generic(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias,
                    float* out, int64_t ldo) {
  constexpr int64_t kBlock = 16;
#pragma omp parallel
  for_each_part(parts, [&](size_t p, int64_t col) {
    const WeightRows& part = parts[p];
    with_weight_dtype(part.dtype, [&]<DType W>() {
#pragma omp for schedule(static) nowait
      for (int64_t r0 = 0; r0 < part.rows; r0 += kBlock) {
        const int64_t r1 = std::min(part.rows, r0 + kBlock);
        for (int64_t t = 0; t < n; ++t) {
          const float* xt = x + t * k;
          for (int64_t r = r0; r < r1; ++r) {
            const char* row = row_ptr(part.data, W, r, k);
            const float* b = bias ? bias + col + r : nullptr;
            out[t * ldo + col + r] = finish_dot<W>(dot_generic<W>(row, xt, k), row, xt, k, b);
          }
        }
      }
    });
  });
}

#if FLINT_CPU_HAVE_AVX2_KERNELS

// ---------------------------------------------------------------- AVX2 tiles

// state[r * NT + t] += the lane products of weight row r and token t over
// [k0, k1), a multiple of 8 long: each lane's chain of FMAs continues.
// While it streams the rows it prefetches the same bytes of the R rows after
// them (`next`, or null): with K = 2048 a bf16 row is exactly one 4 KiB page,
// and hardware prefetchers stop at page boundaries, so without this every row
// would start with a miss.
template <DType W, int R, int NT>
FLINT_AVX2 inline void dot_tile(const char* w, size_t row_bytes, const char* next, int64_t k0, int64_t k1,
                                const float* x, int64_t ldx, __m256* state) {
  constexpr int64_t kStep = 64 / static_cast<int64_t>(W == DType::f32 ? 4 : 2);  // elements per cache line
  __m256 acc[R][NT];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) acc[r][t] = state[r * NT + t];
  int64_t i = k0;
  if (next) {
    for (; i + kStep <= k1; i += kStep) {
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r)
        _mm_prefetch(next + r * row_bytes + static_cast<size_t>(i) * elem_bytes(W), _MM_HINT_T0);
#pragma GCC unroll 4
      for (int64_t u = 0; u < kStep; u += 8) {
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) {
          const __m256 wv = load8<W>(w + r * row_bytes, i + u);
#pragma GCC unroll 4
          for (int t = 0; t < NT; ++t)
            acc[r][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * ldx + i + u), acc[r][t]);
        }
      }
    }
  }
  for (; i < k1; i += 8) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = load8<W>(w + r * row_bytes, i);
#pragma GCC unroll 4
      for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * ldx + i), acc[r][t]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int t = 0; t < NT; ++t) state[r * NT + t] = acc[r][t];
}

// Calls f.template operator()<R, NT>() for 1 <= r <= 4, 1 <= nt <= 3.
template <typename F>
FLINT_AVX2 inline void with_tile_shape(int64_t r, int64_t nt, F&& f) {
  const auto by_tokens = [&]<int R>() {
    switch (nt) {
      case 1: f.template operator()<R, 1>(); return;
      case 2: f.template operator()<R, 2>(); return;
      default: f.template operator()<R, 3>(); return;
    }
  };
  switch (r) {
    case 1: by_tokens.template operator()<1>(); return;
    case 2: by_tokens.template operator()<2>(); return;
    case 3: by_tokens.template operator()<3>(); return;
    default: by_tokens.template operator()<4>(); return;
  }
}

// out[t * ldo + r] from the lane sums in state[r * tokens + t].
template <DType W>
FLINT_AVX2 void finish_tile(const __m256* state, int64_t rows, int64_t tokens, const char* w, size_t row_bytes,
                            const float* x, int64_t k, const float* bias, float* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t t = 0; t < tokens; ++t)
      out[t * ldo + r] =
          finish_dot<W>(hsum(state[r * tokens + t]), w + r * row_bytes, x + t * k, k, bias ? bias + r : nullptr);
}

// ---------------------------------------------------------------- AVX2 GEMV

template <DType W>
FLINT_AVX2 void gemv_part_avx2(const float* x, int64_t n, int64_t k, const void* w, int64_t rows, const float* bias,
                               float* out, int64_t ldo) {
  const size_t row_bytes = static_cast<size_t>(k) * elem_bytes(W);
  const int64_t k8 = k / 8 * 8;
  const int64_t blocks = (rows + 3) / 4;
#pragma omp for schedule(static) nowait
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = b * 4, nr = std::min<int64_t>(4, rows - r0);
    const char* wr = row_ptr(w, W, r0, k);
    const char* next = r0 + 8 <= rows ? row_ptr(w, W, r0 + 4, k) : nullptr;
    for (int64_t t = 0; t < n; t += 2) {
      const int64_t nt = std::min<int64_t>(2, n - t);
      __m256 state[8];
      for (__m256& s : state) s = _mm256_setzero_ps();
      // Only the first pass over the rows prefetches; later ones hit L1/L2.
      with_tile_shape(nr, nt, [&]<int R, int NT>() {
        dot_tile<W, R, NT>(wr, row_bytes, t == 0 ? next : nullptr, 0, k8, x + t * k, k, state);
      });
      finish_tile<W>(state, nr, nt, wr, row_bytes, x + t * k, k, bias ? bias + r0 : nullptr, out + t * ldo + r0, ldo);
    }
  }
}

void linear_gemv_avx2(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias,
                      float* out, int64_t ldo) {
#pragma omp parallel
  for_each_part(parts, [&](size_t p, int64_t col) {
    with_weight_dtype(parts[p].dtype, [&]<DType W>() {
      gemv_part_avx2<W>(x, n, k, parts[p].data, parts[p].rows, bias ? bias + col : nullptr, out + col, ldo);
    });
  });
}

// ---------------------------------------------------------------- AVX2 GEMM

constexpr int64_t kTileRows = 4;
constexpr int64_t kTileTokens = 3;
constexpr int64_t kBlockRows = 16;    // weight rows per work item
constexpr int64_t kKc = 256;          // k per panel: 16 rows x 256 widened to f32 are 16 KiB, in L1
constexpr int64_t kTokenChunk = 255;  // tokens per pass over W: 85 groups x 16 rows of lane sums, 130 KiB, in L2

// x [n, k] -> xp: for each k-chunk, its columns of every token, [n][kc],
// contiguous. Rows of x are a power of two apart in the Llama shapes, so
// read in place their chunks would crowd into a few cache sets.
FLINT_AVX2 void pack_x(const float* x, int64_t n, int64_t k, float* xp) {
  const int64_t k8 = k / 8 * 8;
#pragma omp for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t k0 = 0; k0 < k8; k0 += kKc) {
      const int64_t kc = std::min(kKc, k8 - k0);
      std::copy(x + t * k + k0, x + t * k + k0 + kc, xp + k0 * n + t * kc);
    }
  }
}

// Output columns of one block of `mrows` <= kBlockRows weight rows (w, bias
// and out point at its first), tokens [0, n <= kTokenChunk); xp is x packed
// by pack_x. For each k-chunk the block's rows are widened to f32 once
// (exact, so the FMAs are those of the GEMV) into an L1-resident panel, and
// every token group runs its tiles over it; each tile's lane sums wait in
// `state` for the next chunk.
template <DType W>
FLINT_AVX2 void gemm_block(const float* x, const float* xp, int64_t n, int64_t k, const char* w, int64_t mrows,
                           const float* bias, float* out, int64_t ldo, __m256* state) {
  const size_t row_bytes = static_cast<size_t>(k) * elem_bytes(W);
  const int64_t k8 = k / 8 * 8, groups = (n + kTileTokens - 1) / kTileTokens;
  constexpr int64_t kGroupState = kBlockRows * kTileTokens;  // group g's lane sums: [row][token], stride nt
  std::fill(state, state + groups * kGroupState, _mm256_setzero_ps());
  alignas(32) float panel[kBlockRows * kKc];
  for (int64_t k0 = 0; k0 < k8; k0 += kKc) {
    const int64_t kc = std::min(kKc, k8 - k0);
    for (int64_t r = 0; r < mrows; ++r)
      for (int64_t i = 0; i < kc; i += 8) _mm256_store_ps(panel + r * kc + i, load8<W>(w + r * row_bytes, k0 + i));
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t t0 = g * kTileTokens, nt = std::min(kTileTokens, n - t0);
      for (int64_t r = 0; r < mrows; r += kTileRows) {
        with_tile_shape(std::min(kTileRows, mrows - r), nt, [&]<int R, int NT>() {
          dot_tile<DType::f32, R, NT>(reinterpret_cast<const char*>(panel + r * kc), static_cast<size_t>(kc) * 4,
                                      nullptr, 0, kc, xp + k0 * n + t0 * kc, kc, state + g * kGroupState + r * nt);
        });
      }
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t t0 = g * kTileTokens, nt = std::min(kTileTokens, n - t0);
    finish_tile<W>(state + g * kGroupState, mrows, nt, w, row_bytes, x + t0 * k, k, bias, out + t0 * ldo, ldo);
  }
}

struct GemmItem {
  size_t part;
  int64_t m0, mrows, col;
};

void linear_gemm_avx2(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias,
                      float* out, int64_t ldo) {
  std::vector<GemmItem> items;
  for_each_part(parts, [&](size_t p, int64_t col) {
    for (int64_t m0 = 0; m0 < parts[p].rows; m0 += kBlockRows)
      items.push_back({p, m0, std::min(kBlockRows, parts[p].rows - m0), col + m0});
  });
  const auto count = static_cast<int64_t>(items.size());
  // The caller's scratch, shared by the team (a thread_local named inside the
  // parallel region would be each thread's own).
  thread_local std::vector<float> xp_scratch;
  xp_scratch.resize(static_cast<size_t>(std::min(n, kTokenChunk) * k));
  float* const xp = xp_scratch.data();
  for (int64_t t0 = 0; t0 < n; t0 += kTokenChunk) {
    const int64_t tokens = std::min(kTokenChunk, n - t0);
#pragma omp parallel
    {
      pack_x(x + t0 * k, tokens, k, xp);
      // A vector of __m256 itself would drop the type's alignment.
      struct alignas(32) Lanes {
        __m256 v;
      };
      thread_local std::vector<Lanes> state(kTokenChunk / kTileTokens * kBlockRows * kTileTokens);
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < count; ++i) {
        const GemmItem& it = items[static_cast<size_t>(i)];
        const WeightRows& part = parts[it.part];
        with_weight_dtype(part.dtype, [&]<DType W>() {
          gemm_block<W>(x + t0 * k, xp, tokens, k, row_ptr(part.data, W, it.m0, k), it.mrows,
                        bias ? bias + it.col : nullptr, out + t0 * ldo + it.col, ldo, &state[0].v);
        });
      }
    }
  }
}

#endif  // FLINT_CPU_HAVE_AVX2_KERNELS

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
  linear_generic(x, n, k, parts, bias, out, ldo);
}

}  // namespace flint::cpu
