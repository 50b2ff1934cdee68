// backends/cuda/cuda_attention.h — RoPE + paged K/V write, and attention over
// the paged cache, as kernel launchers for the CUDA backend.
//
// Contract:
// - Layouts are those of ops/backend.h and ops/batch.h: qkv is [T, (Hq + 2 Hkv) * D]
//   (q heads, then k heads, then v heads, each D wide); the cache of one layer is
//   k, v: [num_blocks, Hkv, block_size, D]; out is [T, Hq * D]. qkv, the cache and
//   out share one element type, bf16 or f16; arithmetic is f32. Every pointer
//   is 16-byte aligned (kernels move 16-byte vectors).
// - StepArrays are device copies of the step's Batch arrays, made by the
//   backend's begin_step (already validated on the host).
// - Launch configuration depends only on the shapes and on num_tokens,
//   num_seqs, max_query_len and max_blocks_per_seq (and the device's SM
//   count) — never on the values in the arrays — so a decode step can be
//   captured once in a CUDA graph and replayed with new positions, lengths and
//   block tables. The arrays must satisfy Batch::validate(); in particular
//   positions run consecutively within a sequence and every position's block
//   is in the table.
// - Launch errors throw flint::Error (FLINT_CUDA_CHECK_LAUNCH), and so do shapes
//   or dtypes the kernels do not support.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace flint::cuda {

struct StepArrays {
  const int32_t* positions = nullptr;     // [T] position of each token in its sequence
  const int32_t* token_seq = nullptr;     // [T] sequence index of each token
  const int32_t* query_starts = nullptr;  // [S + 1]
  const int32_t* context_lens = nullptr;  // [S] cached positions once this step has run
  const int32_t* block_tables = nullptr;  // [S, max_blocks_per_seq], -1 past the used blocks
  int32_t num_tokens = 0;
  int32_t num_seqs = 0;
  int32_t max_query_len = 0;       // max over sequences of this step's tokens
  int32_t max_blocks_per_seq = 0;  // row length of block_tables (a capacity, not a value)
};

struct AttentionShape {
  int32_t num_heads = 0;  // Hq
  int32_t kv_heads = 0;   // Hkv; Hq % Hkv == 0
  int32_t head_dim = 0;   // D: 64 or 128
  int32_t block_size = 16;
  float scale = 0.0f;     // softmax scale, 1/sqrt(D)
};

// Rotates the q and k heads of qkv in place (HF rotate_half: pairs (i, i + D/2),
// angle = float(position) * inv_freq[i] in f32, its cos/sin rounded once from
// double, products and sums rounded as the CPU backend rounds them, so both
// write the same cache bits) and writes the rotated k and the v of every token
// into the cache at its position. head_dim: a multiple of 16, at most 256.
void launch_rope_and_cache(void* qkv, DType dtype, const float* inv_freq, const StepArrays& step,
                           const AttentionShape& shape, void* k_cache, void* v_cache, cudaStream_t stream);

// The angles of launch_rope_and_cache for every token of the step, once:
// table [num_tokens, 2, head_dim / 2] f32, cos then sin (the fused q/k/v GEMV
// of cuda_kernels.h reads it instead of working them out per layer).
void launch_rope_table(const float* inv_freq, int head_dim, const int32_t* positions, int32_t num_tokens,
                       float* table, cudaStream_t stream);

// Split-KV partials that launch_attention left for the caller's kernel to
// combine (its `deferred` argument). For token t, q head h, element d:
//   out[t, h D + d] = sum_s w_s part_o[s][t Hq + h][d] / sum_s w_s,
//   w_s = exp2(part_lse[s][t Hq + h] - max_s part_lse[s][t Hq + h]),
// over the splits s <= position(t) / keys_per_split (those that start at or
// before the token's position), in that order, each output rounded once:
// the combine kernel's arithmetic, so a caller that keeps the order gets its bits.
struct SplitKvPartials {
  const float* part_o = nullptr;    // [num_splits][num_tokens * num_heads][head_dim]
  const float* part_lse = nullptr;  // [num_splits][num_tokens * num_heads]
  const int32_t* positions = nullptr;
  int32_t num_tokens = 0, num_heads = 0, head_dim = 0;
  int32_t num_splits = 0;  // 0: launch_attention combined (or did not split) and wrote out
  int32_t keys_per_split = 0;
};
inline constexpr int32_t kMaxDeferredSplits = 8;

// Causal attention of every token's q heads over its sequence's cached
// positions [0, position]; GQA without repeating K/V. A tensor-core flash
// kernel whose CTA holds the q heads of one kv head for a few tokens, so each
// K/V tile is read once per kv head for the whole query group: 128 rows per
// CTA for prefill-shaped steps, 16 for decode-shaped ones (max_query_len <=
// 4), with the keys split over several CTAs (split-KV) when the grid would not
// fill the GPU. Prefill-shaped steps run on warpgroup MMAs (wgmma) on sm_90,
// on mma.sync elsewhere (and with FLINT_CUDA_ATTENTION=mma); decode-shaped ones
// on mma.sync. head_dim 64 or 128; any block_size.
// `workspace` holds split-KV partials: at least attention_workspace_bytes()
// (0 when the step needs no split), and must not be shared with a concurrent
// launch. deferred (optional): where a bf16 decode step splits its keys in 2
// to kMaxDeferredSplits, the combine is not launched and `out` is not
// written; *deferred describes the partials in `workspace`, which the
// caller's next kernel combines (the pipelined GEMV of cuda_kernels.h,
// SkinnyGemm::merge). Otherwise deferred->num_splits = 0 and `out` is written.
void launch_attention(const void* qkv, DType dtype, const StepArrays& step, const AttentionShape& shape,
                      const void* k_cache, const void* v_cache, void* out, void* workspace,
                      size_t workspace_bytes, cudaStream_t stream, SplitKvPartials* deferred = nullptr);
size_t attention_workspace_bytes(const StepArrays& step, const AttentionShape& shape);

}  // namespace flint::cuda
