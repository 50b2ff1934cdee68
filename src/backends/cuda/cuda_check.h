// backends/cuda/cuda_check.h — every CUDA call is checked.
//
// Usable from .cu files: it includes no fmt (nvcc cannot compile fmt's
// consteval format checks); the throwing function lives in cuda_check.cpp.
#pragma once

#include <cuda_runtime.h>

namespace flint::cuda {
// Throws flint::Error "CUDA error in <call>: <reason> (<file>:<line>)".
[[noreturn]] void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line);
// Throws flint::Error with this message (a launcher given arguments it does not take).
[[noreturn]] void throw_error(const char* message);
}  // namespace flint::cuda

#define FLINT_CUDA_CHECK(call)                                                          \
  do {                                                                                  \
    const cudaError_t flint_err_ = (call);                                              \
    if (flint_err_ != cudaSuccess) ::flint::cuda::throw_cuda_error(flint_err_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here.
#define FLINT_CUDA_CHECK_LAUNCH() FLINT_CUDA_CHECK(cudaGetLastError())
