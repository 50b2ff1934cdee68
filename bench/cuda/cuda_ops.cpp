// Per-op benchmarks of the CUDA backend on Llama-3.1-8B shapes (bf16).
//
// Linear: bytes/s of the weight (the whole cost of a decode GEMV) against the
// device copy bandwidth measured at start (context block), for the skinny
// tensor-core GEMV and for cuBLASLt, at 1 to 32 rows: where the two meet is
// CudaBackendOptions::gemv_max_rows. Each timed call reads a different copy of
// the weight (at least 256 MB of copies, five times the 50 MB L2), as a decode
// step reads each layer's weights once, so no figure is an L2 figure.
//   ./build/<dir>/bench/bench_cuda_ops --benchmark_filter=Linear
//
// Attention: one prompt of L tokens attending causally to itself (a prefill
// step: the keys are its own, in the paged cache), FLOP/s counting the causal
// half only: 4 Hq D L (L + 1) / 2 for S = Q K^T and O = P V. Heads of the 8B
// (D 128) and the 1B (D 64), both 32 q / 8 kv. FLINT_CUDA_ATTENTION=mma runs
// the mma.sync kernel where the wgmma one would run (sm_90).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "core/tensor.h"
#include "ops/batch.h"

namespace flint {
namespace {

Backend& backend(int64_t gemv_max_rows) {
  static std::unique_ptr<Backend> gemv, cublas;
  std::unique_ptr<Backend>& b = gemv_max_rows > 0 ? gemv : cublas;
  if (!b) b = make_cuda_backend({.gemv_max_rows = static_cast<int32_t>(gemv_max_rows)});
  return *b;
}

// Args: out_features, in_features, rows of x, path (0 GEMV, 1 cuBLASLt), f32 output.
void BM_Linear(benchmark::State& state) {
  if (cuda_devices().empty()) {
    state.SkipWithError(("no GPU: " + cuda_unavailable_reason()).c_str());
    return;
  }
  const int64_t out = state.range(0), in = state.range(1), n = state.range(2);
  Backend& b = backend(state.range(3) == 0 ? 32 : 0);
  const DType out_dtype = state.range(4) ? DType::f32 : DType::bf16;
  const uint64_t weight_bytes = static_cast<uint64_t>(out * in) * 2;
  const size_t copies = std::max<size_t>(1, (size_t{256} << 20) / weight_bytes + 1);
  std::vector<Linear> ws;
  for (size_t i = 0; i < copies; ++i)
    ws.push_back(b.prepare_linear({b.dummy_weight(DType::bf16, {out, in}, 100 + i, false)}, Tensor(), DType::bf16));
  const Tensor x = b.dummy_weight(DType::bf16, {n, in}, 7, false);
  Tensor y = b.empty(out_dtype, {n, out});
  size_t next = 0;
  const int reps = 20;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) b.linear(x, ws[next++ % copies], y);
    b.synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  state.counters["weight_bytes/s"] =
      benchmark::Counter(static_cast<double>(weight_bytes), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n * out * in),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void linear_shapes(benchmark::internal::Benchmark* b) {
  // Llama-3.1-8B: fused qkv, o, fused gate/up, down; lm_head with f32 logits.
  const int64_t shapes[][2] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
  for (const auto& s : shapes)
    for (int64_t n : {1, 2, 4, 8, 16, 32})
      for (int64_t path : {0, 1}) b->Args({s[0], s[1], n, path, 0});
  for (int64_t n : {1, 8})
    for (int64_t path : {0, 1}) b->Args({128256, 4096, n, path, 1});
  // 0.05 s of GPU time per case: ~1 s of wall time (each iteration is 20 calls).
  b->ArgNames({"out", "in", "N", "cublas", "f32"})->Unit(benchmark::kMicrosecond)->UseManualTime()->MinTime(0.05);
}
BENCHMARK(BM_Linear)->Apply(linear_shapes);

// Args: prompt length L, head_dim D.
void BM_Attention(benchmark::State& state) {
  if (cuda_devices().empty()) {
    state.SkipWithError(("no GPU: " + cuda_unavailable_reason()).c_str());
    return;
  }
  const int32_t L = static_cast<int32_t>(state.range(0)), D = static_cast<int32_t>(state.range(1));
  const int32_t hq = 32, hkv = 8, block = 16;
  Backend& b = backend(32);
  KvCacheShape shape;
  shape.num_layers = 1;
  shape.num_blocks = (L + block - 1) / block;
  shape.block_size = block;
  shape.kv_heads = hkv;
  shape.head_dim = D;
  shape.dtype = DType::bf16;
  KvCache cache = b.create_kv_cache(shape);
  std::vector<int32_t> blocks(static_cast<size_t>(shape.num_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  BatchBuilder bb(shape.num_blocks);
  bb.add_sequence(std::vector<int32_t>(static_cast<size_t>(L), 1), 0, blocks);
  const Batch batch = bb.build();
  const AttentionParams p{hq, hkv, D, 1.0f / std::sqrt(static_cast<float>(D))};
  Tensor inv_freq = Tensor::empty(DType::f32, {D / 2});
  for (int32_t i = 0; i < D / 2; ++i) inv_freq.data<float>()[i] = std::pow(500000.0f, -2.0f * i / D);
  const RopeTables rope{b.from_host(inv_freq)};
  Tensor qkv = b.dummy_weight(DType::bf16, {L, static_cast<int64_t>(hq + 2 * hkv) * D}, 11, false);
  Tensor out = b.empty(DType::bf16, {L, static_cast<int64_t>(hq) * D});
  b.begin_step(batch, cache);
  b.rope_and_cache(qkv, rope, p, cache, 0);  // the keys and values, rotated, into the cache
  const int reps = 20;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) b.attention(qkv, p, cache, 0, out);
    b.synchronize();
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * hq * D * (static_cast<double>(L) * (L + 1) / 2),
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Attention)
    ->ArgsProduct({{512, 2048, 8192}, {128, 64}})
    ->ArgNames({"L", "D"})
    ->Unit(benchmark::kMicrosecond)
    ->UseManualTime()
    ->MinTime(0.05);

}  // namespace
}  // namespace flint

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!flint::cuda_devices().empty()) {
    const flint::DeviceCeilings c = flint::measure_cuda_ceilings();
    benchmark::AddCustomContext("copy_bandwidth",
                                fmt::format("{:.1f} GB/s ({})", c.copy_bytes_per_s / 1e9, c.copy_method));
    benchmark::AddCustomContext("gemm_rate", fmt::format("{:.1f} TFLOP/s ({})", c.gemm_flops_per_s / 1e12,
                                                         c.gemm_method));
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
