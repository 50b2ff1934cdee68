// backends/cuda/cuda_kernels.h — launchers of the CUDA kernels, callable from
// host C++. Each checks its launch and throws flint::Error on failure.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace flint::cuda {

// out[i] = dummy_weight_value(key, i, is_norm) in f32, bf16 or f16.
void launch_fill_dummy(void* out, DType dtype, uint64_t n, uint64_t key, bool is_norm, cudaStream_t stream);
// dst = src with 16-byte accesses (bytes a multiple of 16); measures bandwidth.
void launch_copy16(const void* src, void* dst, size_t bytes, int blocks, cudaStream_t stream);

}  // namespace flint::cuda
