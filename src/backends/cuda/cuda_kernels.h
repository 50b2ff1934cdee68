// backends/cuda/cuda_kernels.h — launchers of the CUDA kernels, callable from
// host C++. Each checks its launch and throws flint::Error on failure.
//
// Conventions: activations are bf16, row-major and contiguous ([rows, cols]
// with row stride cols); norm weights and biases are f32; arithmetic is f32
// and every output is rounded once. Counts of zero launch nothing.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backends/cuda/cuda_attention.h"
#include "core/dtype.h"
#include "ops/sampling.h"

namespace flint::cuda {

// out[i] = dummy_weight_value(key, i, is_norm) in f32, bf16 or f16.
void launch_fill_dummy(void* out, DType dtype, uint64_t n, uint64_t key, bool is_norm, cudaStream_t stream);
// dst = src with 16-byte accesses (bytes a multiple of 16); measures bandwidth.
void launch_copy16(const void* src, void* dst, size_t bytes, int blocks, cudaStream_t stream);

// dst[i] = src[i] rounded to nearest even; src f32, f16 or bf16, dst bf16 or f32.
void launch_convert(const void* src, DType src_dtype, void* dst, DType dst_dtype, uint64_t n, cudaStream_t stream);

// out[i, :] = table[ids[i], :]    table: [*, h] bf16; ids: [rows] (device, in range); out: [rows, h] bf16
// (the embedding with the step's token ids, and gather_rows with row indices).
void launch_gather_rows(const void* table, const int32_t* ids, int64_t rows, int64_t h, void* out,
                        cudaStream_t stream);
// The embedding of a step whose ids may come from the last draw
// (Batch::token_from_sample): row i gathers samples[from_sample[i]].id where
// from_sample[i] >= 0 (a failed draw, or an id outside [0, vocab): row 0),
// else ids[i]. from_sample: [rows] on the device; samples: the draw's results.
void launch_embedding(const void* table, const int32_t* ids, const int32_t* from_sample, const RowSample* samples,
                      int32_t vocab, int64_t rows, int64_t h, void* out, cudaStream_t stream);

// HF LlamaRMSNorm over rows of h, one CTA per row, the row held in registers:
//   out = w * (x * rsqrt(mean(x^2) + eps))     x, out: [n, h] bf16; w: [h] f32
void launch_rms_norm(const void* x, const float* w, int64_t n, int64_t h, float eps, void* out, cudaStream_t stream);

// out = silu(gate) * up        gate_up: [n, 2f] bf16 (gate first); out: [n, f] bf16
void launch_swiglu(const void* gate_up, int64_t n, int64_t f, void* out, cudaStream_t stream);

// --- linear: out[n, o] = sum_k x[n, k] w[o, k] + bias[o] ---------------------------
//   x: [n, in] bf16; w: [out, in] bf16; bias: [out] f32 or null; out: [n, out] bf16 or f32.

// Weight-streaming GEMV for a few rows of x on the tensor cores: every weight
// byte is read once with 16-byte loads; see cuda_gemv_kernels.cu.
inline constexpr int64_t kSkinnyMaxRows = 32;
// Whether the skinny kernel takes these operands: n <= kSkinnyMaxRows,
// in % 8 == 0 and x, w 16-byte aligned (rows are then 16-byte aligned too).
bool skinny_gemm_supports(const void* x, const void* w, int64_t n, int64_t in_features);
enum class SkinnyEpilogue {
  store,       // out = y
  accumulate,  // out = out + y, rounded once (the residual add)
  swiglu,      // w: [2 out_features, in] (gate rows first), bias [2 out_features] or null;
               // out [n, out_features] bf16 = silu(gate) * up, bit for bit store (bf16) then launch_swiglu
  rope_cache,  // out is qkv [n = T, (Hq + 2 Hkv) D] bf16: store (bf16), then RoPE and the K/V cache
               // write of launch_rope_and_cache, bit for bit, in the epilogue (SkinnyGemm::rope)
};
// rope_cache's operands: those of launch_rope_and_cache (step.num_tokens == n),
// with the step's cos/sin table in place of inv_freq.
struct SkinnyRope {
  const float* table = nullptr;  // [n, 2, D / 2] f32: launch_rope_table of the step
  StepArrays step;
  AttentionShape shape;              // head_dim a multiple of 16, at most 256
  void* k_cache = nullptr;           // one layer's [num_blocks, Hkv, block_size, D] bf16
  void* v_cache = nullptr;
};
// y = x W^T + bias, then the epilogue.
struct SkinnyGemm {
  const void* x = nullptr;  // [n, in_features] bf16
  int64_t n = 0;
  const void* w = nullptr;  // [out_features, in_features] bf16 (swiglu: twice the rows)
  const float* bias = nullptr;
  void* out = nullptr;  // [n, out_features]; bf16, or f32 for store and accumulate
  DType out_dtype = DType::bf16;
  int64_t out_features = 0;
  int64_t in_features = 0;
  SkinnyEpilogue epilogue = SkinnyEpilogue::store;
  SkinnyRope rope;  // rope_cache only
  // Two zeroed unsigned ints no launch that may overlap this one uses
  // (LinearRunner): the pipelined kernel's CTAs claim tiles from it and
  // leave it zeroed. Null (or fewer tiles than half the SMs, or
  // FLINT_CUDA_TILES=dealt): tiles are dealt in turn.
  unsigned* tile_counter = nullptr;
  // merge.num_splits > 0: x is the output of a launch_attention that left
  // its split-KV partials for this GEMV (SplitKvPartials). Each CTA combines
  // them into shared memory and reads x from there; CTA 0 also writes them
  // to x (the attention's output, for any later reader). Only the
  // accumulate epilogue, where skinny_gemm_merges() holds.
  SplitKvPartials merge;
};
// Whether the pipelined GEMV can combine an attention's split-KV partials
// for n rows of in_features (x, bf16, held in shared memory: n * in_features
// <= 8192 elements).
bool skinny_gemm_merges(int64_t n, int64_t in_features);
// The operands must satisfy skinny_gemm_supports().
void launch_skinny_gemm(const SkinnyGemm& gemm, cudaStream_t stream);
// Whether n rows go through the pipelined kernel (sm_90; n <= 8): a persistent
// CTA per SM, so a kernel before it gains from triggering its launch early.
bool skinny_gemm_pipelined(int64_t n);
// Any shape and alignment, one warp per output element: the fallback when
// neither the skinny kernel nor cuBLASLt takes the operands; accumulate: out += y.
void launch_linear_fallback(const void* x, int64_t n, const void* w, const float* bias, void* out, DType out_dtype,
                            int64_t out_features, int64_t in_features, bool accumulate, cudaStream_t stream);
// out[i, o] += bias[o]          out: [n, out_features] bf16 or f32
void launch_add_bias(void* out, DType out_dtype, const float* bias, int64_t n, int64_t out_features,
                     cudaStream_t stream);

// Draws one token per spec from `logits` (f32 [R, vocab], rows modified in
// place by the penalties) as ops/sampling.h describes: a pass over slices of
// each row by many CTAs (checks, argmax, log-normaliser), then one CTA per spec.
// specs, penalties: device copies; penalty_raw: device scratch, one float per
// penalty; workspace: device scratch of sample_rows_workspace_bytes(num_specs)
// bytes, 4-byte aligned (the slices' partial results); out: [num_specs] on the device.
size_t sample_rows_workspace_bytes(int32_t num_specs);
void launch_sample_rows(float* logits, int32_t vocab, const RowSamplingSpec* specs, int32_t num_specs,
                        const PenalizedToken* penalties, float* penalty_raw, void* workspace, RowSample* out,
                        cudaStream_t stream);

}  // namespace flint::cuda
