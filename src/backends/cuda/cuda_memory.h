// backends/cuda/cuda_memory.h — device memory as a core Storage.
#pragma once

#include "core/tensor.h"

namespace flint {

// cudaMalloc'd bytes on the current device, freed with the last reference.
class CudaStorage final : public Storage {
 public:
  explicit CudaStorage(size_t bytes);
  ~CudaStorage() override;
  CudaStorage(const CudaStorage&) = delete;
  CudaStorage& operator=(const CudaStorage&) = delete;
  std::byte* data() override { return static_cast<std::byte*>(data_); }
  size_t size() const override { return size_; }
  Device device() const override { return Device::cuda; }

 private:
  void* data_ = nullptr;
  size_t size_;
};

}  // namespace flint
