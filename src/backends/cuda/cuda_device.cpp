// Device queries, dummy weights, KV pool sizing and the device's ceilings (host side).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_memory.h"
#include "core/error.h"

namespace flint {

std::vector<CudaDeviceInfo> cuda_devices() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return {};
  }
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    FLINT_CUDA_CHECK(cudaGetDeviceProperties(&p, i));
    CudaDeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.compute_capability = p.major * 10 + p.minor;
    d.multiprocessors = p.multiProcessorCount;
    FLINT_CUDA_CHECK(cudaSetDevice(i));
    size_t free_b = 0, total_b = 0;
    FLINT_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    d.free_bytes = free_b;
    d.total_bytes = total_b;
    out.push_back(d);
  }
  if (count > 0) FLINT_CUDA_CHECK(cudaSetDevice(0));
  return out;
}

std::string cuda_unavailable_reason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return cudaGetErrorString(err);
  }
  return count == 0 ? "no CUDA device is visible" : "";
}


Tensor cuda_dummy_tensor(DType dtype, const Shape& shape, uint64_t tensor_key, bool is_norm) {
  FLINT_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16,
              "dummy weights on CUDA must be f32, bf16 or f16, not {}", dtype_name(dtype));
  const int64_t n = shape_numel(shape);
  auto storage = std::make_shared<CudaStorage>(dtype_bytes(dtype, static_cast<uint64_t>(n)));
  Tensor t = Tensor::wrap(storage, 0, dtype, shape);
  cuda::launch_fill_dummy(t.raw(), dtype, static_cast<uint64_t>(n), tensor_key, is_norm, nullptr);
  return t;
}

Tensor cuda_to_host(const Tensor& t) {
  FLINT_CHECK(t.device() == Device::cuda && t.is_contiguous(), "cuda_to_host needs a contiguous CUDA tensor");
  Tensor host = Tensor::empty(t.dtype(), t.shape());
  FLINT_CUDA_CHECK(cudaMemcpy(host.raw(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost));
  return host;
}

DeviceCeilings measure_cuda_ceilings() {
  FLINT_CHECK(!cuda_devices().empty(), ErrorContext{.field = "--device"}, "no GPU: {}", cuda_unavailable_reason());
  DeviceCeilings c;
  cudaEvent_t start, stop;
  FLINT_CUDA_CHECK(cudaEventCreate(&start));
  FLINT_CUDA_CHECK(cudaEventCreate(&stop));
  auto time_ms = [&](auto&& work, int reps) {
    work();  // warm-up
    FLINT_CUDA_CHECK(cudaEventRecord(start));
    for (int i = 0; i < reps; ++i) work();
    FLINT_CUDA_CHECK(cudaEventRecord(stop));
    FLINT_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    FLINT_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return static_cast<double>(ms) / reps;
  };

  // Copy: 2 GiB each way with 16-byte loads, far beyond the L2.
  const size_t bytes = size_t{2} << 30;
  CudaStorage src(bytes), dst(bytes);
  FLINT_CUDA_CHECK(cudaMemset(src.data(), 1, bytes));
  const double copy_ms = time_ms([&] { cuda::launch_copy16(src.data(), dst.data(), bytes, 132 * 16, nullptr); }, 10);
  c.copy_bytes_per_s = 2.0 * static_cast<double>(bytes) / (copy_ms * 1e-3);
  c.copy_method = "device copy kernel, 2 GiB, 16-byte accesses";

  // GEMM: bf16 8192^3 through cuBLAS, on non-zero data.
  const int n = 8192;
  const size_t elems = static_cast<size_t>(n) * n;
  Tensor a = cuda_dummy_tensor(DType::bf16, {n, n}, 1, false);
  Tensor b = cuda_dummy_tensor(DType::bf16, {n, n}, 2, false);
  CudaStorage out(elems * 2);
  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) fail("cublasCreate failed");
  const float alpha = 1.0f, beta = 0.0f;
  const double gemm_ms = time_ms(
      [&] {
        if (cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a.raw(), CUDA_R_16BF, n, b.raw(),
                         CUDA_R_16BF, n, &beta, out.data(), CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                         CUBLAS_GEMM_DEFAULT) != CUBLAS_STATUS_SUCCESS)
          fail("cublasGemmEx failed");
      },
      10);
  cublasDestroy(handle);
  c.gemm_flops_per_s = 2.0 * n * static_cast<double>(n) * n / (gemm_ms * 1e-3);
  c.gemm_method = "cuBLAS bf16 GEMM 8192^3, f32 accumulate";
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return c;
}

int32_t cuda_kv_blocks_for(double fraction, uint64_t bytes_per_block, uint64_t reserve_bytes) {
  FLINT_CHECK(fraction > 0.0 && fraction <= 1.0, ErrorContext{.field = "--gpu-memory-fraction"},
              "must be in (0, 1], got {}", fraction);
  FLINT_CHECK(bytes_per_block > 0, "KV blocks must take some memory");
  size_t free_b = 0, total_b = 0;
  FLINT_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const double allowed = fraction * static_cast<double>(total_b);
  // allowed <= total, so the budget never exceeds what is free.
  const double budget = allowed - static_cast<double>(total_b - free_b) - static_cast<double>(reserve_bytes);
  const double blocks = budget / static_cast<double>(bytes_per_block);
  FLINT_CHECK(blocks >= 1.0, ErrorContext{.field = "--gpu-memory-fraction"},
              "no room for the KV cache: {} of {:.2f} GB is {:.2f} GB, but {:.2f} GB are in use and {:.2f} GB "
              "reserved for activations ({:.2f} GB free); a block takes {} bytes",
              fraction, static_cast<double>(total_b) / 1e9, allowed / 1e9,
              static_cast<double>(total_b - free_b) / 1e9, static_cast<double>(reserve_bytes) / 1e9,
              static_cast<double>(free_b) / 1e9, bytes_per_block);
  return static_cast<int32_t>(std::min(blocks, 2147483647.0));
}

}  // namespace flint
