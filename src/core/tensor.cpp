#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "core/error.h"

namespace flint {

std::string_view device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

std::string shape_to_string(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    FLINT_CHECK(d >= 0, "negative dimension in shape {}", shape_to_string(shape));
    FLINT_CHECK(!__builtin_mul_overflow(n, d, &n), "shape {} has too many elements", shape_to_string(shape));
  }
  return n;
}

namespace {

class HostStorage final : public Storage {
 public:
  explicit HostStorage(size_t bytes) : size_(bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    data_ = static_cast<std::byte*>(std::aligned_alloc(64, rounded == 0 ? 64 : rounded));
    if (!data_) throw std::bad_alloc();
    std::memset(data_, 0, rounded == 0 ? 64 : rounded);
  }
  ~HostStorage() override { std::free(data_); }
  std::byte* data() override { return data_; }
  size_t size() const override { return size_; }
  Device device() const override { return Device::cpu; }

 private:
  std::byte* data_;
  size_t size_;
};

std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

}  // namespace

std::shared_ptr<Storage> make_host_storage(size_t bytes) { return std::make_shared<HostStorage>(bytes); }

Tensor Tensor::empty(DType dtype, Shape shape) {
  const int64_t n = shape_numel(shape);
  return wrap(make_host_storage(dtype_bytes(dtype, static_cast<uint64_t>(n))), 0, dtype, std::move(shape));
}

Tensor Tensor::wrap(std::shared_ptr<Storage> storage, size_t offset, DType dtype, Shape shape) {
  FLINT_ASSERT(storage != nullptr);
  Tensor t;
  t.numel_ = shape_numel(shape);
  if (dtype_is_packed(dtype))
    FLINT_CHECK(!shape.empty() && shape.back() % 2 == 0, "packed {} tensor needs an even innermost size, got {}",
                dtype_name(dtype), shape_to_string(shape));
  const uint64_t bytes = dtype_bytes(dtype, static_cast<uint64_t>(t.numel_));
  FLINT_CHECK(offset <= storage->size() && bytes <= storage->size() - offset,
              "tensor of {} x {} ({} bytes) at offset {} does not fit in storage of {} bytes", dtype_name(dtype),
              shape_to_string(shape), bytes, offset, storage->size());
  t.data_ = storage->data() + offset;
  t.device_ = storage->device();
  t.storage_ = std::move(storage);
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::size(int64_t axis) const {
  if (axis < 0) axis += dim();
  FLINT_CHECK(axis >= 0 && axis < dim(), "axis {} out of range for shape {}", axis, shape_to_string(shape_));
  return shape_[static_cast<size_t>(axis)];
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

Tensor Tensor::reshape(Shape shape) const {
  FLINT_CHECK(defined(), "reshape of an undefined tensor");
  FLINT_CHECK(is_contiguous(), "reshape of a non-contiguous tensor {}", shape_to_string(shape_));
  FLINT_CHECK(shape_numel(shape) == numel_, "cannot reshape {} to {}", shape_to_string(shape_), shape_to_string(shape));
  if (dtype_is_packed(dtype_))
    FLINT_CHECK(!shape.empty() && shape.back() % 2 == 0, "packed {} tensor needs an even innermost size, got {}",
                dtype_name(dtype_), shape_to_string(shape));
  Tensor t = *this;
  t.strides_ = contiguous_strides(shape);
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::slice(int64_t axis, int64_t begin, int64_t end) const {
  if (axis < 0) axis += dim();
  FLINT_CHECK(axis >= 0 && axis < dim(), "slice axis {} out of range for shape {}", axis, shape_to_string(shape_));
  const auto a = static_cast<size_t>(axis);
  FLINT_CHECK(0 <= begin && begin <= end && end <= shape_[a], "slice [{}, {}) out of range for axis {} of {}", begin,
              end, axis, shape_to_string(shape_));
  if (dtype_is_packed(dtype_)) {
    // Two elements share a byte: a view must cut whole bytes.
    FLINT_CHECK(a == 0 || end - begin == shape_[a], "packed {} tensors can only be sliced along the first axis",
                dtype_name(dtype_));
    FLINT_CHECK((begin * strides_[a]) % 2 == 0 && (end * strides_[a]) % 2 == 0,
                "a view of packed {} tensor {} must start and end at even elements, got [{}, {}) on axis {}",
                dtype_name(dtype_), shape_to_string(shape_), begin, end, axis);
  }
  Tensor t = *this;
  t.data_ += dtype_bytes(dtype_, static_cast<uint64_t>(begin * strides_[a]));
  t.shape_[a] = end - begin;
  t.numel_ = shape_numel(t.shape_);
  return t;
}

Tensor Tensor::select(int64_t axis, int64_t index) const {
  const int64_t given_axis = axis;
  if (axis < 0) axis += dim();
  FLINT_CHECK(axis >= 0 && axis < dim(), "select axis {} out of range for shape {}", given_axis,
              shape_to_string(shape_));
  FLINT_CHECK(index >= 0 && index < shape_[static_cast<size_t>(axis)], "select index {} out of range for axis {} of {}",
              index, given_axis, shape_to_string(shape_));
  Tensor t = slice(axis, index, index + 1);
  t.shape_.erase(t.shape_.begin() + axis);
  t.strides_.erase(t.strides_.begin() + axis);
  return t;
}

float Tensor::item_f32(int64_t flat_index) const {
  FLINT_CHECK(device_ == Device::cpu, "item_f32 needs a CPU tensor");
  FLINT_CHECK(0 <= flat_index && flat_index < numel_, "index {} out of range for {}", flat_index,
              shape_to_string(shape_));
  int64_t offset = 0;
  int64_t rest = flat_index;
  for (size_t i = shape_.size(); i-- > 0;) {
    offset += (rest % shape_[i]) * strides_[i];
    rest /= shape_[i];
  }
  return load_as_f32(dtype_, data_, static_cast<uint64_t>(offset));
}

Tensor Tensor::contiguous_copy() const {
  FLINT_CHECK(defined(), "contiguous_copy of an undefined tensor");
  FLINT_CHECK(device_ == Device::cpu, "contiguous_copy needs a CPU tensor");
  Tensor out = empty(dtype_, shape_);
  if (is_contiguous()) {
    std::memcpy(out.raw(), data_, nbytes());
    return out;
  }
  const int bytes = dtype_bits(dtype_) / 8;  // packed tensors are always contiguous
  for (int64_t i = 0; i < numel_; ++i) {
    int64_t offset = 0, rest = i;
    for (size_t d = shape_.size(); d-- > 0;) {
      offset += (rest % shape_[d]) * strides_[d];
      rest /= shape_[d];
    }
    std::memcpy(out.raw() + i * bytes, data_ + offset * bytes, static_cast<size_t>(bytes));
  }
  return out;
}

}  // namespace flint
