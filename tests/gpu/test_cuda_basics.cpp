// GPU tests: skipped, with the reason printed, where no GPU is visible.
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cuda/cuda_backend.h"
#include "core/dummy_values.h"
#include "gpu/gpu_test_util.h"
#include "model/weight_source.h"

namespace flint {
namespace {

TEST(CudaBasics, ListsDevices) {
  FLINT_REQUIRE_GPU();
  for (const CudaDeviceInfo& d : cuda_devices()) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.multiprocessors, 0);
    EXPECT_GT(d.total_bytes, d.free_bytes / 2);
  }
}

// Dummy weights made on the GPU equal the CPU's, bit for bit, in every dtype.
TEST(CudaBasics, DummyWeightsMatchTheCpu) {
  FLINT_REQUIRE_GPU();
  const uint64_t key = dummy_tensor_key(7, "model.layers.0.mlp.up_proj.weight");
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    for (bool norm : {false, true}) {
      const Shape shape{37, 129};
      Tensor host = cuda_to_host(cuda_dummy_tensor(dtype, shape, key, norm));
      Tensor expected = Tensor::empty(dtype, shape);
      for (int64_t i = 0; i < expected.numel(); ++i)
        store_from_f32(dtype, expected.raw(), static_cast<uint64_t>(i),
                       dummy_weight_value(key, static_cast<uint64_t>(i), norm));
      ASSERT_EQ(0, std::memcmp(host.raw(), expected.raw(), expected.nbytes())) << dtype_name(dtype);
    }
  }
}

TEST(CudaBasics, CeilingsArePlausible) {
  FLINT_REQUIRE_GPU();
  const DeviceCeilings c = measure_cuda_ceilings();
  EXPECT_GT(c.copy_bytes_per_s, 1e11);
  EXPECT_GT(c.gemm_flops_per_s, 1e13);
  std::printf("copy %.0f GB/s, bf16 GEMM %.0f TFLOP/s\n", c.copy_bytes_per_s / 1e9, c.gemm_flops_per_s / 1e12);
}

}  // namespace
}  // namespace flint
