#include "core/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"

namespace flint {
namespace {

// Runs `body`, expecting a flint::Error whose what() contains `needle`.
template <typename Body>
void expect_error(Body&& body, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
        << "error '" << e.what() << "' lacks '" << needle << "'";
  }
}

// A [rows, cols] f32 tensor holding 0, 1, 2, ... in row-major order.
Tensor iota(DType dtype, Shape shape) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  for (int64_t i = 0; i < t.numel(); ++i) store_from_f32(dtype, t.raw(), static_cast<uint64_t>(i), static_cast<float>(i));
  return t;
}

std::vector<float> items(const Tensor& t) {
  std::vector<float> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(t.item_f32(i));
  return out;
}

TEST(Shape, NumelAndPrinting) {
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({4096, 14336}), int64_t{4096} * 14336);
  EXPECT_EQ(shape_numel({3, 0, 5}), 0);
  EXPECT_EQ(shape_to_string({}), "[]");
  EXPECT_EQ(shape_to_string({4096, 14336}), "[4096, 14336]");
  EXPECT_EQ(device_name(Device::cpu), "cpu");
  EXPECT_EQ(device_name(Device::cuda), "cuda");
}

TEST(Shape, BadShapesThrow) {
  const struct {
    Shape shape;
    const char* error;
  } cases[] = {
      {{2, -1}, "negative dimension in shape [2, -1]"},
      {{-3}, "negative dimension"},
      {{0, -1}, "negative dimension"},
      {{int64_t{1} << 32, int64_t{1} << 32}, "too many elements"},
      {{std::numeric_limits<int64_t>::max(), 2}, "too many elements"},
      {{int64_t{1} << 62, 2}, "too many elements"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(shape_to_string(c.shape));
    expect_error([&] { shape_numel(c.shape); }, c.error);
    expect_error([&] { Tensor::empty(DType::u8, c.shape); }, c.error);
  }
}

TEST(TensorEmpty, IsZeroedContiguousAndAligned) {
  const Tensor t = Tensor::empty(DType::bf16, {2, 3});
  EXPECT_TRUE(t.defined());
  EXPECT_EQ(t.dtype(), DType::bf16);
  EXPECT_EQ(t.device(), Device::cpu);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.strides(), (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(t.dim(), 2);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 12u);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % 64, 0u);
  EXPECT_GE(t.storage()->size(), 12u);
  for (uint16_t v : t.span<uint16_t>()) EXPECT_EQ(v, 0);
}

TEST(TensorEmpty, ScalarsAndZeroSizes) {
  const Tensor scalar = Tensor::empty(DType::f32, {});
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.nbytes(), 4u);
  scalar.data<float>()[0] = 2.5f;
  EXPECT_EQ(scalar.item_f32(0), 2.5f);

  const Tensor none = Tensor::empty(DType::i64, {4, 0});
  EXPECT_TRUE(none.defined());
  EXPECT_EQ(none.numel(), 0);
  EXPECT_EQ(none.nbytes(), 0u);
  EXPECT_EQ(none.contiguous_copy().shape(), (Shape{4, 0}));
}

TEST(TensorEmpty, HugeShapesThrowInsteadOfAllocatingTooLittle) {
  // 2^62 f32 elements is 2^64 bytes: the byte count must not wrap to 0.
  EXPECT_THROW(Tensor::empty(DType::f32, {int64_t{1} << 62}), Error);
  EXPECT_THROW(Tensor::empty(DType::i64, {int64_t{1} << 31, int64_t{1} << 30}), Error);
  EXPECT_THROW(Tensor::empty(DType::bf16, {int64_t{1} << 40, int64_t{1} << 23}), Error);
}

TEST(TensorSize, NegativeAxesCountFromTheEnd) {
  const Tensor t = Tensor::empty(DType::f32, {2, 3, 5});
  EXPECT_EQ(t.size(0), 2);
  EXPECT_EQ(t.size(-1), 5);
  EXPECT_EQ(t.size(-3), 2);
  expect_error([&] { t.size(3); }, "axis 3 out of range for shape [2, 3, 5]");
  expect_error([&] { t.size(-4); }, "out of range");
}

TEST(TensorWrap, ViewsStorageAtAnOffsetAndKeepsItAlive) {
  auto storage = make_host_storage(32);
  auto* bytes = storage->data();
  const float values[] = {1, 2, 3, 4, 5, 6};
  std::memcpy(bytes + 8, values, sizeof values);
  const Tensor t = Tensor::wrap(storage, 8, DType::f32, {2, 3});
  EXPECT_EQ(t.raw(), bytes + 8);
  EXPECT_EQ(items(t), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  const long uses = storage.use_count();
  storage.reset();
  EXPECT_EQ(t.storage().use_count(), uses - 1);
  t.data<float>()[5] = 60;  // still valid: the tensor holds the storage
  EXPECT_EQ(t.item_f32(5), 60.0f);
}

TEST(TensorWrap, RejectsViewsThatDoNotFit) {
  auto storage = make_host_storage(24);
  const struct {
    size_t offset;
    DType dtype;
    Shape shape;
    const char* error;
  } cases[] = {
      {0, DType::f32, {7}, "does not fit in storage of 24 bytes"},
      {4, DType::f32, {6}, "at offset 4 does not fit"},
      {25, DType::u8, {0}, "does not fit"},
      {std::numeric_limits<size_t>::max(), DType::u8, {1}, "does not fit"},
      {0, DType::u8, {-1}, "negative dimension"},
      {0, DType::i64, {int64_t{1} << 61}, "more than 2^64 bytes"},
      {0, DType::i4, {3}, "even innermost size"},
      {0, DType::u4, {4, 5}, "even innermost size, got [4, 5]"},
      {0, DType::i4, {}, "even innermost size"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(dtype_name(c.dtype)) + shape_to_string(c.shape));
    expect_error([&] { Tensor::wrap(storage, c.offset, c.dtype, c.shape); }, c.error);
  }
  EXPECT_THROW(Tensor::wrap(nullptr, 0, DType::f32, {1}), Error);
  // Exactly filling the storage is fine, and so is an empty view at its end.
  EXPECT_EQ(Tensor::wrap(storage, 0, DType::f32, {6}).nbytes(), 24u);
  EXPECT_EQ(Tensor::wrap(storage, 24, DType::f32, {0}).numel(), 0);
  EXPECT_EQ(Tensor::wrap(storage, 20, DType::i4, {2, 4}).nbytes(), 4u);
}

TEST(TensorReshape, SharesDataAndChecksElementCount) {
  const Tensor t = iota(DType::f32, {2, 6});
  const Tensor r = t.reshape({3, 2, 2});
  EXPECT_EQ(r.raw(), t.raw());
  EXPECT_EQ(r.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(r.strides(), (std::vector<int64_t>{4, 2, 1}));
  EXPECT_EQ(items(r), items(t));
  EXPECT_EQ(t.reshape({12}).dim(), 1);
  EXPECT_EQ(Tensor::empty(DType::f32, {1}).reshape({}).dim(), 0);
  expect_error([&] { t.reshape({5, 2}); }, "cannot reshape [2, 6] to [5, 2]");
  expect_error([&] { t.reshape({-2, -6}); }, "negative dimension");
  expect_error([&] { t.slice(1, 0, 3).reshape({6}); }, "non-contiguous");
  expect_error([&] { Tensor().reshape({0}); }, "undefined");
}

TEST(TensorSlice, FirstAxisStaysContiguous) {
  const Tensor t = iota(DType::f32, {4, 3});
  const Tensor s = t.slice(0, 1, 3);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_TRUE(s.is_contiguous());
  EXPECT_EQ(s.raw(), t.raw() + 3 * sizeof(float));
  EXPECT_EQ(items(s), (std::vector<float>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(s.storage(), t.storage());
}

TEST(TensorSlice, InnerAxesGiveStridedViews) {
  const Tensor t = iota(DType::f32, {4, 3});
  const Tensor s = t.slice(-1, 1, 3);
  EXPECT_EQ(s.shape(), (Shape{4, 2}));
  EXPECT_EQ(s.strides(), (std::vector<int64_t>{3, 1}));
  EXPECT_FALSE(s.is_contiguous());
  EXPECT_EQ(s.nbytes(), 32u);
  EXPECT_EQ(items(s), (std::vector<float>{1, 2, 4, 5, 7, 8, 10, 11}));
  // A slice of a slice composes offsets.
  const Tensor ss = s.slice(0, 2, 4).slice(1, 1, 2);
  EXPECT_EQ(ss.shape(), (Shape{2, 1}));
  EXPECT_EQ(items(ss), (std::vector<float>{8, 11}));
  // Empty slices are allowed, at either end.
  EXPECT_EQ(t.slice(0, 4, 4).numel(), 0);
  EXPECT_EQ(t.slice(1, 0, 0).shape(), (Shape{4, 0}));
}

TEST(TensorSlice, OutOfRangeThrows) {
  const Tensor t = iota(DType::f32, {4, 3});
  const struct {
    int64_t axis, begin, end;
    const char* error;
  } cases[] = {
      {0, -1, 2, "slice [-1, 2) out of range for axis 0 of [4, 3]"},
      {0, 0, 5, "out of range"},
      {1, 2, 1, "out of range"},
      {1, 4, 4, "out of range"},
      {2, 0, 1, "slice axis 2 out of range"},
      {-3, 0, 1, "out of range"},
      {0, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), "out of range"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.axis) + ": " + std::to_string(c.begin) + ".." + std::to_string(c.end));
    expect_error([&] { t.slice(c.axis, c.begin, c.end); }, c.error);
  }
  expect_error([&] { Tensor().slice(0, 0, 0); }, "out of range");
}

TEST(TensorSelect, DropsTheAxis) {
  const Tensor t = iota(DType::f32, {4, 3});
  const Tensor row = t.select(0, 2);
  EXPECT_EQ(row.shape(), (Shape{3}));
  EXPECT_TRUE(row.is_contiguous());
  EXPECT_EQ(items(row), (std::vector<float>{6, 7, 8}));
  const Tensor col = t.select(-1, 1);
  EXPECT_EQ(col.shape(), (Shape{4}));
  EXPECT_EQ(col.strides(), (std::vector<int64_t>{3}));
  EXPECT_FALSE(col.is_contiguous());
  EXPECT_EQ(items(col), (std::vector<float>{1, 4, 7, 10}));
  const Tensor one = col.select(0, 3);
  EXPECT_EQ(one.dim(), 0);
  EXPECT_EQ(one.numel(), 1);
  EXPECT_EQ(one.item_f32(0), 10.0f);
}

TEST(TensorSelect, OutOfRangeThrows) {
  const Tensor t = iota(DType::f32, {4, 3});
  const struct {
    int64_t axis, index;
    const char* error;
  } cases[] = {
      {0, 4, "select index 4 out of range for axis 0 of [4, 3]"},
      {1, -1, "select index -1 out of range"},
      {0, std::numeric_limits<int64_t>::max(), "out of range"},  // index + 1 must not overflow
      {2, 0, "select axis 2 out of range"},
      {-3, 0, "select axis -3 out of range"},  // not wrapped twice into axis 1
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.axis) + ", " + std::to_string(c.index));
    expect_error([&] { t.select(c.axis, c.index); }, c.error);
  }
}

TEST(TensorCopy, StridedViewsBecomeContiguousCopies) {
  for (DType dtype : {DType::f32, DType::bf16, DType::f16, DType::i64, DType::u8}) {
    SCOPED_TRACE(dtype_name(dtype));
    const Tensor t = iota(dtype, {3, 4, 5});
    const Tensor view = t.slice(2, 1, 4).slice(0, 1, 3).select(1, 2);  // [2, 3]
    ASSERT_EQ(view.shape(), (Shape{2, 3}));
    const std::vector<float> want = {31, 32, 33, 51, 52, 53};
    EXPECT_EQ(items(view), want);
    const Tensor copy = view.contiguous_copy();
    EXPECT_TRUE(copy.is_contiguous());
    EXPECT_NE(copy.storage(), t.storage());
    EXPECT_EQ(copy.shape(), view.shape());
    EXPECT_EQ(items(copy), want);
    store_from_f32(dtype, copy.raw(), 0, 0.0f);  // the copy owns its bytes
    EXPECT_EQ(view.item_f32(0), 31.0f);
  }
  const Tensor contiguous = iota(DType::f16, {2, 2});
  const Tensor copy = contiguous.contiguous_copy();
  EXPECT_NE(copy.raw(), contiguous.raw());
  EXPECT_EQ(items(copy), items(contiguous));
  expect_error([] { Tensor().contiguous_copy(); }, "undefined");
}

TEST(TensorItem, IndexOutOfRangeThrows) {
  const Tensor t = iota(DType::i32, {2, 2});
  EXPECT_EQ(t.item_f32(3), 3.0f);
  expect_error([&] { t.item_f32(4); }, "index 4 out of range for [2, 2]");
  expect_error([&] { t.item_f32(-1); }, "out of range");
  expect_error([] { Tensor().item_f32(0); }, "out of range");
}

TEST(TensorPacked, RowsAreWholeBytes) {
  Tensor t = Tensor::empty(DType::i4, {3, 4});
  EXPECT_EQ(t.nbytes(), 6u);
  for (int64_t i = 0; i < 12; ++i) store_from_f32(DType::i4, t.raw(), static_cast<uint64_t>(i), static_cast<float>(i - 6));
  EXPECT_EQ(t.item_f32(0), -6.0f);
  EXPECT_EQ(t.item_f32(11), 5.0f);
  EXPECT_EQ(static_cast<uint8_t>(t.raw()[0]), 0xBA);  // -6 low, -5 high

  const Tensor rows = t.slice(0, 1, 3);
  EXPECT_EQ(rows.raw(), t.raw() + 2);
  EXPECT_EQ(items(rows), (std::vector<float>{-2, -1, 0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(rows.nbytes(), 4u);
  const Tensor row = t.select(0, 2);
  EXPECT_EQ(row.shape(), (Shape{4}));
  EXPECT_EQ(items(row), (std::vector<float>{2, 3, 4, 5}));
  EXPECT_EQ(items(t.slice(1, 0, 4)), items(t));  // whole axis: no-op
  const Tensor copy = rows.contiguous_copy();
  EXPECT_EQ(copy.nbytes(), 4u);
  EXPECT_EQ(items(copy), items(rows));
  EXPECT_EQ(items(t.reshape({6, 2})), items(t));
  EXPECT_EQ(t.reshape({12}).nbytes(), 6u);
}

TEST(TensorPacked, ViewsThatSplitABytePairThrow) {
  const Tensor t = iota(DType::u4, {2, 8});
  expect_error([&] { t.slice(1, 0, 4); }, "only be sliced along the first axis");
  expect_error([&] { t.select(1, 0); }, "only be sliced along the first axis");
  expect_error([&] { t.reshape({16, 1}); }, "even innermost size");
  expect_error([&] { t.reshape({}); }, "cannot reshape");

  const Tensor flat = t.reshape({16});
  const Tensor middle = flat.slice(0, 2, 6);
  EXPECT_EQ(middle.raw(), flat.raw() + 1);
  EXPECT_EQ(items(middle), (std::vector<float>{2, 3, 4, 5}));
  expect_error([&] { flat.slice(0, 1, 3); }, "must start and end at even elements");
  expect_error([&] { flat.slice(0, 2, 5); }, "must start and end at even elements");
  expect_error([&] { flat.select(0, 4); }, "even elements");
}

}  // namespace
}  // namespace flint
