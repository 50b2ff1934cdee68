// backends/cuda/cuda_backend.h — the CUDA side of Flint, seen from outside.
//
// Contract: no CUDA type appears here; callers above backends/ get plain C++.
// Every CUDA call inside is checked and turned into a flint::Error that names
// the call. Functions that need a GPU throw a clear error when none is visible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backends.h"
#include "ops/backend.h"

namespace flint {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int compute_capability = 0;  // 90 for sm_90
  int multiprocessors = 0;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};
// Every visible GPU; empty (never an error) when there is no driver or device.
std::vector<CudaDeviceInfo> cuda_devices();
std::string cuda_unavailable_reason();  // why cuda_devices() is empty

std::unique_ptr<Backend> make_cuda_backend();
DeviceCeilings measure_cuda_ceilings();

// A dummy weight made on the GPU with core/dummy_values.h (no host copy).
Tensor cuda_dummy_tensor(DType dtype, const Shape& shape, uint64_t tensor_key, bool is_norm);
// A contiguous host copy of a contiguous device tensor.
Tensor cuda_to_host(const Tensor& t);

}  // namespace flint
