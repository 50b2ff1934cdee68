// Rotary embedding, the paged K/V store, and causal attention over the paged
// cache. Attention reads K/V only through the block tables, so a decode token,
// a prefill chunk and a whole prompt run the same code.
//
// Attention is tiled like FlashAttention: a work item is (sequence, kv head,
// up to 64 query rows), where the rows are the query tokens x the q heads that
// share the kv head (GQA). It walks the sequence's cache blocks in order,
// scoring the block's keys against all its rows and folding them into a
// running max / sum / output per row (online softmax), so memory stays
// O(rows x head_dim) whatever the context, and each K/V block is read once per
// item rather than once per query head.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_simd.h"
#include "core/error.h"

namespace flint::cpu {
namespace {

constexpr int kMaxTileRows = 64;
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Stores f32 values into a cache row of dtype t (RNE for the narrow types).
void store_row(DType t, void* dst, const float* src, int64_t n) {
  if (t == DType::f32) {
    std::copy(src, src + n, static_cast<float*>(dst));
  } else if (t == DType::bf16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16_bits(src[i]);
  } else {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16_bits(src[i]);
  }
}

template <typename F>
void with_cache_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<DType::f32>(); return;
    case DType::bf16: f.template operator()<DType::bf16>(); return;
    case DType::f16: f.template operator()<DType::f16>(); return;
    default: fail("KV cache dtype {} is not supported on the CPU (f32, bf16, f16)", dtype_name(t));
  }
}

// One attention work item's running state. Row r is query token r / group,
// q head (kv_head * group + r % group).
struct Tile {
  int rows = 0;
  int head_dim = 0;
  const float* q[kMaxTileRows];  // each [head_dim]
  int32_t qpos[kMaxTileRows];    // position of each row's token
  float corr[kMaxTileRows];      // this block's rescale of the row's running state
  float* s;                      // [rows][block_size] scores, then weights
  float* m;                      // [rows] running max
  float* l;                      // [rows] running sum of weights
  float* acc;                    // [rows][head_dim] running weighted sum of values
};

// The two block kernels, per instruction set:
//   scores(tile, k, nk, scale, lds): s[r][j] = scale * q_r . k_j, j < nk
//   fold(tile, v, nk, lds): p = exp(s - m) (0 where s is -inf); l = l corr + sum p;
//                           acc = acc corr + p V
// The driver sets m and corr per row between the two.

// ------------------------------------------------------------ portable kernels

template <DType C>
struct GenericKernels {
  static constexpr size_t kElem = C == DType::f32 ? 4 : 2;

  static void scores(const Tile& tile, const void* k, int nk, float scale, int lds) {
    const int d = tile.head_dim;
    for (int r = 0; r < tile.rows; ++r) {
      for (int j = 0; j < nk; ++j) {
        const void* kj = static_cast<const char*>(k) + static_cast<size_t>(j) * d * kElem;
        float sum = 0.0f;
        for (int i = 0; i < d; ++i) sum += tile.q[r][i] * load1<C>(kj, i);
        tile.s[r * lds + j] = sum * scale;
      }
    }
  }

  static void fold(const Tile& tile, const void* v, int nk, int lds) {
    const int d = tile.head_dim;
    for (int r = 0; r < tile.rows; ++r) {
      float* s = tile.s + r * lds;
      float* acc = tile.acc + r * d;
      float sum = 0.0f;
      for (int j = 0; j < nk; ++j) {
        s[j] = s[j] == kNegInf ? 0.0f : std::exp(s[j] - tile.m[r]);
        sum += s[j];
      }
      tile.l[r] = tile.l[r] * tile.corr[r] + sum;
      for (int i = 0; i < d; ++i) acc[i] *= tile.corr[r];
      for (int j = 0; j < nk; ++j) {
        const void* vj = static_cast<const char*>(v) + static_cast<size_t>(j) * d * kElem;
        for (int i = 0; i < d; ++i) acc[i] += s[j] * load1<C>(vj, i);
      }
    }
  }
};

#if FLINT_CPU_HAVE_AVX2_KERNELS

// head_dim must be a multiple of 8 here. Both kernels work on groups of rows
// so that each K or V vector is widened once per group, not once per row.
template <DType C>
struct Avx2Kernels {
  static constexpr size_t kElem = C == DType::f32 ? 4 : 2;

  // Rows in pairs x keys in fours: eight independent dot products at a time.
  FLINT_AVX2 static void scores(const Tile& tile, const void* k, int nk, float scale, int lds) {
    const int d = tile.head_dim;
    const auto* kb = static_cast<const char*>(k);
    const size_t row_bytes = static_cast<size_t>(d) * kElem;
    int r = 0;
    for (; r + 2 <= tile.rows; r += 2) {
      const float* q0 = tile.q[r];
      const float* q1 = tile.q[r + 1];
      float* s0 = tile.s + r * lds;
      float* s1 = s0 + lds;
      int j = 0;
      for (; j + 4 <= nk; j += 4) {
        __m256 a[2][4];
        for (int u = 0; u < 4; ++u) a[0][u] = a[1][u] = _mm256_setzero_ps();
        const char* k0 = kb + static_cast<size_t>(j) * row_bytes;
        for (int i = 0; i < d; i += 8) {
          const __m256 x0 = _mm256_loadu_ps(q0 + i), x1 = _mm256_loadu_ps(q1 + i);
#pragma GCC unroll 4
          for (int u = 0; u < 4; ++u) {
            const __m256 kv = load8<C>(k0 + u * row_bytes, i);
            a[0][u] = _mm256_fmadd_ps(x0, kv, a[0][u]);
            a[1][u] = _mm256_fmadd_ps(x1, kv, a[1][u]);
          }
        }
        for (int u = 0; u < 4; ++u) {
          s0[j + u] = hsum(a[0][u]) * scale;
          s1[j + u] = hsum(a[1][u]) * scale;
        }
      }
      for (; j < nk; ++j) {
        s0[j] = dot(q0, kb + static_cast<size_t>(j) * row_bytes, d) * scale;
        s1[j] = dot(q1, kb + static_cast<size_t>(j) * row_bytes, d) * scale;
      }
    }
    for (; r < tile.rows; ++r)
      for (int j = 0; j < nk; ++j)
        tile.s[r * lds + j] = dot(tile.q[r], kb + static_cast<size_t>(j) * row_bytes, d) * scale;
  }

  FLINT_AVX2 static float dot(const float* q, const char* kj, int d) {
    __m256 a = _mm256_setzero_ps();
    for (int i = 0; i < d; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8<C>(kj, i), a);
    return hsum(a);
  }

  FLINT_AVX2 static void fold(const Tile& tile, const void* v, int nk, int lds) {
    const int d = tile.head_dim;
    const __m256 neg_inf = _mm256_set1_ps(kNegInf);
    for (int r = 0; r < tile.rows; ++r) {
      float* s = tile.s + r * lds;
      const __m256 mv = _mm256_set1_ps(tile.m[r]);
      __m256 sumv = _mm256_setzero_ps();
      int j = 0;
      for (; j + 8 <= nk; j += 8) {
        const __m256 sv = _mm256_loadu_ps(s + j);
        const __m256 keep = _mm256_cmp_ps(sv, neg_inf, _CMP_NEQ_OQ);
        const __m256 p = _mm256_and_ps(exp8(_mm256_sub_ps(sv, mv)), keep);
        _mm256_storeu_ps(s + j, p);
        sumv = _mm256_add_ps(sumv, p);
      }
      if (j < nk) {
        // The last keys as one more vector padded with masked lanes, not a
        // scalar loop: nk is set by the tile's last row, and a row's sum must
        // come out the same whatever the other rows of its tile (the batch
        // invariance cpu_kernels.h promises). Padding only adds zero vectors.
        alignas(32) float tail[8];
        for (int u = 0; u < 8; ++u) tail[u] = j + u < nk ? s[j + u] : kNegInf;
        const __m256 sv = _mm256_load_ps(tail);
        const __m256 keep = _mm256_cmp_ps(sv, neg_inf, _CMP_NEQ_OQ);
        const __m256 p = _mm256_and_ps(exp8(_mm256_sub_ps(sv, mv)), keep);
        _mm256_store_ps(tail, p);
        std::copy(tail, tail + (nk - j), s + j);
        sumv = _mm256_add_ps(sumv, p);
      }
      tile.l[r] = tile.l[r] * tile.corr[r] + hsum(sumv);
    }
    // acc[r] = acc[r] corr[r] + sum_j p[r][j] V[j], four rows x 16 columns at
    // a time: eight accumulators, each V vector widened once per four rows.
    const auto* vb = static_cast<const char*>(v);
    const size_t row_bytes = static_cast<size_t>(d) * kElem;
    for (int r0 = 0; r0 < tile.rows; r0 += 4) {
      const int nr = std::min(4, tile.rows - r0);
      for (int i0 = 0; i0 < d; i0 += 16) {
        const int nv = std::min(16, d - i0) / 8;  // 1 or 2 vectors
        __m256 a[4][2];
        for (int r = 0; r < 4; ++r) {
          const float* ar = tile.acc + (r0 + std::min(r, nr - 1)) * d + i0;
          const __m256 cv = _mm256_set1_ps(tile.corr[r0 + std::min(r, nr - 1)]);
          a[r][0] = _mm256_mul_ps(_mm256_loadu_ps(ar), cv);
          a[r][1] = nv == 2 ? _mm256_mul_ps(_mm256_loadu_ps(ar + 8), cv) : a[r][0];
        }
        if (nr == 4 && nv == 2) {
          for (int j = 0; j < nk; ++j) {
            const char* vj = vb + static_cast<size_t>(j) * row_bytes;
            const __m256 v0 = load8<C>(vj, i0), v1 = load8<C>(vj, i0 + 8);
#pragma GCC unroll 4
            for (int r = 0; r < 4; ++r) {
              const __m256 p = _mm256_broadcast_ss(tile.s + (r0 + r) * lds + j);
              a[r][0] = _mm256_fmadd_ps(p, v0, a[r][0]);
              a[r][1] = _mm256_fmadd_ps(p, v1, a[r][1]);
            }
          }
        } else {
          for (int j = 0; j < nk; ++j) {
            const char* vj = vb + static_cast<size_t>(j) * row_bytes;
            for (int u = 0; u < nv; ++u) {
              const __m256 vv = load8<C>(vj, i0 + 8 * u);
              for (int r = 0; r < nr; ++r)
                a[r][u] = _mm256_fmadd_ps(_mm256_broadcast_ss(tile.s + (r0 + r) * lds + j), vv, a[r][u]);
            }
          }
        }
        for (int r = 0; r < nr; ++r)
          for (int u = 0; u < nv; ++u) _mm256_storeu_ps(tile.acc + (r0 + r) * d + i0 + 8 * u, a[r][u]);
      }
    }
  }
};

#endif  // FLINT_CPU_HAVE_AVX2_KERNELS

// Runs one work item: `tokens` query tokens of sequence `seq` starting at
// token t0, kv head `kvh`.
template <class K>
void attend_tile(const float* qkv, int64_t width, const AttentionParams& p, const StepView& step, const char* k_cache,
                 const char* v_cache, size_t elem, int seq, int64_t t0, int tokens, int kvh, std::vector<float>& buf,
                 float* out) {
  const Batch& b = *step.batch;
  const int group = p.num_heads / p.kv_heads, d = p.head_dim, bs = step.block_size;
  Tile tile;
  tile.rows = tokens * group;
  tile.head_dim = d;
  buf.resize(static_cast<size_t>(tile.rows) * (bs + d + 2));
  tile.s = buf.data();
  tile.acc = tile.s + tile.rows * bs;
  tile.m = tile.acc + tile.rows * d;
  tile.l = tile.m + tile.rows;
  for (int r = 0; r < tile.rows; ++r) {
    const int64_t t = t0 + r / group;
    tile.q[r] = qkv + t * width + static_cast<int64_t>(kvh * group + r % group) * d;
    tile.qpos[r] = b.positions[static_cast<size_t>(t)];
    tile.m[r] = kNegInf;
    tile.l[r] = 0.0f;
  }
  std::fill(tile.acc, tile.acc + tile.rows * d, 0.0f);

  const int32_t first_pos = tile.qpos[0], last_pos = tile.qpos[tile.rows - 1];
  const int32_t* table = b.block_tables.data() + static_cast<size_t>(seq) * b.max_blocks_per_seq;
  const size_t head_bytes = static_cast<size_t>(bs) * d * elem;
  for (int blk = 0; blk * bs <= last_pos; ++blk) {
    const int32_t key0 = blk * bs;
    const int nk = std::min(bs, last_pos + 1 - key0);
    const size_t offset = (static_cast<size_t>(table[blk]) * p.kv_heads + kvh) * head_bytes;
    K::scores(tile, k_cache + offset, nk, p.scale, bs);
    const bool needs_mask = key0 + nk - 1 > first_pos;
    for (int r = 0; r < tile.rows; ++r) {
      float* s = tile.s + r * bs;
      if (needs_mask)
        for (int j = std::max(0, tile.qpos[r] + 1 - key0); j < nk; ++j) s[j] = kNegInf;
      float mx = kNegInf;
      for (int j = 0; j < nk; ++j) mx = std::max(mx, s[j]);
      if (mx == kNegInf) {  // every key of this block is in the row's future: weights 0, state kept
        tile.corr[r] = 1.0f;
        continue;
      }
      const float m_new = std::max(tile.m[r], mx);
      tile.corr[r] = tile.m[r] == kNegInf ? 0.0f : std::exp(tile.m[r] - m_new);
      tile.m[r] = m_new;
    }
    K::fold(tile, v_cache + offset, nk, bs);
  }
  for (int r = 0; r < tile.rows; ++r) {
    const int64_t t = t0 + r / group;
    float* o = out + t * static_cast<int64_t>(p.num_heads) * d + static_cast<int64_t>(kvh * group + r % group) * d;
    const float inv = 1.0f / tile.l[r];
    for (int i = 0; i < d; ++i) o[i] = tile.acc[r * d + i] * inv;
  }
}

struct WorkItem {
  int seq;
  int kvh;
  int64_t t0;
  int tokens;
};

}  // namespace

void rope_and_cache(float* qkv, const float* inv_freq, const AttentionParams& p, const StepView& step,
                    const Tensor& k_cache, const Tensor& v_cache) {
  const Batch& b = *step.batch;
  const int64_t T = b.num_tokens();
  const int d = p.head_dim, half = d / 2, bs = step.block_size;
  const int64_t width = static_cast<int64_t>(p.num_heads + 2 * p.kv_heads) * d;
  const DType cache_dtype = k_cache.dtype();
  const size_t elem = cache_dtype == DType::f32 ? 4 : 2;
  auto* kc = reinterpret_cast<char*>(k_cache.raw());
  auto* vc = reinterpret_cast<char*>(v_cache.raw());
  // A region costs more than rotating a decode token or two.
#pragma omp parallel if (T > 2)
  {
    std::vector<float> cs(static_cast<size_t>(d));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < T; ++t) {
      const int32_t pos = b.positions[static_cast<size_t>(t)];
      // The angle is an f32 product as in HF (inv_freq.float() @ position.float());
      // its cos/sin are rounded once from double.
      for (int i = 0; i < half; ++i) {
        const float angle = static_cast<float>(pos) * inv_freq[i];
        cs[static_cast<size_t>(i)] = static_cast<float>(std::cos(static_cast<double>(angle)));
        cs[static_cast<size_t>(half + i)] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
      float* row = qkv + t * width;
      for (int h = 0; h < p.num_heads + p.kv_heads; ++h) {
        float* x = row + static_cast<int64_t>(h) * d;
        for (int i = 0; i < half; ++i) {
          const float c = cs[static_cast<size_t>(i)], s = cs[static_cast<size_t>(half + i)];
          const float x0 = x[i], x1 = x[i + half];
          x[i] = x0 * c - x1 * s;
          x[i + half] = x1 * c + x0 * s;
        }
      }
      const int32_t seq = step.token_seq[t];
      const int32_t block = b.block_tables[static_cast<size_t>(seq) * b.max_blocks_per_seq + pos / bs];
      for (int h = 0; h < p.kv_heads; ++h) {
        const size_t at = ((static_cast<size_t>(block) * p.kv_heads + h) * bs + pos % bs) * d * elem;
        store_row(cache_dtype, kc + at, row + static_cast<int64_t>(p.num_heads + h) * d, d);
        store_row(cache_dtype, vc + at, row + static_cast<int64_t>(p.num_heads + p.kv_heads + h) * d, d);
      }
    }
  }
}

void attention(const float* qkv, const AttentionParams& p, const StepView& step, const Tensor& k_cache,
               const Tensor& v_cache, float* out) {
  const Batch& b = *step.batch;
  const int group = p.num_heads / p.kv_heads;
  const int tile_tokens = std::max(1, kMaxTileRows / group);
  std::vector<WorkItem> items;
  for (int s = 0; s < b.num_seqs(); ++s) {
    const int64_t begin = b.query_starts[static_cast<size_t>(s)], end = b.query_starts[static_cast<size_t>(s) + 1];
    for (int64_t t0 = begin; t0 < end; t0 += tile_tokens)
      for (int h = 0; h < p.kv_heads; ++h)
        items.push_back({s, h, t0, static_cast<int>(std::min<int64_t>(tile_tokens, end - t0))});
  }
  const int64_t width = static_cast<int64_t>(p.num_heads + 2 * p.kv_heads) * p.head_dim;
  const auto* kc = reinterpret_cast<const char*>(k_cache.raw());
  const auto* vc = reinterpret_cast<const char*>(v_cache.raw());
  const size_t elem = k_cache.dtype() == DType::f32 ? 4 : 2;
  const auto count = static_cast<int64_t>(items.size());
  const bool avx2 = active_isa() == Isa::avx2 && p.head_dim % 8 == 0;
  with_cache_dtype(k_cache.dtype(), [&]<DType C>() {
#pragma omp parallel
    {
      std::vector<float> buf;
      // Items differ in length (a long prompt next to a decode token): hand
      // them out one at a time.
#pragma omp for schedule(dynamic, 1)
      for (int64_t i = 0; i < count; ++i) {
        const WorkItem& it = items[static_cast<size_t>(i)];
#if FLINT_CPU_HAVE_AVX2_KERNELS
        if (avx2) {
          attend_tile<Avx2Kernels<C>>(qkv, width, p, step, kc, vc, elem, it.seq, it.t0, it.tokens, it.kvh, buf, out);
          continue;
        }
#endif
        attend_tile<GenericKernels<C>>(qkv, width, p, step, kc, vc, elem, it.seq, it.t0, it.tokens, it.kvh, buf, out);
      }
    }
  });
}

}  // namespace flint::cpu
