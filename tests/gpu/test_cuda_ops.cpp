// The CUDA backend's ops against the CPU backend's on random inputs.
//
// Both backends get the same bf16 values (the CPU widens them exactly to f32),
// so the only differences are the GPU's bf16 outputs and the order of f32
// additions. Bounds, as ||gpu - cpu|| / ||cpu|| over the whole output:
//   bf16 outputs: 1e-2. Rounding to bf16 moves each element by at most
//     2^-8 of itself (|e| <= u = 3.9e-3), so the norm of the error is at most
//     u of the norm; an op that rounds an intermediate too (the bf16 normed
//     x that rms_norm_linear feeds its matmul) doubles that, f32 outputs
//     included. 1e-2 leaves 30% room above 2u and is far below what a wrong
//     index, a missed row or a wrong scale gives (>= 1e-1).
//   f32 outputs of linear: 1e-4. Products of bf16 values are exact in f32, so
//     only the summation order differs (~1e-6 for these K).
// Copies (embedding, gather_rows) and conversions must be bit-exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/cuda_backend.h"
#include "core/error.h"
#include "gpu/gpu_test_util.h"
#include "model/weight_source.h"

namespace flint {
namespace {

using testing::poisoned;
using testing::Random;
using testing::relative_error;
using testing::same_bits;

constexpr double kBf16Tol = 1e-2;
constexpr double kF32Tol = 1e-4;

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    FLINT_REQUIRE_GPU();
    cpu = make_cpu_backend();
    gpu = make_cuda_backend();
    seed = testing::fresh_seed();
  }

  // A host bf16 tensor of uniform values, and its exact f32 widening.
  Tensor bf16(Random& rng, const Shape& shape, float lo = -1.0f, float hi = 1.0f) {
    return rng.tensor(DType::bf16, shape, lo, hi);
  }
  static Tensor widen(const Tensor& t) { return testing::as_f32_2d(t).reshape(t.shape()); }

  // One prompt of `ids` on each backend, with caches of one layer.
  void begin_prompt(const std::vector<int32_t>& ids) {
    KvCacheShape s;
    s.num_layers = 1;
    s.num_blocks = 64;
    s.block_size = 16;
    s.kv_heads = 1;
    s.head_dim = 64;
    s.dtype = DType::bf16;
    gpu_cache = gpu->create_kv_cache(s);
    s.dtype = DType::f32;
    cpu_cache = cpu->create_kv_cache(s);
    BatchBuilder bb(64);
    std::vector<int32_t> blocks;
    for (size_t i = 0; i * 16 < ids.size(); ++i) blocks.push_back(static_cast<int32_t>(i));
    bb.add_sequence(ids, 0, blocks, true, true);
    const Batch batch = bb.build();
    gpu->begin_step(batch, gpu_cache);
    cpu->begin_step(batch, cpu_cache);
  }

  std::unique_ptr<Backend> cpu, gpu;
  KvCache cpu_cache, gpu_cache;
  uint64_t seed = 0;
};

TEST_F(CudaOps, EmbeddingCopiesRowsExactly) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  for (int64_t h : {64, 100, 4096}) {
    const int64_t vocab = 1000;
    const Tensor table = bf16(rng, {vocab, h});
    const Tensor gpu_table = gpu->prepare_weight(table, DType::bf16);
    for (int32_t t : {1, 7, 33}) {
      std::vector<int32_t> ids = {0, static_cast<int32_t>(vocab - 1)};
      while (static_cast<int32_t>(ids.size()) < t) ids.push_back(rng.integer(0, static_cast<int32_t>(vocab - 1)));
      ids.resize(static_cast<size_t>(t));
      begin_prompt(ids);
      Tensor out = poisoned(*gpu, DType::bf16, {t, h});
      gpu->embedding(gpu_table, out);
      const Tensor got = gpu->to_host(out);
      for (int32_t i = 0; i < t; ++i)
        ASSERT_EQ(0, std::memcmp(got.raw() + i * h * 2, table.raw() + ids[static_cast<size_t>(i)] * h * 2,
                                 static_cast<size_t>(h) * 2))
            << "h " << h << " row " << i;
    }
  }
}

TEST_F(CudaOps, EmbeddingRejectsIdsOutsideTheTable) {
  Random rng(seed);
  const Tensor table = gpu->prepare_weight(bf16(rng, {50, 8}), DType::bf16);
  Tensor out = gpu->empty(DType::bf16, {2, 8});
  begin_prompt({3, 50});
  try {
    gpu->embedding(table, out);
    ADD_FAILURE() << "id 50 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("50"), std::string::npos) << e.what();
  }
}

// Sizes: 64 and 4096 (one and two uint4 per thread), 8200 (eight per thread),
// 100 (not a multiple of 8) and 16392 (wider than a row held in registers):
// the two-pass kernel.
TEST_F(CudaOps, RmsNormMatchesCpu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  for (int64_t h : {64, 100, 4096, 8200, 16392}) {
    for (int64_t n : {1, 5, 64}) {
      const Tensor x = bf16(rng, {n, h}, -3.0f, 3.0f);
      const Tensor w = rng.tensor(DType::f32, {h}, 0.5f, 1.5f);
      const float eps = 1e-5f;
      Tensor cpu_out = cpu->empty(DType::f32, {n, h});
      cpu->rms_norm(widen(x), cpu->prepare_weight(w, DType::f32), eps, cpu_out);
      Tensor gpu_out = poisoned(*gpu, DType::bf16, {n, h});
      gpu->rms_norm(gpu->from_host(x), gpu->prepare_weight(w, DType::f32), eps, gpu_out);
      EXPECT_LT(relative_error(gpu->to_host(gpu_out), cpu_out), kBf16Tol) << "h " << h << " n " << n;
    }
  }
}

// linear_add: residual += x W^T + b in the GEMV's epilogue (up to 16 rows),
// as cuBLASLt's C (beyond, and at every size with gemv_max_rows = 0), or in
// the fallback kernel (in = 172: no 16-byte rows for the GEMV). The product
// and the residual are of one magnitude, so a lost term shows (error ~1).
TEST_F(CudaOps, LinearAddMatchesCpu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  auto cublas_only = make_cuda_backend({.gemv_max_rows = 0});
  const std::pair<int64_t, int64_t> shapes[] = {{256, 512}, {344, 64}, {64, 172}, {4096, 4096}};
  for (Backend* g : {gpu.get(), cublas_only.get()}) {
    for (const auto& [out, in] : shapes) {
      for (bool with_bias : {false, true}) {
        const Tensor w = rng.tensor(DType::bf16, {out, in}, -0.1f, 0.1f);
        const Tensor bias = with_bias ? rng.tensor(DType::f32, {out}) : Tensor();
        const Linear gl = g->prepare_linear({w}, bias, DType::bf16);
        const Linear cl = cpu->prepare_linear({w}, bias, DType::bf16);
        for (int64_t n : {1, 7, 16, 17, 64}) {
          const Tensor x = bf16(rng, {n, in});
          const Tensor residual = bf16(rng, {n, out});
          Tensor cpu_residual = widen(residual);
          Tensor cpu_scratch = cpu->empty(DType::f32, {n, out});
          cpu->linear_add(widen(x), cl, cpu_residual, cpu_scratch);
          Tensor gpu_residual = g->from_host(residual);
          Tensor gpu_scratch = g->empty(DType::bf16, {n, out});
          g->linear_add(g->from_host(x), gl, gpu_residual, gpu_scratch);
          EXPECT_LT(relative_error(g->to_host(gpu_residual), cpu_residual), kBf16Tol)
              << "out " << out << " in " << in << " n " << n << " bias " << with_bias
              << (g == gpu.get() ? "" : " (cuBLASLt only)");
        }
      }
    }
  }
  Tensor x = gpu->empty(DType::bf16, {2, 64});
  Tensor scratch = gpu->empty(DType::bf16, {2, 64});
  const Linear square = gpu->prepare_linear({rng.tensor(DType::bf16, {64, 64})}, Tensor(), DType::bf16);
  EXPECT_THROW(gpu->linear_add(x, square, x, scratch), Error);
}

TEST_F(CudaOps, SwigluMatchesCpu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  for (int64_t f : {128, 172, 14336}) {
    for (int64_t n : {1, 3, 50}) {
      const Tensor gate_up = bf16(rng, {n, 2 * f}, -4.0f, 4.0f);
      Tensor cpu_out = cpu->empty(DType::f32, {n, f});
      cpu->swiglu(widen(gate_up), cpu_out);
      Tensor gpu_out = poisoned(*gpu, DType::bf16, {n, f});
      gpu->swiglu(gpu->from_host(gate_up), gpu_out);
      EXPECT_LT(relative_error(gpu->to_host(gpu_out), cpu_out), kBf16Tol) << "f " << f << " n " << n;
    }
  }
}

TEST_F(CudaOps, GatherRowsCopiesExactly) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  for (int64_t h : {64, 100}) {
    const Tensor x = bf16(rng, {20, h});
    const Tensor gx = gpu->from_host(x);
    // The step's own logits rows (already on the device) and arbitrary ones.
    begin_prompt(std::vector<int32_t>(20, 1));
    for (const std::vector<int32_t>& rows :
         {std::vector<int32_t>{}, std::vector<int32_t>{19, 0, 0, 7}, std::vector<int32_t>{5}}) {
      Tensor out = poisoned(*gpu, DType::bf16, {static_cast<int64_t>(rows.size()), h});
      gpu->gather_rows(gx, rows, out);
      const Tensor got = gpu->to_host(out);
      for (size_t i = 0; i < rows.size(); ++i)
        ASSERT_EQ(0, std::memcmp(got.raw() + static_cast<int64_t>(i) * h * 2, x.raw() + rows[i] * h * 2,
                                 static_cast<size_t>(h) * 2));
    }
    std::vector<int32_t> all(20);
    for (int32_t i = 0; i < 20; ++i) all[static_cast<size_t>(i)] = i;
    Tensor out = poisoned(*gpu, DType::bf16, {20, h});
    gpu->gather_rows(gx, all, out);  // == the step's logits_rows
    EXPECT_TRUE(same_bits(gpu->to_host(out), x));
  }
}

// f32 and f16 weights are rounded to bf16 once (round to nearest even);
// vectors (norms, biases) become f32 exactly. 4100^2 elements cross the
// 16M-element staging chunk of the upload.
TEST_F(CudaOps, PrepareWeightRoundsToBf16) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  for (const Shape& shape : {Shape{37, 129}, Shape{4100, 4100}}) {
    for (DType dtype : {DType::f32, DType::f16, DType::bf16}) {
      const Tensor host = rng.tensor(dtype, shape);
      const Tensor got = gpu->to_host(gpu->prepare_weight(host, dtype));
      ASSERT_EQ(got.dtype(), DType::bf16);
      ASSERT_EQ(got.shape(), shape);
      const auto* bits = got.data<uint16_t>();
      for (int64_t i = 0; i < host.numel(); ++i)
        ASSERT_EQ(bits[i], f32_to_bf16_bits(host.item_f32(i))) << dtype_name(dtype) << " element " << i;
    }
  }
  const Tensor norm = rng.tensor(DType::bf16, {77});
  const Tensor got = gpu->to_host(gpu->prepare_weight(norm, DType::f32));
  ASSERT_EQ(got.dtype(), DType::f32);
  for (int64_t i = 0; i < 77; ++i) ASSERT_EQ(got.data<float>()[i], norm.item_f32(i));
}

TEST_F(CudaOps, PrepareLinearFusesPartsInOrder) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  const std::vector<Tensor> parts = {rng.tensor(DType::f32, {24, 40}), rng.tensor(DType::bf16, {8, 40}),
                                     rng.tensor(DType::f16, {8, 40})};
  const Tensor bias = rng.tensor(DType::f32, {40});
  const Linear l = gpu->prepare_linear(parts, bias, DType::bf16);
  ASSERT_EQ(l.parts.size(), 1u);
  EXPECT_EQ(l.out_features, 40);
  EXPECT_EQ(l.in_features, 40);
  const Tensor fused = gpu->to_host(l.parts.front());
  ASSERT_EQ(fused.shape(), (Shape{40, 40}));
  int64_t row = 0;
  for (const Tensor& p : parts)
    for (int64_t i = 0; i < p.numel(); ++i, ++row)
      ASSERT_EQ(fused.data<uint16_t>()[row], f32_to_bf16_bits(p.item_f32(i)));
  EXPECT_TRUE(same_bits(gpu->to_host(l.bias), bias));
}

struct LinearCase {
  std::vector<int64_t> part_rows;
  int64_t in;
};

// Shapes: one part; q/k/v-like fusion; gate/up fusion with 344 outputs (not a
// multiple of the 16-row tile); in = 172 (not a multiple of 8: no 16-byte
// loads); 1000 x 1000; an 8B-sized 4096 x 4096.
const LinearCase kLinearCases[] = {{{256}, 512}, {{96, 32, 32}, 128}, {{172, 172}, 64},
                                   {{64}, 172},  {{1000}, 1000},      {{4096}, 4096}};

void run_linear_cases(Backend& cpu, Backend& gpu, uint64_t seed, const std::vector<int64_t>& ns) {
  Random rng(seed);
  for (const LinearCase& c : kLinearCases) {
    std::vector<Tensor> parts;
    int64_t out_features = 0;
    for (int64_t r : c.part_rows) {
      parts.push_back(rng.tensor(DType::bf16, {r, c.in}, -0.1f, 0.1f));
      out_features += r;
    }
    for (bool with_bias : {false, true}) {
      const Tensor bias = with_bias ? rng.tensor(DType::f32, {out_features}) : Tensor();
      const Linear cl = cpu.prepare_linear(parts, bias, DType::bf16);
      const Linear gl = gpu.prepare_linear(parts, bias, DType::bf16);
      for (int64_t n : ns) {
        const Tensor x = rng.tensor(DType::bf16, {n, c.in});
        Tensor cpu_out = cpu.empty(DType::f32, {n, out_features});
        cpu.linear(testing::as_f32_2d(x), cl, cpu_out);
        const Tensor gx = gpu.from_host(x);
        for (DType out_dtype : {DType::bf16, DType::f32}) {
          Tensor gpu_out = poisoned(gpu, out_dtype, {n, out_features});
          gpu.linear(gx, gl, gpu_out);
          EXPECT_LT(relative_error(gpu.to_host(gpu_out), cpu_out), out_dtype == DType::f32 ? kF32Tol : kBf16Tol)
              << "out " << out_features << " in " << c.in << " parts " << c.part_rows.size() << " n " << n
              << " bias " << with_bias << " out " << dtype_name(out_dtype);
        }
      }
    }
  }
}

// The default choice: the tensor-core GEMV up to 16 rows, cuBLASLt beyond,
// the fallback kernel where neither takes the operands.
TEST_F(CudaOps, LinearMatchesCpu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  run_linear_cases(*cpu, *gpu, seed, {1, 2, 7, 16, 64, 300});
}

// Each path alone: cuBLASLt at every size, and the GEMV at up to 32 rows
// (one, two and four 8-row tiles of x).
TEST_F(CudaOps, LinearPathsMatchCpu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto cublas_only = make_cuda_backend({.gemv_max_rows = 0});
  run_linear_cases(*cpu, *cublas_only, seed, {1, 2, 7, 16, 64});
  auto gemv_wide = make_cuda_backend({.gemv_max_rows = 32});
  run_linear_cases(*cpu, *gemv_wide, seed + 1, {1, 8, 9, 16, 17, 31, 32});
}

// rms_norm_linear: rms_norm, then the GEMV (up to gemv_max_rows rows; here
// 32, so one, two and four x tiles) or, beyond and where the GEMV does not
// take the operands (in = 172), the GEMM. x spans [-3, 3] so that the norm's
// scale is far from 1.
TEST_F(CudaOps, RmsNormLinearMatchesCpu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  const std::pair<int64_t, int64_t> shapes[] = {{256, 512}, {344, 64}, {64, 172}, {4096, 4096}};
  auto g = make_cuda_backend({.gemv_max_rows = 32});
  for (const auto& [out, in] : shapes) {
    for (bool with_bias : {false, true}) {
      const Tensor w = rng.tensor(DType::bf16, {out, in}, -0.1f, 0.1f);
      const Tensor bias = with_bias ? rng.tensor(DType::f32, {out}) : Tensor();
      const Tensor norm = rng.tensor(DType::f32, {in}, 0.5f, 1.5f);
      const Linear gl = g->prepare_linear({w}, bias, DType::bf16);
      const Linear cl = cpu->prepare_linear({w}, bias, DType::bf16);
      const Tensor gnorm = g->prepare_weight(norm, DType::f32);
      const Tensor cnorm = cpu->prepare_weight(norm, DType::f32);
      for (int64_t n : {1, 5, 9, 16, 31, 32, 40}) {
        const Tensor x = bf16(rng, {n, in}, -3.0f, 3.0f);
        Tensor cpu_normed = cpu->empty(DType::f32, {n, in});
        Tensor cpu_out = cpu->empty(DType::f32, {n, out});
        cpu->rms_norm_linear(widen(x), cnorm, 1e-5f, cl, cpu_normed, cpu_out);
        const Tensor gx = g->from_host(x);
        for (DType out_dtype : {DType::bf16, DType::f32}) {
          Tensor normed = g->empty(DType::bf16, {n, in});
          Tensor gpu_out = poisoned(*g, out_dtype, {n, out});
          g->rms_norm_linear(gx, gnorm, 1e-5f, gl, normed, gpu_out);
          EXPECT_LT(relative_error(g->to_host(gpu_out), cpu_out), kBf16Tol)
              << "out " << out << " in " << in << " n " << n << " bias " << with_bias << " out "
              << dtype_name(out_dtype);
        }
      }
    }
  }
}

// rms_norm_linear (the lm_head) runs its GEMV with tiles claimed from a
// counter, linear with tiles dealt in turn: the same bits (a tile's sums do
// not depend on the CTA that makes them), launch after launch (each leaves
// its counter at zero for the next; one that did not would leave tiles
// unwritten, which the poisoned outputs show). 261 and 1000 tiles: more than
// the SMs, not a multiple of them.
TEST_F(CudaOps, RmsNormLinearClaimingTilesIsRmsNormThenLinear) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  for (const auto& [out, in] : {std::pair<int64_t, int64_t>{261 * 16, 1024}, {16000, 512}}) {
    const Tensor w = rng.tensor(DType::bf16, {out, in}, -0.1f, 0.1f);
    const Linear gl = gpu->prepare_linear({w}, Tensor(), DType::bf16);
    const Tensor gnorm = gpu->prepare_weight(rng.tensor(DType::f32, {in}, 0.5f, 1.5f), DType::f32);
    for (int64_t n : {1, 3, 8}) {
      const Tensor gx = gpu->from_host(bf16(rng, {n, in}, -3.0f, 3.0f));
      Tensor normed = gpu->empty(DType::bf16, {n, in});
      gpu->rms_norm(gx, gnorm, 1e-5f, normed);
      Tensor dealt = poisoned(*gpu, DType::f32, {n, out});
      gpu->linear(normed, gl, dealt);
      const Tensor expected = gpu->to_host(dealt);
      for (int launch = 0; launch < 4; ++launch) {
        Tensor claimed = poisoned(*gpu, DType::f32, {n, out});
        gpu->rms_norm_linear(gx, gnorm, 1e-5f, gl, normed, claimed);
        EXPECT_TRUE(same_bits(gpu->to_host(claimed), expected)) << "out " << out << " n " << n << " launch " << launch;
      }
    }
  }
}

// rms_norm_linear_swiglu: the GEMV with SwiGLU fused gives the bits of
// rms_norm_linear (bf16) then swiglu on the GPU (same sums, same roundings) at every row count the GEMV takes (f not a multiple
// of the 8-row tile: 172), and is that pair itself beyond (33, 40 rows); both
// within the bf16 bound of the CPU.
TEST_F(CudaOps, RmsNormLinearSwigluIsRmsNormLinearThenSwiglu) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  // 2048 x 1024: 256 tiles, more than the SMs (a persistent CTA takes several).
  const std::pair<int64_t, int64_t> shapes[] = {{172, 64}, {256, 512}, {1024, 4096}, {2048, 1024}};
  auto g = make_cuda_backend({.gemv_max_rows = 32});
  for (const auto& [f, in] : shapes) {
    for (bool with_bias : {false, true}) {
      const std::vector<Tensor> parts = {rng.tensor(DType::bf16, {f, in}, -0.1f, 0.1f),
                                         rng.tensor(DType::bf16, {f, in}, -0.1f, 0.1f)};
      const Tensor bias = with_bias ? rng.tensor(DType::f32, {2 * f}) : Tensor();
      const Tensor norm = rng.tensor(DType::f32, {in}, 0.5f, 1.5f);
      const Linear gl = g->prepare_linear(parts, bias, DType::bf16);
      const Linear cl = cpu->prepare_linear(parts, bias, DType::bf16);
      const Tensor gnorm = g->prepare_weight(norm, DType::f32);
      const Tensor cnorm = cpu->prepare_weight(norm, DType::f32);
      for (int64_t n : {1, 5, 8, 9, 16, 17, 32, 33, 40}) {
        const Tensor x = bf16(rng, {n, in}, -3.0f, 3.0f);
        const Tensor gx = g->from_host(x);
        Tensor normed = g->empty(DType::bf16, {n, in});
        Tensor pair_gate_up = poisoned(*g, DType::bf16, {n, 2 * f});
        Tensor pair_out = poisoned(*g, DType::bf16, {n, f});
        g->rms_norm_linear(gx, gnorm, 1e-5f, gl, normed, pair_gate_up);
        g->swiglu(pair_gate_up, pair_out);
        Tensor gate_up = poisoned(*g, DType::bf16, {n, 2 * f});
        Tensor out = poisoned(*g, DType::bf16, {n, f});
        g->rms_norm_linear_swiglu(gx, gnorm, 1e-5f, gl, normed, gate_up, out);
        const Tensor fused = g->to_host(out);
        EXPECT_TRUE(same_bits(fused, g->to_host(pair_out)))
            << "f " << f << " in " << in << " n " << n << " bias " << with_bias;
        Tensor cpu_normed = cpu->empty(DType::f32, {n, in});
        Tensor cpu_gate_up = cpu->empty(DType::f32, {n, 2 * f});
        Tensor cpu_out = cpu->empty(DType::f32, {n, f});
        cpu->rms_norm_linear_swiglu(widen(x), cnorm, 1e-5f, cl, cpu_normed, cpu_gate_up, cpu_out);
        EXPECT_LT(relative_error(fused, cpu_out), kBf16Tol) << "f " << f << " n " << n << " bias " << with_bias;
      }
    }
  }
}

// rms_norm_qkv_rope: the GEMV with RoPE and the K/V cache write fused gives the bits of rms_norm_linear then rope_and_cache on the GPU: the
// same qkv (q and k rotated) and the same caches, every other cache row still
// zero. Steps of 1 to 32 tokens (one, two and four x tiles): decode batches
// at scattered positions (shuffled blocks) and a prompt; head_dim 64 and 128;
// grouped heads.
TEST_F(CudaOps, RmsNormQkvRopeIsRmsNormLinearThenRope) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  std::mt19937 pick(static_cast<uint32_t>(seed));
  auto g = make_cuda_backend({.gemv_max_rows = 32});
  struct Heads {
    int32_t hq, hkv, d;
  };
  // 32 / 8 / 128 (8B): 384 tiles, more than the SMs.
  for (const Heads& h : {Heads{4, 2, 64}, Heads{8, 2, 128}, Heads{2, 2, 128}, Heads{32, 8, 128}}) {
    KvCacheShape shape;
    shape.num_layers = 1;
    shape.num_blocks = 160;
    shape.block_size = 16;
    shape.kv_heads = h.hkv;
    shape.head_dim = h.d;
    shape.dtype = DType::bf16;
    AttentionParams p{h.hq, h.hkv, h.d, 1.0f / std::sqrt(static_cast<float>(h.d))};
    const int64_t in = 256, width = static_cast<int64_t>(h.hq + 2 * h.hkv) * h.d;
    const Linear w = g->prepare_linear({rng.tensor(DType::bf16, {width, in}, -0.1f, 0.1f)}, Tensor(), DType::bf16);
    const Tensor norm = g->prepare_weight(rng.tensor(DType::f32, {in}, 0.5f, 1.5f), DType::f32);
    std::vector<float> inv(static_cast<size_t>(h.d / 2));
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(500000.0f, -2.0f * static_cast<float>(i) / h.d);
    Tensor inv_host = Tensor::empty(DType::f32, {h.d / 2});
    std::copy(inv.begin(), inv.end(), inv_host.data<float>());
    RopeTables rope{g->from_host(inv_host)};
    for (int32_t seqs : {1, 5, 16, 32, 0}) {  // 0: one prompt of 9 tokens
      BatchBuilder bb(4);
      std::vector<int32_t> free_blocks(static_cast<size_t>(shape.num_blocks));
      std::iota(free_blocks.begin(), free_blocks.end(), 0);
      std::shuffle(free_blocks.begin(), free_blocks.end(), pick);
      size_t next = 0;
      for (int32_t s = 0; s < std::max(seqs, 1); ++s) {
        const int32_t cached = seqs == 0 ? 0 : static_cast<int32_t>(pick() % 60);
        const int32_t tokens = seqs == 0 ? 9 : 1;
        std::vector<int32_t> blocks;
        for (int32_t b = 0; b * 16 < cached + tokens; ++b) blocks.push_back(free_blocks[next++]);
        bb.add_sequence(std::vector<int32_t>(static_cast<size_t>(tokens), 1), cached, blocks);
      }
      const Batch batch = bb.build();
      const int64_t n = batch.num_tokens();
      KvCache fused_cache = g->create_kv_cache(shape), pair_cache = g->create_kv_cache(shape);
      g->begin_step(batch, fused_cache);
      const Tensor x = g->from_host(bf16(rng, {n, in}, -3.0f, 3.0f));
      Tensor normed = g->empty(DType::bf16, {n, in});
      Tensor pair_qkv = poisoned(*g, DType::bf16, {n, width});
      g->rms_norm_linear(x, norm, 1e-5f, w, normed, pair_qkv);
      g->rope_and_cache(pair_qkv, rope, p, pair_cache, 0);
      Tensor fused_qkv = poisoned(*g, DType::bf16, {n, width});
      g->rms_norm_qkv_rope(x, norm, 1e-5f, w, rope, p, fused_cache, 0, normed, fused_qkv);
      SCOPED_TRACE(::testing::Message() << "Hq " << h.hq << " Hkv " << h.hkv << " D " << h.d << " tokens " << n);
      EXPECT_TRUE(same_bits(g->to_host(fused_qkv), g->to_host(pair_qkv)));
      EXPECT_TRUE(same_bits(g->to_host(fused_cache.k[0]), g->to_host(pair_cache.k[0])));
      EXPECT_TRUE(same_bits(g->to_host(fused_cache.v[0]), g->to_host(pair_cache.v[0])));
    }
  }
}

// attention_linear_add: decode steps whose keys split in 2 to 8 (and whose
// attention output fits the GEMV's shared memory) combine the split-KV
// partials in the o projection's GEMV, which claims its tiles; the combine
// kernel then linear_add (tiles dealt) must give the same bits, for both
// the attention's output and the residual. Heads of the 1B (D 64: up to 4
// tokens merge) and the 8B (D 128: up to 2); caches of 16 blocks a
// sequence (4 key tiles: tokens at positions 5, 70 and 200 use 1, 2 and 4
// splits) and of 40 (10 splits: the combine kernel runs). Twice each: every
// launch leaves its tile counter at zero for the next.
TEST_F(CudaOps, AttentionLinearAddIsAttentionThenLinearAdd) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  Random rng(seed);
  struct Heads {
    int32_t hq, hkv, d;
  };
  for (const Heads& h : {Heads{32, 8, 64}, Heads{32, 8, 128}}) {
    const int64_t width = static_cast<int64_t>(h.hq + 2 * h.hkv) * h.d, hidden = static_cast<int64_t>(h.hq) * h.d;
    const AttentionParams p{h.hq, h.hkv, h.d, 1.0f / std::sqrt(static_cast<float>(h.d))};
    const Linear o =
        gpu->prepare_linear({rng.tensor(DType::bf16, {hidden, hidden}, -0.05f, 0.05f)}, Tensor(), DType::bf16);
    for (int32_t blocks_per_seq : {16, 40}) {
      for (int32_t seqs : {1, 2, 3}) {
        KvCacheShape shape;
        shape.num_layers = 1;
        shape.num_blocks = 3 * blocks_per_seq;
        shape.block_size = 16;
        shape.kv_heads = h.hkv;
        shape.head_dim = h.d;
        shape.dtype = DType::bf16;
        KvCache cache = gpu->create_kv_cache(shape);
        const Shape cache_shape = cache.k[0].shape();
        cache.k[0] = gpu->from_host(bf16(rng, cache_shape));
        cache.v[0] = gpu->from_host(bf16(rng, cache_shape));
        BatchBuilder bb(blocks_per_seq);
        const int32_t positions[] = {5, 70, 200};
        for (int32_t s = 0; s < seqs; ++s) {
          std::vector<int32_t> blocks;
          for (int32_t b = 0; b < blocks_per_seq; ++b) blocks.push_back(s * blocks_per_seq + b);
          bb.add_sequence({1}, positions[s], blocks);
        }
        gpu->begin_step(bb.build(), cache);
        const Tensor qkv = gpu->from_host(bf16(rng, {seqs, width}));
        const Tensor residual = bf16(rng, {seqs, hidden});
        for (int round = 0; round < 2; ++round) {
          SCOPED_TRACE(::testing::Message() << "D " << h.d << ", " << blocks_per_seq << " blocks, " << seqs
                                            << " sequences, round " << round);
          Tensor fused_attn = poisoned(*gpu, DType::bf16, {seqs, hidden});
          Tensor fused = gpu->from_host(residual), scratch = gpu->empty(DType::bf16, {seqs, hidden});
          gpu->attention_linear_add(qkv, p, cache, 0, fused_attn, o, fused, scratch);
          Tensor attn = poisoned(*gpu, DType::bf16, {seqs, hidden});
          gpu->attention(qkv, p, cache, 0, attn);
          Tensor pair = gpu->from_host(residual);
          gpu->linear_add(attn, o, pair, scratch);
          EXPECT_TRUE(same_bits(gpu->to_host(fused_attn), gpu->to_host(attn)));
          EXPECT_TRUE(same_bits(gpu->to_host(fused), gpu->to_host(pair)));
          EXPECT_FALSE(same_bits(gpu->to_host(fused), residual)) << "the projection added nothing";
        }
      }
    }
  }
}

TEST_F(CudaOps, LinearWithNoRowsDoesNothing) {
  Random rng(seed);
  const Linear l = gpu->prepare_linear({rng.tensor(DType::bf16, {16, 64})}, Tensor(), DType::bf16);
  Tensor x = gpu->empty(DType::bf16, {0, 64});
  Tensor out = gpu->empty(DType::f32, {0, 16});
  gpu->linear(x, l, out);
  gpu->synchronize();
}

TEST_F(CudaOps, DummyWeightsAreMadeOnTheGpuWithTheHostValues) {
  LlamaConfig c = dummy_config("tiny");
  for (DType dtype : {DType::bf16, DType::f32}) {
    auto weights = make_dummy_weights(c, dtype, 3);
    for (const char* name : {"model.layers.1.mlp.down_proj.weight", "model.norm.weight"}) {
      const Tensor on_gpu = weights->load_on(name, *gpu);
      EXPECT_EQ(on_gpu.device(), Device::cuda);
      EXPECT_TRUE(same_bits(gpu->to_host(on_gpu), weights->load(name))) << name << " " << dtype_name(dtype);
    }
  }
}

TEST_F(CudaOps, KvCacheIsBf16AndZeroed) {
  KvCacheShape s;
  s.num_layers = 3;
  s.num_blocks = 5;
  s.block_size = 16;
  s.kv_heads = 2;
  s.head_dim = 64;
  s.dtype = DType::bf16;
  KvCache cache = gpu->create_kv_cache(s);
  ASSERT_EQ(cache.k.size(), 3u);
  for (const Tensor& t : cache.v) {
    EXPECT_EQ(t.device(), Device::cuda);
    EXPECT_EQ(t.shape(), (Shape{5, 2, 16, 64}));
    const Tensor h = gpu->to_host(t);
    for (int64_t i = 0; i < h.numel(); ++i) ASSERT_EQ(h.data<uint16_t>()[i], 0);
  }
  s.dtype = DType::f32;
  EXPECT_THROW(gpu->create_kv_cache(s), Error);
}

TEST_F(CudaOps, BeginStepValidatesTheBatch) {
  KvCacheShape s;
  s.num_layers = 1;
  s.num_blocks = 4;
  s.kv_heads = 1;
  s.head_dim = 64;
  KvCache cache = gpu->create_kv_cache(s);
  BatchBuilder bb(2);
  bb.add_sequence({1, 2, 3}, 0, {7});  // block 7 of 4
  EXPECT_THROW(gpu->begin_step(bb.build(), cache), Error);
}

TEST_F(CudaOps, ModelThatDoesNotFitIsAClearError) {
  gpu->check_weights_fit(1000, "small");
  try {
    gpu->check_weights_fit(int64_t{1} << 46, "dummy:enormous");  // 140 TB of bf16
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("does not fit"), std::string::npos) << m;
    EXPECT_NE(m.find("dummy:enormous"), std::string::npos) << m;
    EXPECT_NE(m.find("free"), std::string::npos) << m;
  }
}

TEST_F(CudaOps, KvBlocksForMemoryFraction) {
  const CudaDeviceInfo d = cuda_devices().front();
  const uint64_t block = uint64_t{1} << 20;
  const int32_t blocks = cuda_kv_blocks_for(0.95, block);
  EXPECT_GT(blocks, 0);
  EXPECT_LE(static_cast<uint64_t>(blocks) * block, d.free_bytes);
  EXPECT_LT(cuda_kv_blocks_for(0.95, block, uint64_t{1} << 30), blocks);
  EXPECT_THROW(cuda_kv_blocks_for(0.0, block), Error);
  EXPECT_THROW(cuda_kv_blocks_for(1.5, block), Error);
  EXPECT_THROW(cuda_kv_blocks_for(1e-6, block), Error);  // below what is already in use
}

}  // namespace
}  // namespace flint
