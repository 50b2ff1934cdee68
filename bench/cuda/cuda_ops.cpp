// Per-op benchmarks of the CUDA backend on Llama-3.1-8B shapes (bf16).
//
// Linear: bytes/s of the weight (the whole cost of a decode GEMV) against the
// device copy bandwidth measured at start (context block), for the skinny
// tensor-core GEMV and for cuBLASLt, at 1 to 32 rows: where the two meet is
// CudaBackendOptions::gemv_max_rows. Each timed call reads a different copy of
// the weight (at least 256 MB of copies, five times the 50 MB L2), as a decode
// step reads each layer's weights once, so no figure is an L2 figure.
//   ./build/<dir>/bench/bench_cuda_ops --benchmark_filter=Linear
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "core/tensor.h"

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
