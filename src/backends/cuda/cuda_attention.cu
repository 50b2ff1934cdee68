// Causal attention over the paged KV cache with tensor cores (mma.sync
// m16n8k16, f32 accumulate), FlashAttention-2 style.
//
// Rows. A CTA owns up to M query rows of one sequence and one kv head, where
// the rows are (token, q head of the kv head's group) pairs taken in token
// order: row R of sequence s is token R / g, q head kvh * g + R % g
// (g = Hq / Hkv). So the g heads that share a kv head read each K/V tile once
// (GQA without repeating K/V), and a decode token's g heads fill one MMA tile.
// The tiles of all sequences are numbered in batch order; a CTA finds its
// sequence by a warp scan over query_starts, so the grid depends only on
// num_tokens, num_seqs and max_query_len. (When every sequence may take the
// same number of tiles, as in decode, sequence = tile / tiles_per_seq instead.)
//
// Keys. The CTA walks its sequence's cache in tiles of 64 keys up to the last
// row's position, gathering each tile through the block table with 16-byte
// cp.async into shared memory, two stages deep. Keys past that position read
// nothing and are zero-filled (stale cache rows may hold NaN; 0 x NaN would
// leak into the sum) and every key beyond a row's own position is masked, so a
// prefill chunk that starts mid-sequence needs nothing special.
//
// Two shapes of the same kernel:
//  - prefill (max_query_len > kDecodeMaxQueryLen): M = 128 rows, four warps of
//    32 rows (two m16 tiles) each, every warp over all 64 keys of a tile. Two
//    m tiles a warp feed every K and V fragment loaded from shared memory to
//    four MMAs instead of two (on the 8B prefill 258 us a layer against 270
//    with 16 rows a warp); the second O accumulator takes the registers Q
//    held, so Q is re-read from shared memory each key tile;
//  - decode: M = 16 rows, four warps over disjoint 16-key quarters of each tile
//    (the rows are few, the keys many), merged at the end.
// On sm_90 the prefill shape runs cuda_attention_wgmma.cu's kernel instead
// (same rows, 128-key tiles; 8B prefill attention 104 us a layer against 174
// here, docs/PERF.md).
// Split-KV, in both shapes when the grid alone would not fill the GPU: the key
// tiles are cut into num_splits ranges, one CTA each, whose partial results
// (normalised output and log-sum-exp) a second kernel combines. The split
// count comes from max_blocks_per_seq, the grid and the SM count, never from
// the positions, so a captured decode graph replays for any lengths.
//
// Online softmax in base 2: scores are scaled by scale * log2(e) and exp2f'd;
// P is rounded to the cache type for the second MMA, as FlashAttention does.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "backends/cuda/cuda_attention.h"
#include "backends/cuda/cuda_attention_kernels.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_mma.cuh"

namespace flint::cuda {
namespace {

using detail::CtaRows;
using detail::FlashArgs;

constexpr int kThreads = 128;          // four warps, in both shapes
constexpr int kKeyTile = 64;           // keys per pipeline stage
constexpr int kDecodeMaxQueryLen = 4;  // steps with longer sequences run the prefill shape
constexpr int kDecodeRows = 16, kPrefillRows = 128;  // query rows per CTA of each shape
constexpr int kReduceWarps = 4;

template <int D, int kWarpsM, int kWarpsN, int kMT>
struct FlashConfig {
  static constexpr int kWarpRows = 16 * kMT;            // kMT m16 tiles a warp
  static constexpr int kRows = kWarpRows * kWarpsM;     // M: query rows per CTA
  static constexpr int kWarpKeys = kKeyTile / kWarpsN;  // keys of a tile per warp
  static constexpr int kStride = D + 8;                 // smem row, elements: +16 bytes keeps ldmatrix conflict-free
  static constexpr int kAccStride = D + 8;              // epilogue f32 row: float2 stores conflict-free
  static constexpr int kQBytes = kRows * kStride * 2;
  static constexpr int kStageBytes = kKeyTile * kStride * 2;  // one K or one V tile
  static constexpr int kSmemBytes = kQBytes + 4 * kStageBytes;
  static constexpr int kEpilogueRows = kWarpsN * kRows;
  static constexpr int kEpilogueBytes = kEpilogueRows * kAccStride * 4 + 2 * kEpilogueRows * 4;
  static_assert(kWarpsM * kWarpsN * 32 == kThreads, "four warps");
  static_assert(kWarpKeys % 16 == 0, "a warp's keys are whole k16 steps of the P V product");
  static_assert(kEpilogueBytes <= kSmemBytes, "the epilogue reuses Q and the K/V stages");
  static_assert(kSmemBytes <= 227 * 1024, "shared memory per CTA");
};

// Occupancy at D 128: prefill 2 CTAs per SM (102 KB of shared memory each),
// decode 3 (72 KB each); the register caps below keep it so.
template <typename T, int D, int kWarpsM, int kWarpsN, int kMT>
__global__ void __launch_bounds__(kThreads, kWarpsN == 1 ? 2 : 3) flash_attention_kernel(const FlashArgs a) {
  FLINT_TRACE_KERNEL(trace::kAttention);
  using H = Half16<T>;
  using C = FlashConfig<D, kWarpsM, kWarpsN, kMT>;
  constexpr int WR = C::kWarpRows;
  // One m tile: Q stays in registers as A fragments; two: re-read each key tile.
  constexpr bool kQInRegs = kMT == 1;
  constexpr int M = C::kRows, KW = C::kWarpKeys, S = C::kStride;
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char smem[];
  T* q_s = reinterpret_cast<T*>(smem);               // [M][S]
  T* k_s = reinterpret_cast<T*>(smem + C::kQBytes);  // [2][kKeyTile][S]
  T* v_s = k_s + 2 * kKeyTile * S;                   // [2][kKeyTile][S]

  CtaRows cta;
  if (!detail::locate_cta_rows(a, M, cta)) return;
  const int seq = cta.seq, kvh = cta.kvh, rows = cta.rows;
  const int num_keys = cta.num_keys, first_new_key = cta.first_new_key;
  const int split = blockIdx.z;
  const int key_tiles = (num_keys + kKeyTile - 1) / kKeyTile;
  const int tiles_per_split = a.keys_per_split / kKeyTile;
  const int tile_begin = split * tiles_per_split;
  const int tile_end = min(key_tiles, tile_begin + tiles_per_split);
  if (tile_begin >= tile_end) return;  // this split lies past the context: nothing to do (see the reducer)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp % kWarpsM, wn = warp / kWarpsM;
  const T* qkv = static_cast<const T*>(a.qkv);
  const T* k_cache = static_cast<const T*>(a.k_cache);
  const T* v_cache = static_cast<const T*>(a.v_cache);
  const int32_t* table = a.block_tables + static_cast<int64_t>(seq) * a.max_blocks_per_seq;

  // One K/V tile -> stage: key j of the sequence sits in block table[j / bs],
  // row j % bs. keys: the tile's keys before first_new_key, from it on, or all.
  enum class Keys { cached, new_, all };
  const auto load_kv = [&](int key_tile, int stage, Keys keys) {
    const int key0 = key_tile * kKeyTile;
    T* ks = k_s + stage * kKeyTile * S;
    T* vs = v_s + stage * kKeyTile * S;
#pragma unroll
    for (int i = 0; i < kKeyTile * kChunks / kThreads; ++i) {
      const int c = tid + i * kThreads;
      const int kr = c / kChunks, part = c % kChunks;
      const int key = key0 + kr;
      if (keys != Keys::all && (key < first_new_key) != (keys == Keys::cached)) continue;
      int64_t off = 0;
      uint32_t bytes = 0;
      if (key < num_keys) {
        const int block = table[key / a.block_size];
        off = ((static_cast<int64_t>(block) * a.kv_heads + kvh) * a.block_size + key % a.block_size) * D + part * 8;
        bytes = 16;
      }
      cp_async16(smem_addr(ks + kr * S + part * 8), k_cache + off, bytes);
      cp_async16(smem_addr(vs + kr * S + part * 8), v_cache + off, bytes);
    }
  };
  // The first tile's cached keys go out before the wait for the q/k/v
  // projection (programmatic launch, cuda_launch.cuh): the step arrays and
  // those keys are read-only while it runs.
  load_kv(tile_begin, 0, Keys::cached);
  cp_async_commit();  // group: the first tile's cached keys
  wait_for_previous_grid();
  allow_next_grid();

  // Q rows -> shared memory (zeros past the sequence's rows).
  for (int c = tid; c < M * kChunks; c += kThreads) {
    const int r = c / kChunks, part = c % kChunks;
    const T* src = qkv;
    uint32_t bytes = 0;
    if (r < rows) {
      src = qkv + cta.q_offset(a, D, r) + part * 8;
      bytes = 16;
    }
    cp_async16(smem_addr(q_s + r * S + part * 8), src, bytes);
  }
  cp_async_commit();  // group: Q
  load_kv(tile_begin, 0, Keys::new_);
  cp_async_commit();  // group: the first tile's new keys

  // This thread's two rows of each of the warp's m16 tiles: g and g + 8 (C
  // fragment layout).
  int row_pos[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wm * WR + mt * 16 + (lane >> 2) + 8 * h;
      row_pos[mt][h] = r < rows ? a.positions[cta.token(r)] : -1;  // -1: padding row, every key masked
    }
  // Q's A fragment of m tile mt for k16 step kk of D.
  const auto load_q = [&](uint32_t(&f)[4], int mt, int kk) {
    ldmatrix_x4(f, smem_addr(q_s + (wm * WR + mt * 16 + (lane & 15)) * S + kk * 16 + (lane >> 4) * 8));
  };

  uint32_t qf[kQInRegs ? D / 16 : 1][4];  // one m tile: Q as A fragments, one per k16 step of D
  cp_async_wait<1>();                      // Q has landed (the new keys may still be in flight)
  __syncthreads();
  if constexpr (kQInRegs) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) load_q(qf[kk], 0, kk);
  }
  float o[kMT][D / 8][4];  // output accumulators, C fragments over D
  float m[kMT][2], l[kMT][2];  // running max of the scaled scores; running sum, this thread's columns only
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.0f;
  }

  for (int kt = tile_begin; kt < tile_end; ++kt) {
    const int stage = (kt - tile_begin) & 1;
    if (kt + 1 < tile_end) load_kv(kt + 1, stage ^ 1, Keys::all);
    cp_async_commit();  // possibly empty: keeps "wait for all but the newest" right
    cp_async_wait<1>();
    __syncthreads();
    const T* ks = k_s + stage * kKeyTile * S + wn * KW * S;
    const T* vs = v_s + stage * kKeyTile * S + wn * KW * S;

    // S = Q K^T over this warp's KW keys. Each score sums the k16 steps of
    // D in order (kk outer), whatever kMT is.
    float s[kMT][KW / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
      for (int j = 0; j < KW / 8; ++j) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int i = 0; i < 4; ++i) qa[mt][i] = qf[kk][i];
        } else {
          load_q(qa[mt], mt, kk);
        }
      }
#pragma unroll
      for (int np = 0; np < KW / 16; ++np) {
        // Matrices: keys +0..7 dims +0..7, keys +0..7 dims +8..15, keys +8..15 dims +0..7, keys +8..15 dims +8..15.
        uint32_t b[4];
        const int key = np * 16 + (lane & 7) + ((lane >> 4) << 3);
        ldmatrix_x4(b, smem_addr(ks + key * S + kk * 16 + ((lane >> 3) & 1) * 8));
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          H::mma(s[mt][2 * np], qa[mt], b[0], b[1]);
          H::mma(s[mt][2 * np + 1], qa[mt], b[2], b[3]);
        }
      }
    }

    // Mask, online softmax, per m tile. The max is taken over the raw scores
    // (the scale is positive) and the scale folds into exp2's argument: one
    // FFMA an element.
    const int key_base = kt * kKeyTile + wn * KW + 2 * (lane & 3);
    float corr[kMT][2];
    bool moved = false;  // a row of this thread has a new max
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int j = 0; j < KW / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = key_base + j * 8 + (e & 1);
          if (key > row_pos[mt][e >> 1]) s[mt][j][e] = -INFINITY;
          mx[e >> 1] = fmaxf(mx[e >> 1], s[mt][j][e]);
        }
      }
      float m_use[2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
        mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
        const float m_new = fmaxf(m[mt][h], mx[h] * a.scale_log2);
        // A row with every key so far masked keeps m = -inf; subtract 0 then
        // so that exp2(-inf - m) is 0, never NaN.
        m_use[h] = m_new == -INFINITY ? 0.0f : m_new;
        corr[mt][h] = exp2f(m[mt][h] - m_use[h]);
        moved |= corr[mt][h] != 1.0f;
        m[mt][h] = m_new;
      }
      float sum[2] = {0.0f, 0.0f};
#pragma unroll
      for (int j = 0; j < KW / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          s[mt][j][e] = exp2f(fmaf(s[mt][j][e], a.scale_log2, -m_use[e >> 1]));
          sum[e >> 1] += s[mt][j][e];
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) l[mt][h] = l[mt][h] * corr[mt][h] + sum[h];
    }
    // Past the first key tiles a row's max rarely moves: when no row of the
    // warp has a new max (corr == 1: O would stay bit for bit the same), the
    // rescale of O is skipped.
    if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
        for (int j = 0; j < D / 8; ++j) {
          o[mt][j][0] *= corr[mt][0];
          o[mt][j][1] *= corr[mt][0];
          o[mt][j][2] *= corr[mt][1];
          o[mt][j][3] *= corr[mt][1];
        }
    }

    // O += P V: P's C fragments are the A fragments of the next MMA.
#pragma unroll
    for (int kk = 0; kk < KW / 16; ++kk) {
      uint32_t p[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        p[mt][0] = H::pack(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        p[mt][1] = H::pack(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        p[mt][2] = H::pack(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        p[mt][3] = H::pack(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        // Transposed: keys +0..7 dims +0..7, keys +8..15 dims +0..7, keys +0..7 dims +8..15, keys +8..15 dims +8..15.
        uint32_t b[4];
        const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
        ldmatrix_x4_trans(b, smem_addr(vs + key * S + dp * 16 + (lane >> 4) * 8));
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          H::mma(o[mt][2 * dp], p[mt], b[0], b[1]);
          H::mma(o[mt][2 * dp + 1], p[mt], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the stage is refilled next iteration
  }

  // Epilogue through shared memory (Q and the K/V stages are free now: the
  // loop ended with a barrier): each warp leaves its unnormalised rows and
  // their max and sum; then the CTA merges the kWarpsN key ranges of every
  // row and writes the output coalesced.
  cp_async_wait<0>();
  float* acc_s = reinterpret_cast<float*>(smem);          // [kWarpsN * M][kAccStride]
  float* m_s = acc_s + C::kEpilogueRows * C::kAccStride;  // [kWarpsN * M]
  float* l_s = m_s + C::kEpilogueRows;                    // [kWarpsN * M]
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float lh = l[mt][h];
      lh += __shfl_xor_sync(0xffffffffu, lh, 1);
      lh += __shfl_xor_sync(0xffffffffu, lh, 2);
      const int r = wn * M + wm * WR + mt * 16 + (lane >> 2) + 8 * h;
      float* dst = acc_s + r * C::kAccStride + 2 * (lane & 3);
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<float2*>(dst + j * 8) = make_float2(o[mt][j][2 * h], o[mt][j][2 * h + 1]);
      if ((lane & 3) == 0) {
        m_s[r] = m[mt][h];
        l_s[r] = lh;
      }
    }
  __syncthreads();

  for (int idx = tid; idx < M * (D / 4); idx += kThreads) {
    const int r = idx / (D / 4), d0 = (idx % (D / 4)) * 4;
    if (r >= rows) continue;
    float mmax = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarpsN; ++w) mmax = fmaxf(mmax, m_s[w * M + r]);
    float sum = 0.0f, acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (mmax != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarpsN; ++w) {
        const float f = exp2f(m_s[w * M + r] - mmax);
        sum += f * l_s[w * M + r];
        const float4 x = *reinterpret_cast<const float4*>(acc_s + (w * M + r) * C::kAccStride + d0);
        acc[0] += f * x.x;
        acc[1] += f * x.y;
        acc[2] += f * x.z;
        acc[3] += f * x.w;
      }
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int token = cta.token(r), head = cta.head(r);
    if (a.num_splits == 1) {
      const uint32_t lo = H::pack(acc[0] * inv, acc[1] * inv), hi = H::pack(acc[2] * inv, acc[3] * inv);
      T* dst = static_cast<T*>(a.out) + (static_cast<int64_t>(token) * a.num_heads + head) * D + d0;
      *reinterpret_cast<uint2*>(dst) = make_uint2(lo, hi);
    } else {
      const int64_t prow = (static_cast<int64_t>(split) * a.num_tokens + token) * a.num_heads + head;
      *reinterpret_cast<float4*>(a.part_o + prow * D + d0) =
          make_float4(acc[0] * inv, acc[1] * inv, acc[2] * inv, acc[3] * inv);
      if (d0 == 0) a.part_lse[prow] = sum > 0.0f ? mmax + log2f(sum) : -INFINITY;
    }
  }
}

// Combines the split-KV partials of each (token, q head): one warp each. The
// splits a token's row needs are exactly those that start at or before its
// position; each of them saw at least key 0 of its range unmasked.
template <typename T, int D>
__global__ void __launch_bounds__(kReduceWarps * 32) combine_splits_kernel(const FlashArgs a) {
  FLINT_TRACE_KERNEL(trace::kCombine);
  if (a.combine_triggers_early) allow_next_grid();
  wait_for_previous_grid();
  if (!a.combine_triggers_early) allow_next_grid();
  using H = Half16<T>;
  constexpr int kPer = D / 32;
  const int item = blockIdx.x * kReduceWarps + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (item >= a.num_tokens * a.num_heads) return;
  const int token = item / a.num_heads;
  const int pos = a.positions[token];
  const int splits = pos / a.keys_per_split + 1;  // those that start at or before pos
  const int64_t stride = static_cast<int64_t>(a.num_tokens) * a.num_heads;
  float mmax = -INFINITY;
  for (int s = 0; s < splits; ++s) mmax = fmaxf(mmax, a.part_lse[s * stride + item]);
  float sum = 0.0f, acc[kPer] = {};
  for (int s = 0; s < splits; ++s) {
    const float w = exp2f(a.part_lse[s * stride + item] - mmax);
    sum += w;
    const float* src = a.part_o + (s * stride + item) * D + lane * kPer;
#pragma unroll
    for (int i = 0; i < kPer; ++i) acc[i] += w * src[i];
  }
  const float inv = 1.0f / sum;
  T* dst = static_cast<T*>(a.out) + static_cast<int64_t>(item) * D + lane * kPer;
#pragma unroll
  for (int i = 0; i < kPer; i += 2) *reinterpret_cast<uint32_t*>(dst + i) = H::pack(acc[i] * inv, acc[i + 1] * inv);
}

[[noreturn]] void bad_argument(const char* what, long long value, const char* file, int line) {
  char msg[200];
  std::snprintf(msg, sizeof msg, "launch_attention: %s (got %lld)", what, value);
  throw_cuda_error(cudaErrorInvalidValue, msg, file, line);
}

// The launch, from shapes and step sizes only.
struct Plan {
  bool decode = false;
  bool wgmma = false;  // the prefill shape on detail::launch_wgmma_attention
  int rows_per_tile = 0;
  int tiles = 0;          // grid.x: an upper bound on sum over sequences of ceil(n_s g / M)
  int tiles_per_seq = 0;  // see FlashArgs
  int num_splits = 1;
  int keys_per_split = 0;  // a multiple of the chosen kernel's key tile
  size_t workspace_bytes = 0;
};

Plan make_plan(const StepArrays& step, const AttentionShape& shape) {
  Plan p;
  const int64_t g = shape.num_heads / shape.kv_heads;
  const int64_t T = step.num_tokens, S = step.num_seqs, maxq = std::max(step.max_query_len, 1);
  p.decode = step.max_query_len <= kDecodeMaxQueryLen;
  p.wgmma = !p.decode && detail::use_wgmma_attention();
  p.rows_per_tile = p.decode ? kDecodeRows : kPrefillRows;
  const int64_t key_tile = p.wgmma ? detail::kWgmmaKeyTile : kKeyTile;  // keys per pipeline stage
  static_assert(detail::kWgmmaRows == kPrefillRows, "both prefill kernels take the same tiles");
  const int64_t M = p.rows_per_tile;
  // Either every sequence gets as many tile slots as the longest needs (no
  // scan; decode steps, single prompts), or the tiles are packed and each CTA
  // scans for its sequence, whichever launches fewer CTAs.
  const int64_t slots = (maxq * g + M - 1) / M, packed = (T * g + M - 1) / M + S;
  p.tiles = static_cast<int>(std::min(S * slots, packed));
  p.tiles_per_seq = S * slots <= packed ? static_cast<int>(slots) : 0;
  const int64_t key_tiles = std::max<int64_t>(
      1, (static_cast<int64_t>(step.max_blocks_per_seq) * shape.block_size + key_tile - 1) / key_tile);
  // Too few CTAs to fill the GPU (decode, or a short chunk next to decode
  // tokens): split the keys, aiming for two CTAs per SM; a split keeps at
  // least one key tile.
  const int64_t ctas = static_cast<int64_t>(p.tiles) * shape.kv_heads;
  const int64_t want = std::clamp<int64_t>((2 * multiprocessor_count() + ctas - 1) / ctas, 1, key_tiles);
  const int64_t tiles_per_split = (key_tiles + want - 1) / want;
  p.keys_per_split = static_cast<int>(tiles_per_split * key_tile);
  p.num_splits = static_cast<int>((key_tiles + tiles_per_split - 1) / tiles_per_split);
  if (p.num_splits > 1)
    p.workspace_bytes = static_cast<size_t>(p.num_splits) * T * shape.num_heads * (shape.head_dim + 1) * sizeof(float);
  return p;
}

void check_shape(const StepArrays& step, const AttentionShape& shape) {
  if (shape.head_dim != 64 && shape.head_dim != 128)
    bad_argument("head_dim must be 64 or 128", shape.head_dim, __FILE__, __LINE__);
  if (shape.kv_heads <= 0 || shape.num_heads <= 0 || shape.num_heads % shape.kv_heads != 0)
    bad_argument("num_heads must be a positive multiple of kv_heads", shape.num_heads, __FILE__, __LINE__);
  if (shape.block_size <= 0) bad_argument("block_size must be positive", shape.block_size, __FILE__, __LINE__);
  if (step.num_tokens > 0 && step.max_blocks_per_seq <= 0)
    bad_argument("max_blocks_per_seq must be positive", step.max_blocks_per_seq, __FILE__, __LINE__);
  if (static_cast<int64_t>(step.num_tokens) * shape.num_heads > (int64_t{1} << 30))
    bad_argument("too many tokens x heads", static_cast<long long>(step.num_tokens) * shape.num_heads, __FILE__,
                 __LINE__);
}

template <typename T, int D, int kWarpsM, int kWarpsN, int kMT>
void launch_flash(const FlashArgs& args, const Plan& plan, cudaStream_t stream, bool combine) {
  using C = FlashConfig<D, kWarpsM, kWarpsN, kMT>;
  static_assert(C::kRows == (kWarpsN == 1 ? kPrefillRows : kDecodeRows), "make_plan's rows per tile");
  // x: (tile, kv head) pairs, tile-major (see the kernel); check_shape bounds
  // tokens x heads, so this stays far below 2^31.
  const dim3 grid(static_cast<unsigned>(plan.tiles) * static_cast<unsigned>(args.kv_heads), 1,
                  static_cast<unsigned>(plan.num_splits));
  if (plan.wgmma) {
    detail::launch_wgmma_attention<T, D>(args, grid, stream);
  } else {
    const auto kernel = flash_attention_kernel<T, D, kWarpsM, kWarpsN, kMT>;
    FLINT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
    // Two or three CTAs per SM need nearly all of the unified L1/shared memory as shared.
    FLINT_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared));
    launch_kernel(kernel, grid, kThreads, C::kSmemBytes, stream, args);
  }
  if (plan.num_splits > 1 && combine) {
    const int items = args.num_tokens * args.num_heads;
    launch_kernel(combine_splits_kernel<T, D>, static_cast<unsigned>((items + kReduceWarps - 1) / kReduceWarps),
                  kReduceWarps * 32, 0, stream, args);
  }
}

template <typename T, int D>
void launch_typed(const FlashArgs& args, const Plan& plan, cudaStream_t stream, bool combine) {
  if (plan.decode)
    launch_flash<T, D, 1, 4, 1>(args, plan, stream, combine);
  else
    launch_flash<T, D, 4, 1, 2>(args, plan, stream, combine);
}

}  // namespace

size_t attention_workspace_bytes(const StepArrays& step, const AttentionShape& shape) {
  check_shape(step, shape);
  if (step.num_tokens <= 0 || step.num_seqs <= 0) return 0;
  return make_plan(step, shape).workspace_bytes;
}

void launch_attention(const void* qkv, DType dtype, const StepArrays& step, const AttentionShape& shape,
                      const void* k_cache, const void* v_cache, void* out, void* workspace, size_t workspace_bytes,
                      cudaStream_t stream, SplitKvPartials* deferred) {
  if (deferred != nullptr) *deferred = SplitKvPartials{};
  check_shape(step, shape);
  if (dtype != DType::bf16 && dtype != DType::f16)
    bad_argument("dtype must be bf16 or f16", static_cast<int>(dtype), __FILE__, __LINE__);
  if (step.num_tokens <= 0 || step.num_seqs <= 0) return;
  const Plan plan = make_plan(step, shape);
  if (workspace_bytes < plan.workspace_bytes || (plan.workspace_bytes > 0 && workspace == nullptr))
    bad_argument("workspace smaller than attention_workspace_bytes()", static_cast<long long>(workspace_bytes),
                 __FILE__, __LINE__);

  FlashArgs args{};
  args.qkv = qkv;
  args.k_cache = k_cache;
  args.v_cache = v_cache;
  args.out = out;
  args.part_o = static_cast<float*>(workspace);
  args.part_lse = plan.num_splits > 1 ? args.part_o + static_cast<size_t>(plan.num_splits) * step.num_tokens *
                                                          shape.num_heads * shape.head_dim
                                      : nullptr;
  args.positions = step.positions;
  args.query_starts = step.query_starts;
  args.block_tables = step.block_tables;
  args.num_tokens = step.num_tokens;
  args.combine_triggers_early = plan.decode && skinny_gemm_pipelined(step.num_tokens);
  args.num_seqs = step.num_seqs;
  args.max_blocks_per_seq = step.max_blocks_per_seq;
  args.num_heads = shape.num_heads;
  args.kv_heads = shape.kv_heads;
  args.group = shape.num_heads / shape.kv_heads;
  args.block_size = shape.block_size;
  args.tiles_per_seq = plan.tiles_per_seq;
  args.keys_per_split = plan.keys_per_split;
  args.num_splits = plan.num_splits;
  args.scale_log2 = shape.scale * 1.4426950408889634f;

  // The combine left to the caller: the partials are described, not merged.
  const bool defer = deferred != nullptr && plan.decode && dtype == DType::bf16 && plan.num_splits > 1 &&
                     plan.num_splits <= kMaxDeferredSplits;
  if (defer)
    *deferred = {.part_o = args.part_o,
                 .part_lse = args.part_lse,
                 .positions = step.positions,
                 .num_tokens = step.num_tokens,
                 .num_heads = shape.num_heads,
                 .head_dim = shape.head_dim,
                 .num_splits = plan.num_splits,
                 .keys_per_split = plan.keys_per_split};

  if (dtype == DType::bf16) {
    if (shape.head_dim == 64)
      launch_typed<__nv_bfloat16, 64>(args, plan, stream, !defer);
    else
      launch_typed<__nv_bfloat16, 128>(args, plan, stream, !defer);
  } else {
    if (shape.head_dim == 64)
      launch_typed<__half, 64>(args, plan, stream, !defer);
    else
      launch_typed<__half, 128>(args, plan, stream, !defer);
  }
}

}  // namespace flint::cuda
