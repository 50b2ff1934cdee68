// backends/cuda/cuda_check.h — every CUDA call is checked.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define FLINT_CUDA_CHECK(call)                                                                            \
  do {                                                                                                    \
    cudaError_t flint_err_ = (call);                                                                      \
    if (flint_err_ != cudaSuccess)                                                                        \
      ::flint::fail("CUDA error in {}: {} ({}:{})", #call, cudaGetErrorString(flint_err_), __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here.
#define FLINT_CUDA_CHECK_LAUNCH() FLINT_CUDA_CHECK(cudaGetLastError())
