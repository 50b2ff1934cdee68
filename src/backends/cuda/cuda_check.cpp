#include "backends/cuda/cuda_check.h"

#include "core/error.h"

namespace flint::cuda {

void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line) {
  fail("CUDA error in {}: {} ({}:{})", call, cudaGetErrorString(error), file, line);
}

void throw_error(const char* message) { fail("{}", message); }

}  // namespace flint::cuda
