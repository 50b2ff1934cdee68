// backends/cpu/cpu_kernels.h — the CPU backend's kernels as plain functions on
// raw pointers, so that tests and benchmarks can call each path directly.
//
// Contract:
// - Every kernel reads f32 activations and weights in f32, bf16 or f16, and
//   accumulates in f32. Kernels never allocate per call beyond thread-local
//   scratch that they reuse, and parallelise with OpenMP internally.
// - Two instruction sets: `avx2` (AVX2 + FMA + F16C, compiled per function with
//   target attributes) and `generic` (portable C++). The active one is the
//   detected one unless a test overrides it; the two agree within f32
//   rounding (the avx2 kernels fuse multiply-adds).
// - Batch invariance: within one instruction set, a row's result depends only
//   on its own inputs, never on how many rows share the call, which path
//   (GEMV/GEMM) runs them, or which other rows share an attention tile. Every
//   linear output is summed in one order (cpu_linear.cpp) and attention pads
//   its key blocks instead of changing its reduction. So the engine's outputs,
//   logprobs included, are bit for bit the same alone or batched.
// - Internal to backends/cpu; the Backend interface is the public API.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "core/dtype.h"
#include "ops/backend.h"

namespace flint::cpu {

enum class Isa { generic, avx2 };
Isa detected_isa();  // what this CPU can run
Isa active_isa();    // detected_isa() unless overridden
// Forces a path (tests run the portable code on an AVX2 machine); nullopt
// returns to detection. Asking for avx2 where the CPU lacks it throws.
void set_isa_override(std::optional<Isa> isa);

// One row block of a Linear's weight: `rows` rows of `in_features` elements,
// row-major and contiguous, in f32, bf16 or f16.
struct WeightRows {
  const void* data = nullptr;
  DType dtype = DType::f32;
  int64_t rows = 0;
};

// The paths give bit-identical results; they differ in speed only.
enum class LinearPath {
  automatic,  // GEMV for a few rows of x, GEMM beyond
  gemv,       // streams each weight once per call, x rows in registers
  gemm,       // cache-blocked: weight blocks stay in L2 while tokens go by
};
// Rows of x up to which `automatic` picks the GEMV. Measured on Zen 3
// (bench_cpu_ops, 2048 -> 16384 bf16): the GEMV is ahead up to 24 rows and
// level at 32, where the GEMM's per-chunk widening of W starts to pay.
inline constexpr int64_t kGemvMaxRows = 32;

// out[n, c0 + r] = sum_k x[n, k] * part[r, k] + bias[c0 + r], where c0 is the
// sum of the rows of the parts before this one.
//   x:    [n, k] f32, row stride k
//   out:  [n, ldo] f32; columns [0, sum rows) are written
//   bias: [sum rows] f32 or null
void linear(const float* x, int64_t n, int64_t k, std::span<const WeightRows> parts, const float* bias, float* out,
            int64_t ldo, LinearPath path = LinearPath::automatic);

// The step's view of the batch that the attention kernels need.
struct StepView {
  const Batch* batch = nullptr;
  const int32_t* token_seq = nullptr;  // [T] sequence of each token
  int32_t block_size = 0;
};

// Rotates q and k of every token in place and stores k, v into the cache
// tensors (each [num_blocks, kv_heads, block_size, head_dim], f32/bf16/f16).
//   qkv: [T, (Hq + 2 Hkv) * D] f32; inv_freq: [D / 2] f32
void rope_and_cache(float* qkv, const float* inv_freq, const AttentionParams& p, const StepView& step,
                    const Tensor& k_cache, const Tensor& v_cache);

// Causal attention over the paged cache (see ops/backend.h).
//   qkv: [T, (Hq + 2 Hkv) * D] f32 (q read); out: [T, Hq * D] f32
void attention(const float* qkv, const AttentionParams& p, const StepView& step, const Tensor& k_cache,
               const Tensor& v_cache, float* out);

// out = silu(gate) * up; gate_up: [n, 2f], out: [n, f].
void swiglu(const float* gate_up, int64_t n, int64_t f, float* out);

}  // namespace flint::cpu
