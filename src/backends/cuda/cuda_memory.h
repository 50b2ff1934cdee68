// backends/cuda/cuda_memory.h — device memory as core Storage, and the
// host-to-device path of a step's small arrays.
//
// Contract:
// - CudaStorage: cudaMalloc'd bytes, freed (cudaFree, which synchronises) with
//   the last reference. For what lives long: weights, the KV pool.
// - StreamContext: the backend's stream and a stream-ordered memory pool that
//   keeps what it has grown to. Step tensors come from it (pooled_tensor):
//   allocated and freed in stream order, so a step makes no cudaMalloc/cudaFree
//   and never synchronises the device. Every tensor holds the context, so the
//   stream outlives the last tensor whatever order things are destroyed in.
// - PinnedBuffer: page-locked host bytes, the target of device-to-host copies.
// - StagedUpload: copies small host arrays into one device buffer through
//   pinned staging (cudaMemcpyAsync, truly asynchronous). The host array may be
//   reused at once; the device copy serves work queued after the upload and
//   before the next one (later uploads are ordered after earlier readers).
//   Internal to backends/cuda: the header names CUDA types.
#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "core/tensor.h"

namespace flint {

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

namespace cuda {

class StreamContext {
 public:
  explicit StreamContext(int device);
  ~StreamContext();
  StreamContext(const StreamContext&) = delete;
  StreamContext& operator=(const StreamContext&) = delete;
  cudaStream_t stream() const { return stream_; }
  cudaMemPool_t pool() const { return pool_; }
  int device() const { return device_; }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cudaMemPool_t pool_ = nullptr;
};

// A contiguous device tensor from the context's pool (contents undefined).
Tensor pooled_tensor(const std::shared_ptr<StreamContext>& context, DType dtype, Shape shape);

// Page-locked host memory for device-to-host copies (a pageable target makes
// cudaMemcpyAsync a slow, staged, synchronous copy). Grows; keeps its bytes
// only until the next reserve() that grows it.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void reserve(size_t bytes);
  std::byte* data() const { return data_; }

 private:
  std::byte* data_ = nullptr;
  size_t capacity_ = 0;
};

class StagedUpload {
 public:
  explicit StagedUpload(std::shared_ptr<StreamContext> context);
  ~StagedUpload();
  StagedUpload(const StagedUpload&) = delete;
  StagedUpload& operator=(const StagedUpload&) = delete;
  // Queues the copy of `bytes` from `src`; returns the device address of the
  // copy: `dst` when given (a fixed buffer of at least `bytes`, e.g. the one a
  // CUDA graph reads), else this upload's own buffer.
  std::byte* upload(const void* src, size_t bytes, std::byte* dst = nullptr);

 private:
  struct Slot {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t copied = nullptr;  // recorded after the copy out of `host`
    bool pending = false;
  };
  std::shared_ptr<StreamContext> context_;
  Slot slots_[2];  // two, so that consecutive steps do not wait on each other
  int next_ = 0;
  Tensor device_;  // grows; the old buffer is freed in stream order
};

}  // namespace cuda
}  // namespace flint
