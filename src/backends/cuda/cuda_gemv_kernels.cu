// Linear layers for a few rows of x (decode): out[n, o] = x[n, :] . w[o, :] + bias[o].
//
// Decode reads every weight once per step, so the kernel is a weight stream:
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

template <int kNt, int kU>
__device__ __forceinline__ void load_x(Chunk<kNt, kU>& ch, int c, int t, int k8, const uint4* const (&xs)[kNt],
                                       const bool (&ok_x)[kNt]) {
  const uint4 zero = make_uint4(0, 0, 0, 0);
#pragma unroll
  for (int j = 0; j < kU; ++j) {
    const int idx = c * 4 * kU + 4 * j + t;
    const bool in = idx < k8;
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) ch.x[nt][j] = in && ok_x[nt] ? __ldg(xs[nt] + idx) : zero;
  }
}

template <int kNt, int kU>
__device__ __forceinline__ void mma_chunk(const Chunk<kNt, kU>& ch, float (&acc)[kNt][4]) {
#pragma unroll
  for (int j = 0; j < kU; ++j) {
    // Pairs 0, 1 of each uint4 go to the first mma, pairs 2, 3 to the second.
#pragma unroll
    for (int nt = 0; nt < kNt; ++nt) {
      mma_bf16(acc[nt], ch.a[j].x, ch.b[j].x, ch.a[j].y, ch.b[j].y, ch.x[nt][j].x, ch.x[nt][j].y);
      mma_bf16(acc[nt], ch.a[j].z, ch.b[j].z, ch.a[j].w, ch.b[j].w, ch.x[nt][j].z, ch.x[nt][j].w);
    }
  }
}


template <typename OutT>
__device__ __forceinline__ float load_out(const OutT* p) {
  if constexpr (sizeof(OutT) == 4)
    return *p;
  else
    return __bfloat162float(*p);
}

// Epilogue::store / accumulate:
//   x: [n, k] bf16, n <= 8 * kNt; w: [o_rows, k] bf16; k % 8 == 0; both 16-byte aligned
//   out: [n, o_rows] (accumulate: read, added to, written); grid.x = ceil(o_rows / 16);
//   blockDim.x = 32 * kWarps
// Epilogue::swiglu: w is [2 o_rows, k], gate rows then up rows (bias likewise);
//   a CTA takes 8 gate rows as its first 8 and the 8 matching up rows as its
//   last 8, and writes out[:, o] = silu(bf16(gate)) * bf16(up) (bf16, [n,
//   o_rows]): bit for bit the store kernel + swiglu (same sums, same roundings),
//   without the [n, 2 o_rows] intermediate and its kernel. grid.x = ceil(o_rows / 8).
// Epilogue::rope_cache: o_rows = (Hq + 2 Hkv) D, out bf16 [n, o_rows]; CTA
//   j takes rows i .. i + 7 and i + D/2 .. i + D/2 + 7 of head j / (D / 16),
//   i = 8 (j % (D / 16)); grid.x = o_rows / 16.
template <int kNt, int kU, typename OutT, SkinnyEpilogue kEpi>
__global__ void __launch_bounds__(kWarps * 32, 2)
    skinny_gemm_kernel(const uint16_t* __restrict__ x, int n, const uint16_t* __restrict__ w,
                       const float* __restrict__ bias, OutT* __restrict__ out, int o_rows, int k,
                       const SkinnyRope rope) {
  constexpr bool kSwiglu = kEpi == SkinnyEpilogue::swiglu, kRope = kEpi == SkinnyEpilogue::rope_cache;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  const int k8 = k / 8;
  const int nchunks = (k8 + 4 * kU - 1) / (4 * kU);

  // Weight rows of the CTA's first and last 8 (a and b) and whether they exist.
  int o0, row_b;
  if constexpr (kRope) {
    const int half = rope.shape.head_dim / 2;
    o0 = static_cast<int>(blockIdx.x) / (half / 8) * 2 * half + static_cast<int>(blockIdx.x) % (half / 8) * 8;
    row_b = o0 + g + half;
  } else {
    o0 = static_cast<int>(blockIdx.x) * (kSwiglu ? 8 : 16);
    row_b = kSwiglu ? o_rows + o0 + g : o0 + g + 8;
  }
  const int row_a = o0 + g;
  const bool ok_a = row_a < o_rows, ok_b = kSwiglu ? ok_a : row_b < o_rows;
  const uint4* wa = reinterpret_cast<const uint4*>(w) + static_cast<int64_t>(ok_a ? row_a : 0) * k8;
  const uint4* wb = reinterpret_cast<const uint4*>(w) + static_cast<int64_t>(ok_b ? row_b : 0) * k8;
  const uint4* xs[kNt];
  bool ok_x[kNt];
#pragma unroll
  for (int nt = 0; nt < kNt; ++nt) {
    ok_x[nt] = nt * 8 + g < n;
    xs[nt] = reinterpret_cast<const uint4*>(x) + static_cast<int64_t>(ok_x[nt] ? nt * 8 + g : 0) * k8;
  }

  float acc[kNt][4] = {};
  Chunk<kNt, kU> cur;
  // Weights are read-only during steps: the first chunk's loads go out while
  // the kernel that writes x may still run (programmatic launch, cuda_launch.cuh).
  load_weights(cur, warp, t, k8, wa, ok_a, wb, ok_b);
  // kRope: each token's cache row for a k or v CTA (from the step arrays,
  // read-only during steps), and its cos/sin for the CTA's 8 pairs (from the
  // step's rope table, written by an earlier kernel: after the wait, copied
  // asynchronously so that no register waits on it).
  __shared__ int64_t rope_slot[kRope ? kNt * 8 : 1];
  __shared__ __align__(16) float rope_cs[kRope ? kNt * 8 : 1][2][8];
  __shared__ int rope_head;  // the CTA's head, for the epilogue: one register less through the main loop
  if constexpr (kRope) {
    const int head = static_cast<int>(blockIdx.x) / (rope.shape.head_dim / 16);
    if (threadIdx.x == 0) rope_head = head;
    const int hq = rope.shape.num_heads, hkv = rope.shape.kv_heads, bs = rope.shape.block_size;
    const int tok = static_cast<int>(threadIdx.x);
    if (head >= hq && tok < n) {
      const int32_t pos = rope.step.positions[tok];
      const int32_t block =
          rope.step.block_tables[static_cast<int64_t>(rope.step.token_seq[tok]) * rope.step.max_blocks_per_seq +
                                 pos / bs];
      const int cache_head = head < hq + hkv ? head - hq : head - hq - hkv;
      rope_slot[tok] = ((static_cast<int64_t>(block) * hkv + cache_head) * bs + pos % bs) * rope.shape.head_dim;
    }
  }
  wait_for_previous_grid();
  allow_next_grid();
  if constexpr (kRope) {
    const int half = rope.shape.head_dim / 2, i0 = static_cast<int>(blockIdx.x) % (half / 8) * 8;
    const int tok = static_cast<int>(threadIdx.x) / 4, part = static_cast<int>(threadIdx.x) % 4;
    if (tok < n) {
      const float* src = rope.table + (static_cast<int64_t>(tok) * 2 + part / 2) * half + i0 + (part % 2) * 4;
      cp_async16(smem_addr(&rope_cs[tok][part / 2][(part % 2) * 4]), src, 16);
    }
    cp_async_commit();
  }
  load_x(cur, warp, t, k8, xs, ok_x);
  for (int c = warp; c < nchunks; c += kWarps) {
    Chunk<kNt, kU> next;
    load_weights(next, c + kWarps, t, k8, wa, ok_a, wb, ok_b);
    load_x(next, c + kWarps, t, k8, xs, ok_x);
    mma_chunk(cur, acc);
    cur = next;
  }

  // acc[nt][r] of lane (g, t) is out row (o0 + g + 8 * (r >= 2)), x row (8 nt + 2 t + r % 2).
  __shared__ float partial[kWarps][kNt * 4][32];
#pragma unroll
  for (int nt = 0; nt < kNt; ++nt)
#pragma unroll
    for (int r = 0; r < 4; ++r) partial[warp][nt * 4 + r][lane] = acc[nt][r];
  if constexpr (kRope) cp_async_wait<0>();
  __syncthreads();
  // swiglu and rope_cache pair each of the CTA's first 8 rows (a) with one
  // of its last 8 (b): entry (q, l) with q % 4 < 2 is row a = o0 + l / 4 for
  // x row col, entry (q + 2, l) its row b. Entry i of kNt * 64 gives both sums.
  struct Pair {
    float a, b;
    int j, col;  // row a is the CTA's j-th of 8
  };
  auto pair_at = [&](int i) {
    const int q = (i / 64) * 4 + (i / 32) % 2, l = i % 32;
    Pair p{0.0f, 0.0f, l / 4, (q / 4) * 8 + 2 * (l % 4) + (q & 1)};
#pragma unroll
    for (int v = 0; v < kWarps; ++v) {
      p.a += partial[v][q][l];
      p.b += partial[v][q + 2][l];
    }
    return p;
  };
  if constexpr (kRope) {
    const int half = rope.shape.head_dim / 2;
    const int head = rope_head, i0 = (static_cast<int>(blockIdx.x) - head * (half / 8)) * 8;
    const int hq = rope.shape.num_heads, hkv = rope.shape.kv_heads;
    auto* cache = reinterpret_cast<__nv_bfloat16*>(head < hq + hkv ? rope.k_cache : rope.v_cache);
    for (int i = static_cast<int>(threadIdx.x); i < kNt * 2 * 32; i += kWarps * 32) {
      Pair p = pair_at(i);
      if (p.col >= n) continue;
      const int ra = head * 2 * half + i0 + p.j, rb = ra + half;
      if (bias) {
        p.a += bias[ra];
        p.b += bias[rb];
      }
      // The linear's bf16 output, then launch_rope_and_cache's arithmetic.
      float ya = round_bf16(p.a), yb = round_bf16(p.b);
      if (head < hq + hkv) {
        const float x0 = ya, x1 = yb, c = rope_cs[p.col][0][p.j], s = rope_cs[p.col][1][p.j];
        ya = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
        yb = __fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s));
      }
      const __nv_bfloat16 ba = __float2bfloat16_rn(ya), bb = __float2bfloat16_rn(yb);
      out[static_cast<int64_t>(p.col) * o_rows + ra] = ba;
      out[static_cast<int64_t>(p.col) * o_rows + rb] = bb;
      if (head >= hq) {
        __nv_bfloat16* slot = cache + rope_slot[p.col] + i0;
        slot[p.j] = ba;
        slot[p.j + half] = bb;
      }
    }
  } else if constexpr (kSwiglu) {
    // Row a is a gate row, row b its up row.
    for (int i = static_cast<int>(threadIdx.x); i < kNt * 2 * 32; i += kWarps * 32) {
      Pair p = pair_at(i);
      const int row = o0 + p.j;
      if (row < o_rows && p.col < n) {
        if (bias) {
          p.a += bias[row];
          p.b += bias[o_rows + row];
        }
        store_out(out + static_cast<int64_t>(p.col) * o_rows + row, silu_mul(round_bf16(p.a), round_bf16(p.b)));
      }
    }
  } else {
    for (int i = static_cast<int>(threadIdx.x); i < kNt * 4 * 32; i += kWarps * 32) {
      const int q = i / 32, l = i % 32;
      float s = 0.0f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) s += partial[v][q][l];
      const int r = q % 4;
      const int row = o0 + l / 4 + (r >= 2 ? 8 : 0);
      const int col = (q / 4) * 8 + 2 * (l % 4) + (r & 1);
      if (row < o_rows && col < n) {
        if (bias) s += bias[row];
        OutT* p = out + static_cast<int64_t>(col) * o_rows + row;
        if constexpr (kEpi == SkinnyEpilogue::accumulate) s += load_out(p);
        store_out(p, s);
      }
    }
  }
}

template <int kNt, int kU, typename OutT, SkinnyEpilogue kEpi>
void launch_tiles(const SkinnyGemm& g, cudaStream_t stream) {
  const int tile = kEpi == SkinnyEpilogue::swiglu ? 8 : 16;
  const auto blocks = static_cast<unsigned>((g.out_features + tile - 1) / tile);
  launch_kernel(skinny_gemm_kernel<kNt, kU, OutT, kEpi>, blocks, kWarps * 32, 0, stream,
                static_cast<const uint16_t*>(g.x), static_cast<int>(g.n), static_cast<const uint16_t*>(g.w), g.bias,
                static_cast<OutT*>(g.out), static_cast<int>(g.out_features), static_cast<int>(g.in_features), g.rope);
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

// One warp per output element; grid (ceil(o_rows / 8), rows of this launch).
template <typename OutT>
__global__ void linear_fallback_kernel(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias,
                                       OutT* out, int o_rows, int64_t k, bool accumulate) {
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

void launch_skinny_gemm(const SkinnyGemm& g, cudaStream_t stream) {
  if (g.n == 0 || g.out_features == 0) return;
  // Register budget (2 CTAs of 256 threads per SM): the double-buffered chunk
  // is (2 + kNt) * kU uint4: kU = 4 for one x tile, 2 for two, 1 for four.
  if (g.n <= 8)
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
