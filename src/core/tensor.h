// core/tensor.h — a typed, shaped window onto bytes that live somewhere.
//
// Contract:
// - A Tensor is a view: shape, strides (in elements), dtype, device and a data
//   pointer, plus a shared reference to the Storage that keeps the bytes alive.
//   Copying a Tensor never copies data. Views of an mmap'd checkpoint keep the
//   mapping alive (the Storage owns it); weights are never copied on the CPU.
// - Packed 4-bit tensors are contiguous only, with at least one axis and an even
//   innermost size; views of them cut whole bytes (first axis, even bounds).
// - Nothing here knows how device memory is made: backends create Storage for
//   their device and hand it to Tensor::wrap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace flint {

enum class Device : uint8_t { cpu, cuda };
std::string_view device_name(Device d);

using Shape = std::vector<int64_t>;
std::string shape_to_string(const Shape& shape);  // "[4096, 14336]"
// Element count; throws flint::Error on negative sizes or int64 overflow.
int64_t shape_numel(const Shape& shape);

// Bytes owned (or borrowed, for mmap) on one device. Subclassed by whoever
// owns memory: host heap, a file mapping, a CUDA allocation.
class Storage {
 public:
  virtual ~Storage() = default;
  virtual std::byte* data() = 0;
  virtual size_t size() const = 0;
  virtual Device device() const = 0;
};

// 64-byte aligned host heap memory, zero-initialised.
std::shared_ptr<Storage> make_host_storage(size_t bytes);

class Tensor {
 public:
  Tensor() = default;

  // A new contiguous host tensor (zeroed).
  static Tensor empty(DType dtype, Shape shape);
  // A contiguous view of `storage` starting at byte `offset`.
  static Tensor wrap(std::shared_ptr<Storage> storage, size_t offset, DType dtype, Shape shape);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  const std::vector<int64_t>& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t axis) const;  // negative axis counts from the end
  int64_t numel() const { return numel_; }
  uint64_t nbytes() const { return dtype_bytes(dtype_, static_cast<uint64_t>(numel_)); }
  bool is_contiguous() const;

  std::byte* raw() const { return data_; }
  template <typename T>
  T* data() const {
    return reinterpret_cast<T*>(data_);
  }
  template <typename T>
  std::span<T> span() const {
    return {data<T>(), static_cast<size_t>(numel_)};
  }

  // Views (no copy).
  Tensor reshape(Shape shape) const;            // contiguous only
  Tensor slice(int64_t axis, int64_t begin, int64_t end) const;  // [begin, end) along axis
  Tensor select(int64_t axis, int64_t index) const;              // drops the axis

  // A contiguous host copy (any dtype, any strides); for tests and dumps.
  Tensor contiguous_copy() const;
  // Element i (row-major logical order) as float; slow, for tests and dumps.
  float item_f32(int64_t flat_index) const;

  const std::shared_ptr<Storage>& storage() const { return storage_; }

 private:
  std::shared_ptr<Storage> storage_;
  std::byte* data_ = nullptr;
  Shape shape_;
  std::vector<int64_t> strides_;
  int64_t numel_ = 0;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
};

}  // namespace flint
