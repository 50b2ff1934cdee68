// Per-op benchmarks of the CPU backend on Llama-3.2-1B shapes (bf16 weights).
//
// Every figure is reported beside its floor: bytes/s (weights, x, out) against
// the host's measured copy bandwidth for the GEMV (decode) cases, FLOP/s against
// the measured OpenBLAS sgemm rate for the GEMM (prefill) cases. The ceilings
// are measured once at start and printed in the context block.
//   ./build/<dir>/bench/bench_cpu_ops --benchmark_filter=Linear
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>
#include <tuple>

#include "backends/backends.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_kernels.h"
#include "core/tensor.h"

namespace flint {
namespace {

// Weight-like bf16 values (|x| in [2^-8, 2^0), random signs and mantissas):
// no zeros or denormals that could make any path faster than real weights.
Tensor bf16_weights(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = Tensor::empty(DType::bf16, {rows, cols});
  auto* p = t.data<uint16_t>();
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const auto r = static_cast<uint32_t>(s >> 33);
    p[i] = static_cast<uint16_t>((r & 0x8000u) | ((0x77u + (r >> 16) % 8u) << 7) | (r & 0x7Fu));
  }
  return t;
}

Tensor f32_activations(int64_t rows, int64_t cols, uint64_t seed) {
  Tensor t = Tensor::empty(DType::f32, {rows, cols});
  uint64_t s = seed + 7;
  for (float& v : t.span<float>()) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<float>(static_cast<int64_t>(s >> 40) % 2001 - 1000) / 1000.0f;
  }
  return t;
}

// Weights are big (the lm_head is 525 MB): make each shape once.
const Tensor& weights_for(int64_t out, int64_t in) {
  static std::map<std::pair<int64_t, int64_t>, Tensor> cache;
  auto it = cache.find({out, in});
  if (it == cache.end()) it = cache.emplace(std::pair{out, in}, bf16_weights(out, in, static_cast<uint64_t>(out + in))).first;
  return it->second;
}

// Args: in_features, out_features, tokens, path (0 auto, 1 gemv, 2 gemm).
void BM_Linear(benchmark::State& state) {
  const int64_t in = state.range(0), out = state.range(1), n = state.range(2);
  const auto path = static_cast<cpu::LinearPath>(state.range(3));
  const Tensor& w = weights_for(out, in);
  const Tensor x = f32_activations(n, in, 3);
  Tensor y = Tensor::empty(DType::f32, {n, out});
  const cpu::WeightRows parts[] = {{w.raw(), DType::bf16, out}};
  for (auto _ : state) {
    cpu::linear(x.data<float>(), n, in, parts, nullptr, y.data<float>(), out, path);
    benchmark::DoNotOptimize(y.raw());
  }
  const double bytes = static_cast<double>(w.nbytes() + x.nbytes() + y.nbytes());
  const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(in) * static_cast<double>(out);
  state.counters["bytes/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

void linear_shapes(benchmark::internal::Benchmark* b) {
  // Llama-3.2-1B: fused qkv, fused gate/up, down, lm_head (tied embedding).
  const std::tuple<int64_t, int64_t> shapes[] = {{2048, 3072}, {2048, 16384}, {8192, 2048}, {2048, 128256}};
  for (auto [in, out] : shapes)
    for (int64_t n : {1, 128}) b->Args({in, out, n, 0});
  // GEMV vs GEMM where they meet (the automatic switch is at kGemvMaxRows).
  for (int64_t n : {2, 4, 6, 8, 12, 16, 24, 32})
    for (int64_t path : {1, 2}) b->Args({2048, 16384, n, path});
  b->ArgNames({"in", "out", "N", "path"})->Unit(benchmark::kMillisecond)->UseRealTime();
}
BENCHMARK(BM_Linear)->Apply(linear_shapes);

// Attention of Llama-3.2-1B (32 q heads, 8 kv heads, head_dim 64) over a bf16
// cache of 16-token blocks. Args: context, new tokens (1 = decode).
void BM_Attention(benchmark::State& state) {
  const int32_t context = static_cast<int32_t>(state.range(0)), fresh = static_cast<int32_t>(state.range(1));
  auto backend = make_cpu_backend();
  KvCacheShape shape;
  shape.num_layers = 1;
  shape.block_size = 16;
  shape.num_blocks = (context + 15) / 16;
  shape.kv_heads = 8;
  shape.head_dim = 64;
  shape.dtype = DType::bf16;
  KvCache cache = backend->create_kv_cache(shape);
  const int64_t width = (32 + 2 * 8) * 64;
  std::vector<int32_t> blocks(static_cast<size_t>(shape.num_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  AttentionParams p;
  p.num_heads = 32;
  p.kv_heads = 8;
  p.head_dim = 64;
  p.scale = 0.125f;
  RopeTables rope{f32_activations(1, 32, 5).reshape({32})};
  {  // fill the cache with the whole context once
    BatchBuilder bb(shape.num_blocks);
    bb.add_sequence(std::vector<int32_t>(static_cast<size_t>(context), 1), 0, blocks);
    backend->begin_step(bb.build(), cache);
    Tensor qkv = f32_activations(context, width, 9);
    backend->rope_and_cache(qkv, rope, p, cache, 0);
  }
  BatchBuilder bb(shape.num_blocks);
  bb.add_sequence(std::vector<int32_t>(static_cast<size_t>(fresh), 1), context - fresh, blocks);
  backend->begin_step(bb.build(), cache);
  const Tensor qkv = f32_activations(fresh, width, 11);
  Tensor out = Tensor::empty(DType::f32, {fresh, 32 * 64});
  for (auto _ : state) {
    backend->attention(qkv, p, cache, 0, out);
    benchmark::DoNotOptimize(out.raw());
  }
  // K and V of every cached position are read once per item; q.k and p.v are
  // 2 * 2 * head_dim FLOPs per (query head, key) pair.
  const double kv_bytes = 2.0 * context * 8 * 64 * 2;
  double pairs = 0;
  for (int32_t t = 0; t < fresh; ++t) pairs += context - fresh + t + 1;
  state.counters["bytes/s"] = benchmark::Counter(kv_bytes, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["FLOP/s"] = benchmark::Counter(4.0 * 64 * 32 * pairs, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Attention)
    ->Args({1024, 1})
    ->Args({128, 128})
    ->ArgNames({"context", "new"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The floor of the GEMV: summing 1 GiB (far beyond L3) split over `threads`
// threads, reading each byte once as the GEMV reads its weights. memcpy's
// figure (the context block) also pays for writes.
void BM_ReadBandwidth(benchmark::State& state) {
  const auto threads = static_cast<size_t>(state.range(0));
  static const Tensor big = bf16_weights(int64_t{1} << 14, int64_t{1} << 15, 17);  // 1 GiB
  const auto* data = reinterpret_cast<const uint64_t*>(big.raw());
  const size_t words = big.nbytes() / 8;
  for (auto _ : state) {
    std::vector<uint64_t> sums(threads);
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t begin = words / threads * t, end = t + 1 == threads ? words : words / threads * (t + 1);
        uint64_t acc[8] = {};
        for (size_t i = begin; i + 8 <= end; i += 8)
          for (size_t j = 0; j < 8; ++j) acc[j] ^= data[i + j];
        sums[t] = acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
      });
    }
    for (std::thread& th : pool) th.join();
    benchmark::DoNotOptimize(sums.data());
  }
  state.counters["bytes/s"] =
      benchmark::Counter(static_cast<double>(big.nbytes()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ReadBandwidth)->Arg(1)->Arg(2)->ArgName("threads")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Swiglu(benchmark::State& state) {
  const int64_t n = state.range(0), f = 8192;
  const Tensor gate_up = f32_activations(n, 2 * f, 13);
  Tensor out = Tensor::empty(DType::f32, {n, f});
  for (auto _ : state) {
    cpu::swiglu(gate_up.data<float>(), n, f, out.data<float>());
    benchmark::DoNotOptimize(out.raw());
  }
  state.counters["elements/s"] =
      benchmark::Counter(static_cast<double>(n * f), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Swiglu)->Arg(1)->Arg(128)->ArgName("N")->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace flint

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const flint::DeviceCeilings c = flint::measure_ceilings(flint::Device::cpu);
  benchmark::AddCustomContext("copy_bandwidth", fmt::format("{:.2f} GB/s ({})", c.copy_bytes_per_s / 1e9, c.copy_method));
  benchmark::AddCustomContext("sgemm_rate", fmt::format("{:.1f} GFLOP/s ({})", c.gemm_flops_per_s / 1e9, c.gemm_method));
  benchmark::AddCustomContext("cpu_isa", flint::cpu::active_isa() == flint::cpu::Isa::avx2 ? "avx2" : "generic");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
