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
#include <cuda_bf16.h>

#include <algorithm>

#include "backends/cuda/cuda_bf16.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_kernels.h"

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


// kSwiglu = false:
//   x: [n, k] bf16, n <= 8 * kNt; w: [o_rows, k] bf16; k % 8 == 0; both 16-byte aligned
//   out: [n, o_rows]; grid.x = ceil(o_rows / 16); blockDim.x = 32 * kWarps
// kSwiglu = true: w is [2 o_rows, k], gate rows then up rows (bias likewise);
//   a CTA takes 8 gate rows as its first 8 and the 8 matching up rows as its
//   last 8, and writes out[:, o] = silu(bf16(gate)) * bf16(up) (bf16, [n,
//   o_rows]): bit for bit the linear + swiglu pair (same sums, same roundings),
//   without the [n, 2 o_rows] intermediate and its kernel. grid.x = ceil(o_rows / 8).
template <int kNt, int kU, typename OutT, bool kSwiglu = false>
__global__ void __launch_bounds__(kWarps * 32, 2)
    skinny_gemm_kernel(const uint16_t* __restrict__ x, int n, const uint16_t* __restrict__ w,
                       const float* __restrict__ bias, OutT* __restrict__ out, int o_rows, int k) {
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int g = lane / 4, t = lane % 4;
  const int k8 = k / 8;
  const int nchunks = (k8 + 4 * kU - 1) / (4 * kU);

  // Weight rows of the CTA's first and last 8 (a and b) and whether they exist.
  const int o0 = static_cast<int>(blockIdx.x) * (kSwiglu ? 8 : 16);
  const int row_a = o0 + g, row_b = kSwiglu ? o_rows + o0 + g : o0 + g + 8;
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
  wait_for_previous_grid();
  allow_next_grid();
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
  __syncthreads();
  if constexpr (kSwiglu) {
    // Entry (q, l) with q % 4 < 2 is gate row o0 + l / 4; entry (q + 2, l) is its up row.
    for (int i = static_cast<int>(threadIdx.x); i < kNt * 2 * 32; i += kWarps * 32) {
      const int q = (i / 64) * 4 + (i / 32) % 2, l = i % 32;
      float gate = 0.0f, up = 0.0f;
#pragma unroll
      for (int v = 0; v < kWarps; ++v) {
        gate += partial[v][q][l];
        up += partial[v][q + 2][l];
      }
      const int row = o0 + l / 4;
      const int col = (q / 4) * 8 + 2 * (l % 4) + (q & 1);
      if (row < o_rows && col < n) {
        if (bias) {
          gate += bias[row];
          up += bias[o_rows + row];
        }
        store_out(out + static_cast<int64_t>(col) * o_rows + row, silu_mul(round_bf16(gate), round_bf16(up)));
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
        store_out(out + static_cast<int64_t>(col) * o_rows + row, s);
      }
    }
  }
}

template <int kNt, int kU>
void launch_skinny(const void* x, int n, const void* w, const float* bias, void* out, DType out_dtype, int o_rows,
                   int k, bool swiglu, cudaStream_t stream) {
  const auto* xp = static_cast<const uint16_t*>(x);
  const auto* wp = static_cast<const uint16_t*>(w);
  if (swiglu) {
    launch_kernel(skinny_gemm_kernel<kNt, kU, __nv_bfloat16, true>, static_cast<unsigned>((o_rows + 7) / 8),
                  kWarps * 32, 0, stream, xp, n, wp, bias, static_cast<__nv_bfloat16*>(out), o_rows, k);
    return;
  }
  const unsigned blocks = static_cast<unsigned>((o_rows + 15) / 16);
  if (out_dtype == DType::f32)
    launch_kernel(skinny_gemm_kernel<kNt, kU, float>, blocks, kWarps * 32, 0, stream, xp, n, wp, bias,
                  static_cast<float*>(out), o_rows, k);
  else
    launch_kernel(skinny_gemm_kernel<kNt, kU, __nv_bfloat16>, blocks, kWarps * 32, 0, stream, xp, n, wp, bias,
                  static_cast<__nv_bfloat16*>(out), o_rows, k);
}

// One warp per output element; grid (ceil(o_rows / 8), rows of this launch).
template <typename OutT>
__global__ void linear_fallback_kernel(const __nv_bfloat16* x, const __nv_bfloat16* w, const float* bias,
                                       OutT* out, int o_rows, int64_t k) {
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
    store_out(out + static_cast<int64_t>(blockIdx.y) * o_rows + o, s);
  }
}

}  // namespace

bool skinny_gemm_supports(const void* x, const void* w, int64_t n, int64_t in_features) {
  return n >= 1 && n <= kSkinnyMaxRows && in_features % 8 == 0 && in_features > 0 && aligned16(x) && aligned16(w);
}

namespace {

void launch_skinny_rows(const void* x, int64_t n, const void* w, const float* bias, void* out, DType out_dtype,
                        int64_t out_features, int64_t in_features, bool swiglu, cudaStream_t stream) {
  if (n == 0 || out_features == 0) return;
  const int rows = static_cast<int>(n), o = static_cast<int>(out_features), k = static_cast<int>(in_features);
  // Register budget (2 CTAs of 256 threads per SM): the double-buffered chunk
  // is (2 + kNt) * kU uint4: kU = 4 for one x tile, 2 for two, 1 for four.
  if (rows <= 8)
    launch_skinny<1, 4>(x, rows, w, bias, out, out_dtype, o, k, swiglu, stream);
  else if (rows <= 16)
    launch_skinny<2, 2>(x, rows, w, bias, out, out_dtype, o, k, swiglu, stream);
  else
    launch_skinny<4, 1>(x, rows, w, bias, out, out_dtype, o, k, swiglu, stream);
}

}  // namespace

void launch_skinny_gemm(const void* x, int64_t n, const void* w, const float* bias, void* out, DType out_dtype,
                        int64_t out_features, int64_t in_features, cudaStream_t stream) {
  launch_skinny_rows(x, n, w, bias, out, out_dtype, out_features, in_features, false, stream);
}

void launch_skinny_gemm_swiglu(const void* x, int64_t n, const void* w_gate_up, const float* bias, void* out,
                               int64_t ffn_features, int64_t in_features, cudaStream_t stream) {
  launch_skinny_rows(x, n, w_gate_up, bias, out, DType::bf16, ffn_features, in_features, true, stream);
}

void launch_linear_fallback(const void* x, int64_t n, const void* w, const float* bias, void* out, DType out_dtype,
                            int64_t out_features, int64_t in_features, cudaStream_t stream) {
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
                    static_cast<float*>(out) + r0 * o, o, in_features);
    else
      launch_kernel(linear_fallback_kernel<__nv_bfloat16>, dim3(blocks, rows), 256, 0, stream, xr, wp, bias,
                    static_cast<__nv_bfloat16*>(out) + r0 * o, o, in_features);
  }
}

}  // namespace flint::cuda
