// Linear layers for a few rows of x (decode): out[n, o] = x[n, :] . w[o, :] + bias[o].
//
// Decode reads every weight once per step, so the kernels are weight streams.
// Two of them share the tile layout, the fragment permutation and the
// epilogues: the pipelined kernel (sm_90, up to 8 rows: weights through a
// ring of shared-memory stages filled by bulk asynchronous copies, further
// below) and the register kernel (any GPU, up to 32 rows), described here:
// - A CTA owns 16 output rows (one m16 tile) over the whole of K; its 8 warps
//   split K into chunks (warp w takes chunks w, w + 8, ...) and meet once, at
//   the end, in a shared-memory reduction (deterministic order).
// - Each lane reads 16 bytes (8 bf16) of two weight rows per load with
//   ld.global.nc.L1::no_allocate; per load instruction the 4 lanes of a row
//   cover 64 contiguous bytes, and the kU instructions of a chunk a whole
//   128/256-byte run of each row. The next chunk's loads are issued before the
//   current chunk's math (register double buffer), so 2 * kU * 16 bytes per
//   lane per row are in flight.
// - The math is mma.sync m16n8k16 (bf16 in, f32 accumulate): weights are the
//   16 x 16 A tile, up to 8 rows of x per B tile (kNt tiles for up to 32 rows).
//   The dot product does not care in which order the k's are summed, so the
//   k-slots of the fragment are a permutation of the loaded k's, the same one
//   for A and B: a lane that loaded k .. k+7 of weight rows g and g+8 and of
//   x row g feeds k .. k+3 to one mma and k+4 .. k+7 to the next. No shuffles,
//   no shared-memory staging, no bf16 -> f32 conversions.
// x (a few KB to 64 KB) is read through L1 (__ldg) and stays there; weights
// bypass L1 so they do not evict it.
// Epilogue fusions (docs/CUDA.md):
// - Residual add (Epilogue::accumulate): out = bf16(out + acc + bias), one
//   rounding, the CTA that owns an output element being the only one to read
//   and write it.
// - SwiGLU (Epilogue::swiglu), below.
// - RoPE and the K/V cache write (Epilogue::rope_cache): a CTA takes 8 rows
//   of the first half of a q, k or v head and their 8 partners D/2 further
//   (rotate_half's pairs), so each lane ends with both values of its pairs;
//   cos/sin come from the step's table (launch_rope_table: worked out once a
//   step, not once a layer).
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "backends/cuda/cuda_bf16.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_mma.cuh"

namespace flint::cuda {
namespace {

constexpr int kWarps = 8;

__device__ __forceinline__ uint4 ld_stream(const uint4* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

// d += A (16 x 16, row) * B (16 x 8, col), bf16 in, f32 accumulate.
__device__ __forceinline__ void mma_bf16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

template <typename OutT>
__device__ __forceinline__ void store_out(OutT* p, float v) {
  if constexpr (sizeof(OutT) == 4)
    *p = v;
  else
    *p = __float2bfloat16_rn(v);
}

// One chunk's operands in registers: for j < kU, uint4 index
// c * 4 * kU + 4 * j + t of weight rows g (a) and g + 8 (b) and of x rows
// nt * 8 + g; zero where the row or the k is out of range.
template <int kNt, int kU>
struct Chunk {
  uint4 a[kU], b[kU], x[kNt][kU];
};

template <int kNt, int kU>
__device__ __forceinline__ void load_weights(Chunk<kNt, kU>& ch, int c, int t, int k8, const uint4* wa, bool ok_a,
                                             const uint4* wb, bool ok_b) {
  const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int j = 0; j < kU; ++j) {
    const int idx = c * 4 * kU + 4 * j + t;
    const bool in = idx < k8;
    ch.a[j] = in && ok_a ? ld_stream(wa + idx) : zero;
    ch.b[j] = in && ok_b ? ld_stream(wb + idx) : zero;
  }
}

// The x rows lane (g, t) feeds to the B tiles: row 8 nt + g of x for tile nt,
// as uint4s; rows at or beyond n read as zeros (ok false).
template <int kNt>
struct XRows {
  const uint4* row[kNt];
  bool ok[kNt];
  __device__ __forceinline__ XRows(const uint16_t* x, int n, int g, int k8) {
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) {
      ok[nt] = nt * 8 + g < n;
      row[nt] = reinterpret_cast<const uint4*>(x) + static_cast<int64_t>(ok[nt] ? nt * 8 + g : 0) * k8;
    }
  }
};

template <int kNt, int kU>
__device__ __forceinline__ void load_x(Chunk<kNt, kU>& ch, int c, int t, int k8, const XRows<kNt>& xr) {
  const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int j = 0; j < kU; ++j) {
    const int idx = c * 4 * kU + 4 * j + t;
    const bool in = idx < k8;
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) ch.x[nt][j] = in && xr.ok[nt] ? __ldg(xr.row[nt] + idx) : zero;
  }
}

// acc += the 8 k's a lane loaded of weight rows g (a) and g + 8 (b) times
// those of x row g: pairs 0, 1 of each uint4 go to the first mma, pairs 2, 3
// to the second (the fragment permutation above).
__device__ __forceinline__ void mma_loaded(float (&acc)[4], const uint4& a, const uint4& b, const uint4& x) {
  mma_bf16(acc, a.x, b.x, a.y, b.y, x.x, x.y);
  mma_bf16(acc, a.z, b.z, a.w, b.w, x.z, x.w);
}

template <int kNt, int kU>
__device__ __forceinline__ void mma_chunk(const Chunk<kNt, kU>& ch, float (&acc)[kNt][4]) {
#pragma unroll
  for (int j = 0; j < kU; ++j)
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) mma_loaded(acc[nt], ch.a[j], ch.b[j], ch.x[nt][j]);
}

template <typename OutT>
__device__ __forceinline__ float load_out(const OutT* p) {
  if constexpr (sizeof(OutT) == 4)
    return *p;
  else
    return __bfloat162float(*p);
}

// The weight row that slot r (0..15) of tile `tile` holds: slots 0-7 are the
// A-fragment rows g, slots 8-15 the rows g + 8.
// - store, accumulate: rows 16 tile .. 16 tile + 15;
// - swiglu: gate rows 8 tile + r and their up rows o_rows + 8 tile + r;
// - rope_cache: 8 rows of the first half of a head and their partners D/2
//   further (rotate_half's pairs): tile j is head j / (D / 16), rows
//   i .. i + 7 and i + D/2 .. i + D/2 + 7 of it, i = 8 (j % (D / 16)).
template <SkinnyEpilogue kEpi>
__device__ __forceinline__ int tile_row(int tile, int r, int head_dim, int o_rows) {
  if constexpr (kEpi == SkinnyEpilogue::rope_cache) {
    const int half = head_dim / 2;
    return tile / (half / 8) * 2 * half + tile % (half / 8) * 8 + (r & 7) + (r >= 8 ? half : 0);
  } else if constexpr (kEpi == SkinnyEpilogue::swiglu) {
    return (r >= 8 ? o_rows : 0) + tile * 8 + (r & 7);
  } else {
    return tile * 16 + r;
  }
}

// Whether slot r of the tile is a row of the output (the last tile may be partial).
template <SkinnyEpilogue kEpi>
__device__ __forceinline__ bool tile_row_exists(int tile, int r, int o_rows) {
  if constexpr (kEpi == SkinnyEpilogue::rope_cache)
    return true;
  else if constexpr (kEpi == SkinnyEpilogue::swiglu)
    return tile * 8 + (r & 7) < o_rows;
  else
    return tile * 16 + r < o_rows;
}

template <int kNt>
using Partials = float[kWarps][kNt * 4][32];

// A warp's accumulators into its slice of the tile's partials (see write_tile).
template <int kNt>
__device__ __forceinline__ void store_partials(Partials<kNt>& partial, int warp, int lane, const float (&acc)[kNt][4]) {
#pragma unroll
  for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) partial[warp][nt * 4 + r][lane] = acc[nt][r];
}

// What one item of a tile's epilogue (an output of store and accumulate, a
// pair of swiglu and rope_cache) reads from global memory besides the sums:
// the pipelined kernel loads it when the tile's first stage lands, so that
// its latency hides behind the tile's stages instead of adding to the end of
// the kernel (a short GEMV's last tile is on the step's critical path).
struct EpilogueInputs {
  float residual = 0.0f;                // accumulate: out's value before the add
  float cos = 1.0f, sin = 0.0f;         // rope_cache, q and k heads: the pair's angle
  __nv_bfloat16* slot = nullptr;        // rope_cache, k and v heads: the pair's first cache element
};

// Item i of write_tile's loop (store, accumulate): output row and x row.
__device__ __forceinline__ void output_item(int tile, int i, int& row, int& col) {
  const int q = i / 32, l = i % 32, r = q % 4;
  row = tile * 16 + l / 4 + (r >= 2 ? 8 : 0);
  col = (q / 4) * 8 + 2 * (l % 4) + (r & 1);
}

// swiglu and rope_cache pair each of the tile's first 8 rows (a) with one of
// its last 8 (b): item i is entry (q, l) of the partials, q % 4 < 2, slot
// j = l / 4 for x row col; entry (q + 2, l) is its partner slot j + 8.
__device__ __forceinline__ void pair_item(int i, int& q, int& l, int& j, int& col) {
  q = (i / 64) * 4 + (i / 32) % 2;
  l = i % 32;
  j = l / 4;
  col = (q / 4) * 8 + 2 * (l % 4) + (q & 1);
}

// launch_rope_and_cache's angle and cache slot for row ra of qkv (the first
// of its rotate_half pair) and x row col.
__device__ __forceinline__ EpilogueInputs rope_inputs(int ra, int col, const SkinnyRope& rope) {
  EpilogueInputs e;
  const int half = rope.shape.head_dim / 2, head = ra / (2 * half), i0 = ra - head * 2 * half;
  const int hq = rope.shape.num_heads, hkv = rope.shape.kv_heads;
  if (head < hq + hkv) {
    const float* cs = rope.table + static_cast<int64_t>(col) * 2 * half;
    e.cos = cs[i0];
    e.sin = cs[half + i0];
  }
  if (head >= hq) {
    const int bs = rope.shape.block_size, pos = rope.step.positions[col];
    const int32_t block =
        rope.step.block_tables[static_cast<int64_t>(rope.step.token_seq[col]) * rope.step.max_blocks_per_seq +
                               pos / bs];
    const int cache_head = head < hq + hkv ? head - hq : head - hq - hkv;
    auto* cache = reinterpret_cast<__nv_bfloat16*>(head < hq + hkv ? rope.k_cache : rope.v_cache);
    e.slot = cache + ((static_cast<int64_t>(block) * hkv + cache_head) * bs + pos % bs) * rope.shape.head_dim + i0;
  }
  return e;
}

// The inputs of item i of the tile's epilogue (see EpilogueInputs); x rows
// at or beyond n and rows beyond the output load nothing.
template <typename OutT, SkinnyEpilogue kEpi>
__device__ __forceinline__ EpilogueInputs load_epilogue_inputs(int tile, int i, int n, const OutT* out, int o_rows,
                                                               const SkinnyRope& rope) {
  EpilogueInputs e;
  if constexpr (kEpi == SkinnyEpilogue::accumulate) {
    int row, col;
    output_item(tile, i, row, col);
    if (row < o_rows && col < n) e.residual = load_out(out + static_cast<int64_t>(col) * o_rows + row);
  } else if constexpr (kEpi == SkinnyEpilogue::rope_cache) {
    int q, l, j, col;
    pair_item(i, q, l, j, col);
    if (col < n) e = rope_inputs(tile_row<kEpi>(tile, j, rope.shape.head_dim, o_rows), col, rope);
  }
  return e;
}

template <int kNt, typename OutT, SkinnyEpilogue kEpi>
__device__ __forceinline__ void write_pairs(const Partials<kNt>& partial, int tile, int tid, int nthreads, int n,
                                            const float* __restrict__ bias, OutT* __restrict__ out, int o_rows,
                                            const SkinnyRope& rope, const EpilogueInputs* loaded) {
  for (int i = tid; i < kNt * 2 * 32; i += nthreads) {
    int q, l, j, col;
    pair_item(i, q, l, j, col);
    if (col >= n || !tile_row_exists<kEpi>(tile, j, o_rows)) continue;
    float a = 0.0f, b = 0.0f;
#pragma unroll
    for (int v = 0; v < kWarps; ++v) {
      a += partial[v][q][l];
      b += partial[v][q + 2][l];
    }
    const int ra = tile_row<kEpi>(tile, j, rope.shape.head_dim, o_rows);
    const int rb = tile_row<kEpi>(tile, j + 8, rope.shape.head_dim, o_rows);
    if (bias) {
      a += bias[ra];
      b += bias[rb];
    }
    if constexpr (kEpi == SkinnyEpilogue::swiglu) {
      // Row a is a gate row, row b its up row.
      store_out(out + static_cast<int64_t>(col) * o_rows + ra, silu_mul(round_bf16(a), round_bf16(b)));
    } else {
      // The linear's bf16 output, then launch_rope_and_cache's arithmetic.
      const EpilogueInputs e = loaded != nullptr && i == tid ? *loaded : rope_inputs(ra, col, rope);
      const int half = rope.shape.head_dim / 2, head = ra / (2 * half);
      float ya = round_bf16(a), yb = round_bf16(b);
      if (head < rope.shape.num_heads + rope.shape.kv_heads) {
        const float x0 = ya, x1 = yb;
        ya = __fsub_rn(__fmul_rn(x0, e.cos), __fmul_rn(x1, e.sin));
        yb = __fadd_rn(__fmul_rn(x1, e.cos), __fmul_rn(x0, e.sin));
      }
      const __nv_bfloat16 ba = __float2bfloat16_rn(ya), bb = __float2bfloat16_rn(yb);
      out[static_cast<int64_t>(col) * o_rows + ra] = ba;
      out[static_cast<int64_t>(col) * o_rows + rb] = bb;
      if (e.slot != nullptr) {
        e.slot[0] = ba;
        e.slot[half] = bb;
      }
    }
  }
}

// Sums the warps' partial products of one tile (acc[nt][r] of warp v, lane
// (g, t) in partial[v][4 nt + r][lane]: out row slot g + 8 (r >= 2), x row
// 8 nt + 2 t + r % 2), in a fixed order, and writes the tile's outputs
// through the epilogue. Threads tid = 0 .. nthreads - 1 share the work.
// loaded: null, or the inputs of this thread's first item (i = tid), loaded
// earlier by load_epilogue_inputs.
template <int kNt, typename OutT, SkinnyEpilogue kEpi>
__device__ __forceinline__ void write_tile(const Partials<kNt>& partial, int tile, int tid, int nthreads, int n,
                                           const float* __restrict__ bias, OutT* __restrict__ out, int o_rows,
                                           const SkinnyRope& rope, const EpilogueInputs* loaded = nullptr) {
  if constexpr (kEpi == SkinnyEpilogue::store || kEpi == SkinnyEpilogue::accumulate) {
    for (int i = tid; i < kNt * 4 * 32; i += nthreads) {
      const int q = i / 32, l = i % 32;
      float s = 0.0f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) s += partial[v][q][l];
      int row, col;
      output_item(tile, i, row, col);
      if (row < o_rows && col < n) {
        if (bias) s += bias[row];
        OutT* p = out + static_cast<int64_t>(col) * o_rows + row;
        if constexpr (kEpi == SkinnyEpilogue::accumulate)
          s += loaded != nullptr && i == tid ? loaded->residual : load_out(p);
        store_out(p, s);
      }
    }
  } else {
    write_pairs<kNt, OutT, kEpi>(partial, tile, tid, nthreads, n, bias, out, o_rows, rope, loaded);
  }
}

// The register-streaming kernel (any sm_80+ GPU):
//   x: [n, k] bf16, n <= 8 * kNt; w: [o_rows, k] bf16 (swiglu: [2 o_rows, k]);
//   k % 8 == 0; x, w 16-byte aligned; out: [n, o_rows]; one CTA per tile
//   (grid.x = tiles, skinny_tiles()), blockDim.x = 32 * kWarps.
// The epilogue of swiglu is bit for bit the store kernel + swiglu (same sums,
// same roundings), that of rope_cache store + launch_rope_and_cache.
template <int kNt, int kU, typename OutT, SkinnyEpilogue kEpi>
__global__ void __launch_bounds__(kWarps * 32, 2)
    skinny_gemm_kernel(const uint16_t* __restrict__ x, int n, const uint16_t* __restrict__ w,
                       const float* __restrict__ bias, OutT* __restrict__ out, int o_rows, int k,
                       const SkinnyRope rope) {
  FLINT_TRACE_KERNEL(trace::kGemvRegister + static_cast<uint32_t>(kEpi));
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  const int k8 = k / 8;
  const int nchunks = (k8 + 4 * kU - 1) / (4 * kU);
  const int tile = static_cast<int>(blockIdx.x);

  const bool ok_a = tile_row_exists<kEpi>(tile, g, o_rows), ok_b = tile_row_exists<kEpi>(tile, g + 8, o_rows);
  const int row_a = ok_a ? tile_row<kEpi>(tile, g, rope.shape.head_dim, o_rows) : 0;
  const int row_b = ok_b ? tile_row<kEpi>(tile, g + 8, rope.shape.head_dim, o_rows) : 0;
  const uint4* wa = reinterpret_cast<const uint4*>(w) + static_cast<int64_t>(row_a) * k8;
  const uint4* wb = reinterpret_cast<const uint4*>(w) + static_cast<int64_t>(row_b) * k8;
  const XRows<kNt> xr(x, n, g, k8);

  float acc[kNt][4] = {};
  Chunk<kNt, kU> cur;
  // Weights are read-only during steps: the first chunk's loads go out while
  // the kernel that writes x may still run (programmatic launch, cuda_launch.cuh).
  load_weights(cur, warp, t, k8, wa, ok_a, wb, ok_b);
  wait_for_previous_grid();
  allow_next_grid();
  load_x(cur, warp, t, k8, xr);
  for (int c = warp; c < nchunks; c += kWarps) {
    Chunk<kNt, kU> next;
    load_weights(next, c + kWarps, t, k8, wa, ok_a, wb, ok_b);
    load_x(next, c + kWarps, t, k8, xr);
    mma_chunk(cur, acc);
    cur = next;
  }

  __shared__ Partials<kNt> partial;
  store_partials(partial, warp, lane, acc);
  __syncthreads();
  write_tile<kNt, OutT, kEpi>(partial, tile, static_cast<int>(threadIdx.x), kWarps * 32, n, bias, out, o_rows, rope);
}

// --- The pipelined kernel (sm_90): weights through shared memory -----------------
//
// A persistent CTA per SM takes tiles blockIdx.x, blockIdx.x + gridDim.x, ...
// or, given a counter (SkinnyGemm::tile_counter), claims each next tile from
// it when its ring has room for the tile's first stage, so that a CTA that
// started late or streams slowly takes fewer tiles and the grid ends
// together. Dealt in turn, a GEMV's last CTAs end a few us after the others
// (a tile or two of a long GEMV), which costs nothing where the next GEMV's
// CTAs stream on the SMs freed first; claiming there was slower. Two GEMVs
// claim (docs/PERF.md): the lm_head, whose tail (12 us of 1B's 180) only
// sampling follows, and the o projection, some of whose CTAs find their SMs
// still held by the attention's.
// One producer warp streams the tiles' weights into a ring of kPipeStages
// shared-memory stages (16 rows x kPipeK k each) with bulk asynchronous
// copies (one 1 KB copy per row per stage, completion counted in bytes on the
// stage's mbarrier); 8 consumer warps take each stage as it lands (warp w its
// k's w * 64 .. w * 64 + 63, the same fragment permutation as the register
// kernel, x from shared memory or global: XSource below) and hand the stage
// back. What this buys
// over the register kernel: ~190 KB in flight per SM instead of ~64 KB, the
// stream does not stop at tile boundaries (the producer runs ahead into the
// next tile while the consumers write the last one), and all of it goes out
// before the wait for the previous kernel: a short GEMV's weights are mostly
// requested while the kernel before it (a norm, attention) still runs.
constexpr int kPipeK = 512;
// + 64 bytes: rows g and g + 1 (the lanes of one shared-memory phase) land 16
// banks apart, so a consumer's 16-byte loads are conflict-free.
constexpr int kPipeRowBytes = kPipeK * 2 + 64;
constexpr int kPipeStageBytes = 16 * kPipeRowBytes;
constexpr int kPipeStages = 11;
constexpr int kPipeSmemBytes = kPipeStages * kPipeStageBytes;  // 191,488 bytes
// Where the consumers read x from. Up to kStagedMaxElements of it lie in
// shared memory after the ring, copied (or combined from split-KV partials,
// SkinnyGemm::merge) once after the wait: one memory round trip, where
// reading it from global memory a stage ahead costs one a stage whenever the
// ring is already full, as it is for a short GEMV whose weights streamed in
// before its wait.
enum class XSource { global, staged, merged };
constexpr int kStagedMaxElements = 8192;
constexpr int kStagedSmemBytes = kStagedMaxElements * 2;

// x [n, k] into shared memory: each thread's loads (up to 4) all in flight
// before the first store.
__device__ __forceinline__ void stage_x(const uint4* x, int total, uint4* xs, int tid, int nthreads) {
  constexpr int kBatch = 4;
  for (int base = tid; base < total; base += kBatch * nthreads) {
    uint4 v[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (base + b * nthreads < total) v[b] = __ldg(x + base + b * nthreads);
#pragma unroll
    for (int b = 0; b < kBatch; ++b)
      if (base + b * nthreads < total) xs[base + b * nthreads] = v[b];
  }
}

// The attention's output [n, k] (bf16) from its split-KV partials into xs
// (shared memory) and, where out is given, to global memory: a thread per 8
// elements, all of its splits' loads issued before the first is used (one
// memory round trip), then the combine kernel's arithmetic in its order
// (SplitKvPartials), so the bits are the combine kernel's.
__device__ __forceinline__ void merge_split_kv(const SplitKvPartials& m, int n, int k, uint4* xs, uint4* out, int tid,
                                               int nthreads) {
  const int k8 = k / 8;
  const int64_t stride = static_cast<int64_t>(m.num_tokens) * m.num_heads;
  for (int i = tid; i < n * k8; i += nthreads) {
    const int token = i / k8, col = (i % k8) * 8, head = col / m.head_dim, dim = col % m.head_dim;
    const int64_t item = static_cast<int64_t>(token) * m.num_heads + head;
    float lse[kMaxDeferredSplits];
    float4 lo[kMaxDeferredSplits], hi[kMaxDeferredSplits];
#pragma unroll
    for (int s = 0; s < kMaxDeferredSplits; ++s) {
      if (s < m.num_splits) {
        lse[s] = m.part_lse[s * stride + item];
        const auto* src = reinterpret_cast<const float4*>(m.part_o + (s * stride + item) * m.head_dim + dim);
        lo[s] = src[0];
        hi[s] = src[1];
      }
    }
    const int splits = min(m.positions[token] / m.keys_per_split + 1, m.num_splits);
    float mmax = -INFINITY;
#pragma unroll
    for (int s = 0; s < kMaxDeferredSplits; ++s)
      if (s < splits) mmax = fmaxf(mmax, lse[s]);
    float sum = 0.0f, acc[8] = {};
#pragma unroll
    for (int s = 0; s < kMaxDeferredSplits; ++s) {
      if (s < splits) {
        const float w = exp2f(lse[s] - mmax);
        sum += w;
        const float v[8] = {lo[s].x, lo[s].y, lo[s].z, lo[s].w, hi[s].x, hi[s].y, hi[s].z, hi[s].w};
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] += w * v[e];
      }
    }
    const float inv = 1.0f / sum;
    float y[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) y[e] = acc[e] * inv;
    const uint4 packed = pack8(y);
    xs[i] = packed;
    if (out != nullptr) out[i] = packed;
  }
}

// kX: where the consumers read x from (XSource).
template <int kNt, typename OutT, SkinnyEpilogue kEpi, XSource kX>
__global__ void __launch_bounds__((kWarps + 1) * 32, 1)
    pipe_gemm_kernel(const uint16_t* x, int n, const uint16_t* __restrict__ w, const float* __restrict__ bias,
                     OutT* __restrict__ out, int o_rows, int k, int tiles, const SkinnyRope rope,
                     unsigned* __restrict__ tile_counter, const SplitKvPartials merge) {
  FLINT_TRACE_KERNEL(trace::kGemvPipelined + static_cast<uint32_t>(kEpi));
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ __align__(128) unsigned char stages[];
  __shared__ uint64_t full[kPipeStages], empty[kPipeStages];
  __shared__ int stage_tile[kPipeStages];  // the tile whose first stage this is; -1: no more tiles
  __shared__ Partials<kNt> partial[2];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int nk = (k + kPipeK - 1) / kPipeK;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kPipeStages; ++s) {
      mbar_init(&full[s], 1);
      mbar_init(&empty[s], kWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  allow_next_grid();

  if (warp == kWarps) {
    // Producer: reads only weights, so it never waits for the previous kernel.
    uint64_t evict_first;  // weights are read once a step: keep them from pushing x and the K/V out of L2
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(evict_first));
    int it = 0, dealt = 0;
    const auto next_tile = [&] {
      if (tile_counter == nullptr) return static_cast<int>(blockIdx.x + gridDim.x * dealt++);
      unsigned t = 0;
      if (lane == 0) t = atomicAdd(tile_counter, 1u);
      return static_cast<int>(min(__shfl_sync(0xffffffffu, t, 0), static_cast<unsigned>(tiles)));
    };
    for (int tile = next_tile(); tile < tiles; tile = next_tile()) {
      const int r = lane & 15;
      const int row = tile_row_exists<kEpi>(tile, r, o_rows) ? tile_row<kEpi>(tile, r, rope.shape.head_dim, o_rows) : 0;
      const uint16_t* src = w + static_cast<int64_t>(row) * k;
      for (int kc = 0; kc < nk; ++kc, ++it) {
        const int s = it % kPipeStages;
        mbar_wait(&empty[s], ((it / kPipeStages) & 1) ^ 1);
        const uint32_t bytes = static_cast<uint32_t>(min(kPipeK, k - kc * kPipeK)) * 2;
        if (lane == 0 && kc == 0) stage_tile[s] = tile;  // published by the arrive below
        if (lane == 0)
          asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_addr(&full[s])),
                       "r"(16 * bytes)
                       : "memory");
        __syncwarp();
        if (lane < 16)
          asm volatile(
              "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint [%0], [%1], %2, "
              "[%3], %4;" ::"r"(smem_addr(stages + s * kPipeStageBytes + r * kPipeRowBytes)),
              "l"(src + kc * kPipeK), "r"(bytes), "r"(smem_addr(&full[s])), "l"(evict_first)
              : "memory");
      }
    }
    // The consumers stop at a stage that names no tile.
    const int s = it % kPipeStages;
    mbar_wait(&empty[s], ((it / kPipeStages) & 1) ^ 1);
    if (lane == 0) {
      stage_tile[s] = -1;
      mbar_arrive(&full[s]);
      // The last CTA past its last claim puts the counter back to zero for
      // the launch that next uses it (LinearRunner::next_tile_counter).
      if (tile_counter != nullptr && atomicAdd(tile_counter + 1, 1u) == gridDim.x - 1) {
        tile_counter[0] = 0;
        tile_counter[1] = 0;
      }
    }
    return;
  }

  // Consumers.
  const int g = lane / 4, t = lane % 4;
  const int k8 = k / 8;
  auto* staged = reinterpret_cast<uint4*>(stages + kPipeSmemBytes);
  const XRows<kNt> xr(kX == XSource::global ? x : reinterpret_cast<const uint16_t*>(staged), n, g, k8);
  // The x's of stage kc a lane needs: uint4 index kc * kPipeK / 8 + 8 warp + 4 j + t.
  auto load_stage_x = [&](uint4 (&xv)[kNt][2], int kc) {
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int idx = kc * (kPipeK / 8) + warp * 8 + 4 * j + t;
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt) {
        const bool in = idx < k8 && xr.ok[nt];
        if constexpr (kX == XSource::global)
          xv[nt][j] = in ? __ldg(xr.row[nt] + idx) : make_uint4(0, 0, 0, 0);
        else
          xv[nt][j] = in ? xr.row[nt][idx] : make_uint4(0, 0, 0, 0);
      }
    }
  };
  wait_for_previous_grid();
  if constexpr (kX != XSource::global) {
    if constexpr (kX == XSource::merged) {
      auto* to_global = blockIdx.x == 0 ? reinterpret_cast<uint4*>(const_cast<uint16_t*>(x)) : nullptr;
      merge_split_kv(merge, n, k, staged, to_global, static_cast<int>(threadIdx.x), kWarps * 32);
    } else {
      stage_x(reinterpret_cast<const uint4*>(x), n * k8, staged, static_cast<int>(threadIdx.x), kWarps * 32);
    }
    asm volatile("bar.sync 1, %0;" ::"n"(kWarps * 32) : "memory");
  }
  uint4 xcur[kNt][2];
  load_stage_x(xcur, 0);
  int it = 0, parity_of_partial = 0;
  for (;;) {
    // The tile's first stage says which tile it is (or that none is left);
    // the wait on it below then returns at once.
    mbar_wait(&full[it % kPipeStages], (it / kPipeStages) & 1);
    const int tile = stage_tile[it % kPipeStages];
    if (tile < 0) break;
    const EpilogueInputs loaded =
        load_epilogue_inputs<OutT, kEpi>(tile, static_cast<int>(threadIdx.x), n, out, o_rows, rope);
    float acc[kNt][4] = {};
    for (int kc = 0; kc < nk; ++kc, ++it) {
      // x one stage ahead (the next tile starts again at stage 0): its
      // latency hides behind this stage's wait.
      uint4 xnext[kNt][2];
      load_stage_x(xnext, kc + 1 < nk ? kc + 1 : 0);
      const int s = it % kPipeStages;
      mbar_wait(&full[s], (it / kPipeStages) & 1);
      const unsigned char* st = stages + s * kPipeStageBytes;
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int col = warp * 8 + 4 * j + t;
        const bool in = kc * (kPipeK / 8) + col < k8;
        const uint4 zero = make_uint4(0, 0, 0, 0);
        const uint4 a = in ? *reinterpret_cast<const uint4*>(st + g * kPipeRowBytes + col * 16) : zero;
        const uint4 b = in ? *reinterpret_cast<const uint4*>(st + (g + 8) * kPipeRowBytes + col * 16) : zero;
#pragma unroll
        for (int nt = 0; nt < kNt; ++nt) mma_loaded(acc[nt], a, b, xcur[nt][j]);
      }
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[s]);
#pragma unroll
      for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
        for (int j = 0; j < 2; ++j) xcur[nt][j] = xnext[nt][j];
    }
    // Two partial buffers: a tile's sums are written while the previous
    // tile's may still be read; one barrier per tile among the consumers.
    Partials<kNt>& p = partial[parity_of_partial];
    parity_of_partial ^= 1;
    store_partials(p, warp, lane, acc);
    asm volatile("bar.sync 1, %0;" ::"n"(kWarps * 32) : "memory");
    write_tile<kNt, OutT, kEpi>(p, tile, static_cast<int>(threadIdx.x), kWarps * 32, n, bias, out, o_rows, rope,
                                &loaded);
  }
#else
  __trap();
#endif
}

int skinny_tiles(const SkinnyGemm& g) {
  const int tile = g.epilogue == SkinnyEpilogue::swiglu ? 8 : 16;
  return static_cast<int>((g.out_features + tile - 1) / tile);
}

// Whether a counter given to the pipelined kernel is used
// (FLINT_CUDA_TILES=dealt: tiles dealt in turn, for A/B runs).
bool claim_tiles() {
  static const bool claim = [] {
    const char* v = std::getenv("FLINT_CUDA_TILES");
    return v == nullptr || std::string_view(v) != "dealt";
  }();
  return claim;
}

// Whether the pipelined kernel copies a small x to shared memory
// (FLINT_CUDA_X=global: read from global memory a stage ahead, for A/B runs).
bool stage_x_in_shared() {
  static const bool stage = [] {
    const char* v = std::getenv("FLINT_CUDA_X");
    return v == nullptr || std::string_view(v) != "global";
  }();
  return stage;
}

// kU = 0: the pipelined kernel; otherwise the register kernel.
template <int kNt, int kU, typename OutT, SkinnyEpilogue kEpi>
void launch_tiles(const SkinnyGemm& g, cudaStream_t stream) {
  const auto x = static_cast<const uint16_t*>(g.x);
  const auto w = static_cast<const uint16_t*>(g.w);
  const int n = static_cast<int>(g.n), o_rows = static_cast<int>(g.out_features);
  const int k = static_cast<int>(g.in_features), tiles = skinny_tiles(g);
  if constexpr (kU == 0) {
    const XSource source = g.merge.num_splits > 0 ? XSource::merged
                           : g.n * g.in_features <= kStagedMaxElements && stage_x_in_shared() ? XSource::staged
                                                                                             : XSource::global;
    auto* kernel = pipe_gemm_kernel<kNt, OutT, kEpi, XSource::global>;
    if (source == XSource::staged) kernel = pipe_gemm_kernel<kNt, OutT, kEpi, XSource::staged>;
    if (source == XSource::merged) {
      if constexpr (kEpi == SkinnyEpilogue::accumulate && sizeof(OutT) == 2) {
        if (!skinny_gemm_merges(g.n, g.in_features) || g.merge.num_splits > kMaxDeferredSplits ||
            g.merge.num_tokens != g.n || static_cast<int64_t>(g.merge.num_heads) * g.merge.head_dim != g.in_features)
          throw_error("launch_skinny_gemm: split-KV partials that do not match x");
        kernel = pipe_gemm_kernel<kNt, OutT, kEpi, XSource::merged>;
      } else {
        throw_error("launch_skinny_gemm: split-KV partials need the bf16 accumulate epilogue");
      }
    }
    const int smem = kPipeSmemBytes + (source == XSource::global ? 0 : kStagedSmemBytes);
    // Once per instantiation and device would do; the call is cheap and
    // graph capture records launches only.
    FLINT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    // With a counter, a few CTAs more than tiles (up to one per SM): one that
    // finds an SM free early takes the tile of one that finds none free yet.
    // Small GEMVs deal in turn: they gain nothing, and with at least half an
    // SM count of CTAs no more than two counted launches hold SMs at once.
    const int sms = multiprocessor_count();
    unsigned* counter = tiles >= sms / 2 && claim_tiles() ? g.tile_counter : nullptr;
    const int spare = counter != nullptr ? 8 : 0;
    const auto blocks = static_cast<unsigned>(std::min(tiles + spare, sms));
    launch_kernel(kernel, blocks, (kWarps + 1) * 32, smem, stream, x, n, w, g.bias, static_cast<OutT*>(g.out),
                  o_rows, k, tiles, g.rope, counter, g.merge);
  } else {
    if (g.merge.num_splits > 0) throw_error("launch_skinny_gemm: split-KV partials need the pipelined kernel");
    launch_kernel(skinny_gemm_kernel<kNt, kU, OutT, kEpi>, static_cast<unsigned>(tiles), kWarps * 32, 0, stream, x,
                  n, w, g.bias, static_cast<OutT*>(g.out), o_rows, k, g.rope);
  }
}

template <int kNt, int kU>
void launch_skinny(const SkinnyGemm& g, cudaStream_t stream) {
  const bool f32 = g.out_dtype == DType::f32;
  switch (g.epilogue) {
    case SkinnyEpilogue::store:
      if (f32)
        launch_tiles<kNt, kU, float, SkinnyEpilogue::store>(g, stream);
      else
        launch_tiles<kNt, kU, __nv_bfloat16, SkinnyEpilogue::store>(g, stream);
      return;
    case SkinnyEpilogue::accumulate:
      if (f32)
        launch_tiles<kNt, kU, float, SkinnyEpilogue::accumulate>(g, stream);
      else
        launch_tiles<kNt, kU, __nv_bfloat16, SkinnyEpilogue::accumulate>(g, stream);
      return;
    case SkinnyEpilogue::swiglu:
      launch_tiles<kNt, kU, __nv_bfloat16, SkinnyEpilogue::swiglu>(g, stream);
      return;
    case SkinnyEpilogue::rope_cache:
      launch_tiles<kNt, kU, __nv_bfloat16, SkinnyEpilogue::rope_cache>(g, stream);
      return;
  }
}

// The pipelined kernel on sm_90 and later unless FLINT_CUDA_GEMV=register
// (A/B runs); the register kernel elsewhere.
bool use_pipelined_gemv() {
  static const bool use = [] {
    if (const char* v = std::getenv("FLINT_CUDA_GEMV"); v && std::string_view(v) == "register") return false;
    return compute_capability_major() >= 9;
  }();
  return use;
}

// One warp per output element; grid (ceil(o_rows / 8), rows of this launch).
template <typename OutT>
__global__ void linear_fallback_kernel(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias,
                                       OutT* out, int o_rows, int64_t k, bool accumulate) {
  FLINT_TRACE_KERNEL(trace::kFallbackLinear);
  wait_for_previous_grid();
  allow_next_grid();
  const int o = static_cast<int>(blockIdx.x) * 8 + static_cast<int>(threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (o >= o_rows) return;
  const __nv_bfloat16* wr = w + static_cast<int64_t>(o) * k;
  const __nv_bfloat16* xr = x + static_cast<int64_t>(blockIdx.y) * k;
  float s = 0.0f;
  for (int64_t i = lane; i < k; i += 32) s += __bfloat162float(wr[i]) * __bfloat162float(xr[i]);
  for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xFFFFFFFFu, s, off);
  if (lane == 0) {
    if (bias) s += bias[o];
    OutT* p = out + static_cast<int64_t>(blockIdx.y) * o_rows + o;
    if (accumulate) s += load_out(p);
    store_out(p, s);
  }
}

}  // namespace

bool skinny_gemm_supports(const void* x, const void* w, int64_t n, int64_t in_features) {
  return n >= 1 && n <= kSkinnyMaxRows && in_features % 8 == 0 && in_features > 0 && aligned16(x) && aligned16(w);
}

bool skinny_gemm_pipelined(int64_t n) { return n >= 1 && n <= 8 && use_pipelined_gemv(); }

bool skinny_gemm_merges(int64_t n, int64_t in_features) {
  return skinny_gemm_pipelined(n) && in_features % 8 == 0 && n * in_features <= kStagedMaxElements;
}

void launch_skinny_gemm(const SkinnyGemm& g, cudaStream_t stream) {
  if (g.n == 0 || g.out_features == 0) return;
  // The pipelined kernel takes one x tile: with two, x (re-read from L2 for
  // every tile: L1 is what shared memory leaves) costs as much L2 traffic as
  // the weights, and the register kernel is faster (docs/PERF.md).
  // Register budget of the register kernel (2 CTAs of 256 threads per SM):
  // the double-buffered chunk is (2 + kNt) * kU uint4: kU = 4 for one x tile,
  // 2 for two, 1 for four.
  if (skinny_gemm_pipelined(g.n))
    launch_skinny<1, 0>(g, stream);
  else if (g.n <= 8)
    launch_skinny<1, 4>(g, stream);
  else if (g.n <= 16)
    launch_skinny<2, 2>(g, stream);
  else
    launch_skinny<4, 1>(g, stream);
}

void launch_linear_fallback(const void* x, int64_t n, const void* w, const float* bias, void* out, DType out_dtype,
                            int64_t out_features, int64_t in_features, bool accumulate, cudaStream_t stream) {
  if (n == 0 || out_features == 0) return;
  const auto* xp = static_cast<const __nv_bfloat16*>(x);
  const auto* wp = static_cast<const __nv_bfloat16*>(w);
  const int o = static_cast<int>(out_features);
  const unsigned blocks = static_cast<unsigned>((o + 7) / 8);
  // grid.y is at most 65535: rows go in slices.
  for (int64_t r0 = 0; r0 < n; r0 += 65535) {
    const unsigned rows = static_cast<unsigned>(std::min<int64_t>(65535, n - r0));
    const __nv_bfloat16* xr = xp + r0 * in_features;
    if (out_dtype == DType::f32)
      launch_kernel(linear_fallback_kernel<float>, dim3(blocks, rows), 256, 0, stream, xr, wp, bias,
                    static_cast<float*>(out) + r0 * o, o, in_features, accumulate);
    else
      launch_kernel(linear_fallback_kernel<__nv_bfloat16>, dim3(blocks, rows), 256, 0, stream, xr, wp, bias,
                    static_cast<__nv_bfloat16*>(out) + r0 * o, o, in_features, accumulate);
  }
}

}  // namespace flint::cuda
