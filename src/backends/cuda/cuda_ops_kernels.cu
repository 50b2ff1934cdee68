// Row-wise kernels of the CUDA backend: dtype conversion, row gathers
// (embedding, gather_rows), RMSNorm with the fused residual add, SwiGLU, bias.
// Memory-bound all: 16-byte accesses where the row length and alignment allow,
// f32 arithmetic, one rounding per output.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/cuda_bf16.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_launch.cuh"

namespace flint::cuda {
namespace {

// A grid-stride loop's grid: enough CTAs to fill the GPU several times over,
// never more than the work needs.
int stride_blocks(uint64_t work, int threads) {
  return static_cast<int>(std::max<uint64_t>(1, std::min<uint64_t>((work + threads - 1) / threads, 132 * 16)));
}

__device__ __forceinline__ float load_any(const void* p, DType t, uint64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::f16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
  }
}

__global__ void convert_kernel(const void* src, DType src_dtype, void* dst, DType dst_dtype, uint64_t n) {
  FLINT_TRACE_KERNEL(trace::kConvert);
  wait_for_previous_grid();
  allow_next_grid();
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const float v = load_any(src, src_dtype, i);
    if (dst_dtype == DType::f32)
      static_cast<float*>(dst)[i] = v;
    else
      static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16_rn(v);
  }
}

// One CTA per output row. Rows whose from_sample entry is >= 0 take the id
// that sample drew (from_sample and samples null: none do).
template <bool kVec>
__global__ void gather_rows_kernel(const uint16_t* table, const int32_t* ids, const int32_t* from_sample,
                                   const RowSample* samples, int32_t vocab, int64_t h, uint16_t* out) {
  FLINT_TRACE_KERNEL(vocab > 0 ? trace::kEmbedding : trace::kGatherRows);  // launch_gather_rows passes no vocabulary
  wait_for_previous_grid();
  allow_next_grid();
  int32_t id = ids[blockIdx.x];
  if (from_sample != nullptr && from_sample[blockIdx.x] >= 0) {
    const RowSample drawn = samples[from_sample[blockIdx.x]];
    // A failed draw has no token: row 0 stands in, and the host, which reads
    // the failure, discards what this row computes.
    id = drawn.status == RowSampleStatus::ok && drawn.id >= 0 && drawn.id < vocab ? drawn.id : 0;
  }
  const uint16_t* src = table + static_cast<int64_t>(id) * h;
  uint16_t* dst = out + static_cast<int64_t>(blockIdx.x) * h;
  if constexpr (kVec) {
    const int64_t h8 = h / 8;
    for (int64_t c = threadIdx.x; c < h8; c += blockDim.x)
      reinterpret_cast<uint4*>(dst)[c] = reinterpret_cast<const uint4*>(src)[c];
  } else {
    for (int64_t c = threadIdx.x; c < h; c += blockDim.x) dst[c] = src[c];
  }
}

// Sum over the CTA; every thread gets the total. `scratch` holds 32 floats.
__device__ float block_sum(float v, float* scratch) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int warps = (blockDim.x + 31) / 32;
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.0f;
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

// The row in registers: kVpt uint4 (8 values) per thread, at most 256 threads,
// so rows up to 16384 wide; x is read once, out written once.
template <int kVpt>
__global__ void __launch_bounds__(256)
    rms_norm_vec_kernel(const uint16_t* x, const float* w, int h, float eps, uint16_t* out) {
  FLINT_TRACE_KERNEL(trace::kRmsNorm);
  __shared__ float scratch[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * h;
  const int h8 = h / 8;
  // The norm weight is read-only during steps: it is loaded while the kernel
  // that writes x may still run (programmatic launch, cuda_launch.cuh).
  float4 w_lo[kVpt], w_hi[kVpt];
#pragma unroll
  for (int i = 0; i < kVpt; ++i) {
    const int c = threadIdx.x + i * blockDim.x;
    if (c < h8) {
      w_lo[i] = reinterpret_cast<const float4*>(w)[2 * c];
      w_hi[i] = reinterpret_cast<const float4*>(w)[2 * c + 1];
    }
  }
  allow_next_grid();
  wait_for_previous_grid();
  const uint4* xr = reinterpret_cast<const uint4*>(x + base);
  float v[kVpt][8];
  float ss = 0.0f;
#pragma unroll
  for (int i = 0; i < kVpt; ++i) {
    const int c = threadIdx.x + i * blockDim.x;
    if (c < h8) {
      unpack8(xr[c], v[i]);
#pragma unroll
      for (int j = 0; j < 8; ++j) ss += v[i][j] * v[i][j];
    }
  }
  ss = block_sum(ss, scratch);
  const float rinv = 1.0f / sqrtf(ss / static_cast<float>(h) + eps);
  uint4* o = reinterpret_cast<uint4*>(out + base);
#pragma unroll
  for (int i = 0; i < kVpt; ++i) {
    const int c = threadIdx.x + i * blockDim.x;
    if (c < h8) {
      const float4 w0 = w_lo[i], w1 = w_hi[i];
      const float ws[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
      float y[8];
#pragma unroll
      for (int j = 0; j < 8; ++j) y[j] = ws[j] * (v[i][j] * rinv);
      o[c] = pack8(y);
    }
  }
}

// Any h, any alignment: two passes over the row (the second re-reads what
// this same thread read in the first).
__global__ void rms_norm_scalar_kernel(const uint16_t* x, const float* w, int h, float eps, uint16_t* out) {
  FLINT_TRACE_KERNEL(trace::kRmsNorm);
  allow_next_grid();
  wait_for_previous_grid();
  __shared__ float scratch[32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * h;
  const __nv_bfloat16* xr = reinterpret_cast<const __nv_bfloat16*>(x) + base;
  __nv_bfloat16* o = reinterpret_cast<__nv_bfloat16*>(out) + base;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < h; c += blockDim.x) {
    const float v = __bfloat162float(xr[c]);
    ss += v * v;
  }
  ss = block_sum(ss, scratch);
  const float rinv = 1.0f / sqrtf(ss / static_cast<float>(h) + eps);
  for (int c = threadIdx.x; c < h; c += blockDim.x)
    o[c] = __float2bfloat16_rn(w[c] * (__bfloat162float(xr[c]) * rinv));
}

template <bool kVec>
__global__ void swiglu_kernel(const uint16_t* gate_up, int64_t n, int64_t f, uint16_t* out) {
  FLINT_TRACE_KERNEL(trace::kSwiglu);
  wait_for_previous_grid();
  allow_next_grid();
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const uint64_t first = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x;
  if constexpr (kVec) {
    const uint64_t f8 = static_cast<uint64_t>(f) / 8, total = static_cast<uint64_t>(n) * f8;
    for (uint64_t i = first; i < total; i += stride) {
      const uint64_t row = i / f8, c = i % f8;
      const uint4* g4 = reinterpret_cast<const uint4*>(gate_up + row * 2 * static_cast<uint64_t>(f));
      float g[8], u[8];
      unpack8(g4[c], g);
      unpack8(g4[f8 + c], u);
#pragma unroll
      for (int j = 0; j < 8; ++j) g[j] = silu_mul(g[j], u[j]);
      reinterpret_cast<uint4*>(out)[i] = pack8(g);
    }
  } else {
    const __nv_bfloat16* gu = reinterpret_cast<const __nv_bfloat16*>(gate_up);
    const uint64_t total = static_cast<uint64_t>(n) * f;
    for (uint64_t i = first; i < total; i += stride) {
      const uint64_t row = i / f, c = i % f;
      const __nv_bfloat16* r = gu + row * 2 * static_cast<uint64_t>(f);
      reinterpret_cast<__nv_bfloat16*>(out)[i] =
          __float2bfloat16_rn(silu_mul(__bfloat162float(r[c]), __bfloat162float(r[f + c])));
    }
  }
}

template <typename T>
__global__ void add_bias_kernel(T* out, const float* bias, int64_t n, int64_t cols) {
  FLINT_TRACE_KERNEL(trace::kBias);
  wait_for_previous_grid();
  allow_next_grid();
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  const uint64_t total = static_cast<uint64_t>(n) * cols;
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < total; i += stride) {
    if constexpr (sizeof(T) == 4)
      out[i] += bias[i % cols];
    else
      out[i] = __float2bfloat16_rn(__bfloat162float(out[i]) + bias[i % cols]);
  }
}

}  // namespace

void launch_convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, uint64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch_kernel(convert_kernel, stride_blocks(n, 256), 256, 0, stream, src, src_dtype, dst, dst_dtype, n);
}

void launch_gather_rows(const void* table, const int32_t* ids, int64_t rows, int64_t h, void* out,
                        cudaStream_t stream) {
  launch_embedding(table, ids, nullptr, nullptr, 0, rows, h, out, stream);
}

void launch_embedding(const void* table, const int32_t* ids, const int32_t* from_sample, const RowSample* samples,
                      int32_t vocab, int64_t rows, int64_t h, void* out, cudaStream_t stream) {
  if (rows == 0 || h == 0) return;
  const auto* t = static_cast<const uint16_t*>(table);
  auto* o = static_cast<uint16_t*>(out);
  const bool vec = h % 8 == 0 && aligned16(table) && aligned16(out);
  const int threads = static_cast<int>(std::min<int64_t>(256, ((vec ? h / 8 : h) + 31) / 32 * 32));
  launch_kernel(vec ? gather_rows_kernel<true> : gather_rows_kernel<false>, static_cast<unsigned>(rows), threads, 0,
                stream, t, ids, from_sample, samples, vocab, h, o);
}

void launch_rms_norm(const void* x, const float* w, int64_t n, int64_t h, float eps, void* out,
                     cudaStream_t stream) {
  if (n == 0 || h == 0) return;
  const auto* xr = static_cast<const uint16_t*>(x);
  auto* o = static_cast<uint16_t*>(out);
  const unsigned rows = static_cast<unsigned>(n);
  const int hi = static_cast<int>(h), h8 = hi / 8;
  const bool vec = hi % 8 == 0 && aligned16(x) && aligned16(out) && aligned16(w);
  if (vec && h8 <= 256) {
    launch_kernel(rms_norm_vec_kernel<1>, rows, (h8 + 31) / 32 * 32, 0, stream, xr, w, hi, eps, o);
  } else if (vec && h8 <= 512) {
    launch_kernel(rms_norm_vec_kernel<2>, rows, 256, 0, stream, xr, w, hi, eps, o);
  } else if (vec && h8 <= 1024) {
    launch_kernel(rms_norm_vec_kernel<4>, rows, 256, 0, stream, xr, w, hi, eps, o);
  } else if (vec && h8 <= 2048) {
    launch_kernel(rms_norm_vec_kernel<8>, rows, 256, 0, stream, xr, w, hi, eps, o);
  } else {  // beyond 16384 (no Llama is that wide) or unaligned: two passes
    launch_kernel(rms_norm_scalar_kernel, rows, 256, 0, stream, xr, w, hi, eps, o);
  }
}

void launch_swiglu(const void* gate_up, int64_t n, int64_t f, void* out, cudaStream_t stream) {
  if (n == 0 || f == 0) return;
  const auto* g = static_cast<const uint16_t*>(gate_up);
  auto* o = static_cast<uint16_t*>(out);
  const uint64_t total = static_cast<uint64_t>(n) * static_cast<uint64_t>(f);
  if (f % 8 == 0 && aligned16(gate_up) && aligned16(out))
    launch_kernel(swiglu_kernel<true>, stride_blocks(total / 8, 256), 256, 0, stream, g, n, f, o);
  else
    launch_kernel(swiglu_kernel<false>, stride_blocks(total, 256), 256, 0, stream, g, n, f, o);
}

void launch_add_bias(void* out, DType out_dtype, const float* bias, int64_t n, int64_t out_features,
                     cudaStream_t stream) {
  if (n == 0 || out_features == 0) return;
  const uint64_t total = static_cast<uint64_t>(n) * static_cast<uint64_t>(out_features);
  if (out_dtype == DType::f32)
    launch_kernel(add_bias_kernel<float>, stride_blocks(total, 256), 256, 0, stream, static_cast<float*>(out), bias,
                  n, out_features);
  else
    launch_kernel(add_bias_kernel<__nv_bfloat16>, stride_blocks(total, 256), 256, 0, stream,
                  static_cast<__nv_bfloat16*>(out), bias, n, out_features);
}

}  // namespace flint::cuda
