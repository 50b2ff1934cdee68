// Kernels for device memory: dummy weights and the copy that measures bandwidth.
// No fmt/core error headers here: nvcc cannot compile fmt's consteval checks,
// so .cu files report through cuda_check.h's plain functions.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_kernels.h"
#include "core/dummy_values.h"

namespace flint::cuda {
namespace {

__global__ void fill_dummy_kernel(void* out, DType dtype, uint64_t n, uint64_t key, bool is_norm) {
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * blockDim.x;
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += stride) {
    const float v = dummy_weight_value(key, i, is_norm);
    switch (dtype) {
      case DType::f32: static_cast<float*>(out)[i] = v; break;
      case DType::bf16: static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(v); break;
      case DType::f16: static_cast<__half*>(out)[i] = __float2half_rn(v); break;
      default: break;
    }
  }
}

__global__ void copy16_kernel(const float4* src, float4* dst, size_t n) {
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n; i += stride) dst[i] = src[i];
}

}  // namespace

void launch_fill_dummy(void* out, DType dtype, uint64_t n, uint64_t key, bool is_norm, cudaStream_t stream) {
  if (n == 0) return;
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<uint64_t>((n + threads - 1) / threads, 65536));
  fill_dummy_kernel<<<blocks, threads, 0, stream>>>(out, dtype, n, key, is_norm);
  FLINT_CUDA_CHECK_LAUNCH();
}

void launch_copy16(const void* src, void* dst, size_t bytes, int blocks, cudaStream_t stream) {
  copy16_kernel<<<blocks, 512, 0, stream>>>(static_cast<const float4*>(src), static_cast<float4*>(dst),
                                           bytes / sizeof(float4));
  FLINT_CUDA_CHECK_LAUNCH();
}

}  // namespace flint::cuda
