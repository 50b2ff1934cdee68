// The CPU backend's row-wise ops (embedding, rms_norm, swiglu, gather_rows),
// the fused forms the model calls (linear_add, rms_norm_linear[_swiglu]), its memory (prepare_weight, the KV cache) and step checks,
// each against a double-precision reference. Linear is in test_cpu_linear.cpp,
// rope and attention in test_cpu_attention.cpp.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "op_test_util.h"

namespace flint {
namespace {

using testing::kF32Unit;
using testing::Random;

KvCache small_cache(Backend& b) {
  KvCacheShape s;
  s.num_layers = 1;
  s.num_blocks = 8;
  s.block_size = 16;
  s.kv_heads = 1;
  s.head_dim = 8;
  s.dtype = DType::f32;
  return b.create_kv_cache(s);
}

// One prompt holding `ids`, its blocks 0, 1, ...
Batch prompt_batch(const std::vector<int32_t>& ids) {
  BatchBuilder bb(8);
  std::vector<int32_t> blocks;
  for (size_t i = 0; i * 16 < ids.size(); ++i) blocks.push_back(static_cast<int32_t>(i));
  bb.add_sequence(ids, 0, blocks);
  return bb.build();
}

TEST(CpuOps, EmbeddingWidensRowsExactly) {
  auto backend = make_cpu_backend();
  KvCache cache = small_cache(*backend);
  uint64_t seed = 100;
  for (DType dtype : {DType::f32, DType::bf16, DType::f16}) {
    Random rng(++seed);
    const Tensor table = backend->prepare_weight(rng.tensor(dtype, {50, 19}), dtype);
    const std::vector<int32_t> ids = {0, 49, 7, 7, 23};
    backend->begin_step(prompt_batch(ids), cache);
    Tensor out = backend->empty(DType::f32, {5, 19});
    backend->embedding(table, out);
    for (int64_t t = 0; t < 5; ++t)
      for (int64_t h = 0; h < 19; ++h)
        ASSERT_EQ(out.data<float>()[t * 19 + h], table.item_f32(ids[static_cast<size_t>(t)] * 19 + h))
            << dtype_name(dtype) << " token " << t << " column " << h;
  }
}

TEST(CpuOps, EmbeddingRejectsIdsOutsideTheTable) {
  auto backend = make_cpu_backend();
  KvCache cache = small_cache(*backend);
  Random rng(110);
  const Tensor table = rng.tensor(DType::bf16, {50, 4});
  Tensor out = backend->empty(DType::f32, {2, 4});
  for (int32_t bad : {50, -1}) {
    backend->begin_step(prompt_batch({3, bad}), cache);
    try {
      backend->embedding(table, out);
      ADD_FAILURE() << "id " << bad << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::to_string(bad)), std::string::npos) << e.what();
    }
  }
}

// HF LlamaRMSNorm: w * (x * rsqrt(mean(x^2) + eps)), in f32. The kernel rounds
// the mean, the sqrt, the reciprocal and two products: within 8 ulp of |y|.
void expect_rms_norm(const Tensor& x, const Tensor& w, float eps, const Tensor& out) {
  const int64_t n = x.size(0), h = x.size(1);
  for (int64_t t = 0; t < n; ++t) {
    double ss = 0;
    for (int64_t i = 0; i < h; ++i) ss += testing::at(x, t * h + i) * testing::at(x, t * h + i);
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(h) + static_cast<double>(eps));
    for (int64_t i = 0; i < h; ++i) {
      const double ref = testing::at(w, i) * testing::at(x, t * h + i) * r;
      ASSERT_NEAR(testing::at(out, t * h + i), ref, 8 * kF32Unit * std::fabs(ref) + 1e-30)
          << "row " << t << " column " << i;
    }
  }
}

TEST(CpuOps, RmsNormMatchesReference) {
  auto backend = make_cpu_backend();
  uint64_t seed = 200;
  for (DType wdtype : {DType::f32, DType::bf16}) {
    for (int64_t n : {1, 3, 17}) {
      for (int64_t h : {19, 64}) {
        Random rng(++seed);
        const Tensor x = rng.tensor(DType::f32, {n, h});
        const Tensor w = backend->prepare_weight(rng.tensor(wdtype, {h}, 0.5f, 1.5f), DType::f32);
        Tensor out = backend->empty(DType::f32, {n, h});
        backend->rms_norm(x, w, 1e-5f, out);
        SCOPED_TRACE(::testing::Message() << dtype_name(wdtype) << " n=" << n << " h=" << h);
        expect_rms_norm(x, w, 1e-5f, out);
      }
    }
  }
}

TEST(CpuOps, LinearAddAddsTheProductToTheResidual) {
  auto backend = make_cpu_backend();
  Random rng(300);
  const int64_t n = 7, in = 24, out = 45;
  const Linear w = backend->prepare_linear({rng.tensor(DType::bf16, {out, in})}, rng.tensor(DType::f32, {out}),
                                           DType::f32);
  const Tensor x = rng.tensor(DType::f32, {n, in});
  Tensor product = backend->empty(DType::f32, {n, out});
  backend->linear(x, w, product);
  Tensor residual = rng.tensor(DType::f32, {n, out});
  const Tensor before = residual.contiguous_copy();
  Tensor scratch = backend->empty(DType::f32, {n, out});
  backend->linear_add(x, w, residual, scratch);
  for (int64_t i = 0; i < n * out; ++i)  // one f32 addition: exact to compare
    ASSERT_EQ(residual.data<float>()[i], before.data<float>()[i] + product.data<float>()[i]) << i;
  // The residual may be neither operand.
  Tensor square = rng.tensor(DType::f32, {n, in});
  const Linear wide = backend->prepare_linear({rng.tensor(DType::bf16, {in, in})}, Tensor(), DType::f32);
  EXPECT_THROW(backend->linear_add(square, wide, square, scratch), Error);
  Tensor wrong = backend->empty(DType::f32, {n, out + 1});
  EXPECT_THROW(backend->linear_add(x, w, wrong, scratch), Error);
}

// The fused forms are, on the CPU, the ops they name run one after another.
TEST(CpuOps, RmsNormLinearIsRmsNormThenLinear) {
  auto backend = make_cpu_backend();
  Random rng(310);
  const int64_t n = 5, h = 40, f = 12;
  const Tensor x = rng.tensor(DType::f32, {n, h});
  const Tensor norm = backend->prepare_weight(rng.tensor(DType::bf16, {h}, 0.5f, 1.5f), DType::f32);
  const Linear gate_up = backend->prepare_linear({rng.tensor(DType::bf16, {2 * f, h})}, Tensor(), DType::f32);
  Tensor normed = backend->empty(DType::f32, {n, h});
  Tensor expect_gate_up = backend->empty(DType::f32, {n, 2 * f});
  Tensor expect = backend->empty(DType::f32, {n, f});
  backend->rms_norm(x, norm, 1e-5f, normed);
  backend->linear(normed, gate_up, expect_gate_up);
  backend->swiglu(expect_gate_up, expect);

  Tensor normed2 = backend->empty(DType::f32, {n, h});
  Tensor got_gate_up = backend->empty(DType::f32, {n, 2 * f});
  backend->rms_norm_linear(x, norm, 1e-5f, gate_up, normed2, got_gate_up);
  Tensor got = backend->empty(DType::f32, {n, f});
  Tensor scratch = backend->empty(DType::f32, {n, 2 * f});
  backend->rms_norm_linear_swiglu(x, norm, 1e-5f, gate_up, normed2, scratch, got);
  for (int64_t i = 0; i < n * 2 * f; ++i)
    ASSERT_EQ(got_gate_up.data<float>()[i], expect_gate_up.data<float>()[i]) << i;
  for (int64_t i = 0; i < n * f; ++i) ASSERT_EQ(got.data<float>()[i], expect.data<float>()[i]) << i;
}

TEST(CpuOps, SwigluMatchesReference) {
  auto backend = make_cpu_backend();
  uint64_t seed = 400;
  for (cpu::Isa isa : testing::available_isas()) {
    testing::IsaScope scope(isa);
    for (int64_t n : {1, 3}) {
      const int64_t f = 37;  // four vectors of 8 and a tail
      Random rng(++seed);
      Tensor gate_up = rng.tensor(DType::f32, {n, 2 * f}, -12.0f, 12.0f);
      // Saturating gates: silu(-100) underflows, silu(40) is the identity.
      gate_up.data<float>()[0] = -100.0f;
      gate_up.data<float>()[1] = 40.0f;
      gate_up.data<float>()[2] = -40.0f;
      Tensor out = backend->empty(DType::f32, {n, f});
      backend->swiglu(gate_up, out);
      // exp (vector exp8: ~2 ulp), one addition, one division, one product:
      // within 8 ulp of the result; silu(-100) is ~1e-42, so an absolute 1e-30.
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t i = 0; i < f; ++i) {
          const double g = testing::at(gate_up, t * 2 * f + i), u = testing::at(gate_up, t * 2 * f + f + i);
          const double ref = g / (1.0 + std::exp(-g)) * u;
          ASSERT_NEAR(testing::at(out, t * f + i), ref, 8 * kF32Unit * std::fabs(ref) + 1e-30)
              << testing::isa_name(isa) << " row " << t << " column " << i << " gate " << g;
        }
      }
    }
  }
}

TEST(CpuOps, GatherRowsCopiesAndChecksRows) {
  auto backend = make_cpu_backend();
  Random rng(500);
  const Tensor x = rng.tensor(DType::f32, {6, 11});
  Tensor out = backend->empty(DType::f32, {3, 11});
  backend->gather_rows(x, {5, 0, 5}, out);
  const int rows[] = {5, 0, 5};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 11; ++j) ASSERT_EQ(out.data<float>()[i * 11 + j], x.data<float>()[rows[i] * 11 + j]);
  EXPECT_THROW(backend->gather_rows(x, {6, 0, 1}, out), Error);
  EXPECT_THROW(backend->gather_rows(x, {0, 1}, out), Error);  // out has 3 rows
}

TEST(CpuOps, PrepareWeightKeepsMatricesAndWidensNorms) {
  auto backend = make_cpu_backend();
  Random rng(600);
  const Tensor m = rng.tensor(DType::bf16, {8, 4});
  EXPECT_EQ(backend->prepare_weight(m, DType::bf16).raw(), m.raw());
  EXPECT_EQ(backend->prepare_weight(m, DType::f32).raw(), m.raw());  // matrices are never widened
  const Tensor norm = rng.tensor(DType::f16, {4});
  const Tensor wide = backend->prepare_weight(norm, DType::f32);
  EXPECT_EQ(wide.dtype(), DType::f32);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(wide.item_f32(i), norm.item_f32(i));
  const Tensor strided = m.slice(1, 1, 3);
  const Tensor packed = backend->prepare_weight(strided, DType::bf16);
  EXPECT_TRUE(packed.is_contiguous());
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(packed.item_f32(i), strided.item_f32(i));
  EXPECT_THROW(backend->prepare_weight(Tensor::empty(DType::f8e4m3fn, {4, 4}), DType::bf16), Error);
}

TEST(CpuOps, KvCacheIsZeroedAndShaped) {
  auto backend = make_cpu_backend();
  KvCacheShape s;
  s.num_layers = 2;
  s.num_blocks = 3;
  s.block_size = 5;
  s.kv_heads = 2;
  s.head_dim = 4;
  s.dtype = DType::bf16;
  const KvCache cache = backend->create_kv_cache(s);
  ASSERT_EQ(cache.k.size(), 2u);
  ASSERT_EQ(cache.v.size(), 2u);
  for (const Tensor& t : cache.k) {
    EXPECT_EQ(t.shape(), (Shape{3, 2, 5, 4}));
    EXPECT_EQ(t.dtype(), DType::bf16);
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.item_f32(i), 0.0f);
  }
  s.dtype = DType::i8;
  EXPECT_THROW(backend->create_kv_cache(s), Error);
  s.dtype = DType::f32;
  s.num_blocks = 0;
  EXPECT_THROW(backend->create_kv_cache(s), Error);
}

TEST(CpuOps, StepIsValidatedAndRequired) {
  auto backend = make_cpu_backend();
  KvCache cache = small_cache(*backend);
  const Tensor table = Random(700).tensor(DType::f32, {10, 8});
  Tensor out = backend->empty(DType::f32, {2, 8});
  EXPECT_THROW(backend->embedding(table, out), Error);  // no begin_step yet
  BatchBuilder bb(2);
  bb.add_sequence({1, 2}, 0, {9});  // block 9 of an 8-block pool
  EXPECT_THROW(backend->begin_step(bb.build(), cache), Error);
}

}  // namespace
}  // namespace flint
