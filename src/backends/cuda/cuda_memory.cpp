#include "backends/cuda/cuda_memory.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "backends/cuda/cuda_check.h"
#include "core/error.h"

namespace flint {

CudaStorage::CudaStorage(size_t bytes) : size_(bytes) {
  if (bytes > 0) FLINT_CUDA_CHECK(cudaMalloc(&data_, bytes));
}

CudaStorage::~CudaStorage() {
  if (data_) cudaFree(data_);  // a failure here has no one to report to
}

namespace cuda {
namespace {

class PooledStorage final : public Storage {
 public:
  PooledStorage(std::shared_ptr<StreamContext> context, size_t bytes) : context_(std::move(context)), size_(bytes) {
    if (bytes > 0) FLINT_CUDA_CHECK(cudaMallocFromPoolAsync(&data_, bytes, context_->pool(), context_->stream()));
  }
  ~PooledStorage() override {
    if (data_) cudaFreeAsync(data_, context_->stream());  // stream-ordered: queued readers finish first
  }
  PooledStorage(const PooledStorage&) = delete;
  PooledStorage& operator=(const PooledStorage&) = delete;
  std::byte* data() override { return static_cast<std::byte*>(data_); }
  size_t size() const override { return size_; }
  Device device() const override { return Device::cuda; }

 private:
  std::shared_ptr<StreamContext> context_;
  void* data_ = nullptr;
  size_t size_;
};

}  // namespace

StreamContext::StreamContext(int device) : device_(device) {
  FLINT_CUDA_CHECK(cudaSetDevice(device));
  // A blocking stream: work that others queue on the legacy default stream
  // (cuda_dummy_tensor, tests) is ordered with ours.
  FLINT_CUDA_CHECK(cudaStreamCreate(&stream_));
  cudaMemPoolProps props{};
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  FLINT_CUDA_CHECK(cudaMemPoolCreate(&pool_, &props));
  // Keep what the pool grew to: a step's tensors are re-made every step.
  uint64_t keep = std::numeric_limits<uint64_t>::max();
  FLINT_CUDA_CHECK(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep));
}

StreamContext::~StreamContext() {
  cudaStreamSynchronize(stream_);
  cudaMemPoolDestroy(pool_);
  cudaStreamDestroy(stream_);
}

Tensor pooled_tensor(const std::shared_ptr<StreamContext>& context, DType dtype, Shape shape) {
  const int64_t n = shape_numel(shape);
  auto storage = std::make_shared<PooledStorage>(context, dtype_bytes(dtype, static_cast<uint64_t>(n)));
  return Tensor::wrap(std::move(storage), 0, dtype, std::move(shape));
}

PinnedBuffer::~PinnedBuffer() {
  if (data_) cudaFreeHost(data_);
}

void PinnedBuffer::reserve(size_t bytes) {
  if (bytes <= capacity_) return;
  if (data_) FLINT_CUDA_CHECK(cudaFreeHost(data_));
  data_ = nullptr;
  capacity_ = 0;
  const size_t capacity = std::max<size_t>(bytes * 2, 4096);
  void* p = nullptr;
  FLINT_CUDA_CHECK(cudaMallocHost(&p, capacity));
  data_ = static_cast<std::byte*>(p);
  capacity_ = capacity;
}

StagedUpload::StagedUpload(std::shared_ptr<StreamContext> context) : context_(std::move(context)) {
  for (Slot& s : slots_) FLINT_CUDA_CHECK(cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
}

StagedUpload::~StagedUpload() {
  for (Slot& s : slots_) {
    if (s.pending) cudaEventSynchronize(s.copied);
    if (s.host) cudaFreeHost(s.host);
    cudaEventDestroy(s.copied);
  }
}

std::byte* StagedUpload::upload(const void* src, size_t bytes, std::byte* dst) {
  if (bytes == 0) return dst ? dst : device_.defined() ? device_.raw() : nullptr;
  Slot& slot = slots_[next_];
  next_ = (next_ + 1) % 2;
  // Only waits when two uploads ago has not reached the GPU yet.
  if (slot.pending) FLINT_CUDA_CHECK(cudaEventSynchronize(slot.copied));
  slot.pending = false;
  if (slot.capacity < bytes) {
    if (slot.host) FLINT_CUDA_CHECK(cudaFreeHost(slot.host));
    slot.host = nullptr;
    slot.capacity = 0;
    const size_t capacity = std::max<size_t>(bytes * 2, 4096);
    FLINT_CUDA_CHECK(cudaMallocHost(&slot.host, capacity));
    slot.capacity = capacity;
  }
  if (dst == nullptr && (!device_.defined() || device_.nbytes() < bytes))
    device_ = pooled_tensor(context_, DType::u8, {static_cast<int64_t>(std::max<size_t>(bytes * 2, 4096))});
  std::byte* target = dst ? dst : device_.raw();
  std::memcpy(slot.host, src, bytes);
  FLINT_CUDA_CHECK(cudaMemcpyAsync(target, slot.host, bytes, cudaMemcpyHostToDevice, context_->stream()));
  FLINT_CUDA_CHECK(cudaEventRecord(slot.copied, context_->stream()));
  slot.pending = true;
  return target;
}

}  // namespace cuda
}  // namespace flint
