// backends/cuda/cuda_attention_kernels.cuh — what the two prefill/decode
// attention kernels share (cuda_attention.cu: mma.sync, any sm_80+ GPU;
// cuda_attention_wgmma.cu: wgmma, sm_90a prefill): their arguments, how a CTA
// finds its rows, and the wgmma kernel's launcher. Internal to backends/cuda.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace flint::cuda::detail {

struct FlashArgs {
  const void* qkv;      // [T, (Hq + 2 Hkv) * D]
  const void* k_cache;  // [num_blocks, Hkv, block_size, D]
  const void* v_cache;  // same
  void* out;            // [T, Hq * D], written when num_splits == 1
  float* part_o;        // [num_splits, T, Hq, D] normalised partial outputs (num_splits > 1)
  float* part_lse;      // [num_splits, T, Hq] their log2-sum-exp2 of scaled scores
  const int32_t* positions;
  const int32_t* query_starts;
  const int32_t* block_tables;
  int num_tokens, num_seqs, max_blocks_per_seq;
  int num_heads, kv_heads, group, block_size;
  int tiles_per_seq;  // > 0: tile t is sequence t / tiles_per_seq's; 0: found by a scan
  int keys_per_split, num_splits;  // split s covers keys [s, s + 1) * keys_per_split
  float scale_log2;  // softmax scale * log2(e)
  // combine_splits_kernel lets the next kernel launch before it waits: set
  // when that kernel (the o projection of these tokens) is the pipelined GEMV
  // (docs/CUDA.md, "Programmatic launch").
  bool combine_triggers_early;
};

// Finds which sequence the CTA's tile belongs to, tiles(s) = ceil(n_s g / M)
// numbered in sequence order, by a warp scan over query_starts (every warp runs
// it; no shared memory). The next 32 sequences' lengths are loaded before the
// current ones are scanned, so a long batch costs one memory latency, not one
// per 32 sequences.
__device__ inline bool find_tile(const int32_t* query_starts, int num_seqs, int group, int rows_per_tile, int tile,
                                 int& seq, int& local) {
  const int lane = threadIdx.x & 31;
  const auto length = [&](int s) { return s < num_seqs ? query_starts[s + 1] - query_starts[s] : 0; };
  int base = 0;
  int n_next = length(lane);
  for (int s0 = 0; s0 < num_seqs; s0 += 32) {
    const int n = n_next;
    if (s0 + 32 < num_seqs) n_next = length(s0 + 32 + lane);
    const int count = (n * group + rows_per_tile - 1) / rows_per_tile;
    int incl = count;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int v = __shfl_up_sync(0xffffffffu, incl, o);
      if (lane >= o) incl += v;
    }
    const bool mine = tile >= base + incl - count && tile < base + incl;
    const unsigned ballot = __ballot_sync(0xffffffffu, mine);
    if (ballot != 0) {
      const int src = __ffs(ballot) - 1;
      seq = s0 + src;
      local = tile - base - __shfl_sync(0xffffffffu, incl - count, src);
      return true;
    }
    base += __shfl_sync(0xffffffffu, incl, 31);
  }
  return false;
}

// The query rows and keys of a CTA. Rows are (token, q head of the kv head's
// group) pairs of one sequence in token order: row R is token R / g, q head
// kvh * g + R % g.
struct CtaRows {
  int seq = 0, kvh = 0, group = 1;
  int q0 = 0;        // the sequence's first token in the step
  int row0 = 0;      // the CTA's first row within the sequence's rows
  int rows = 0;      // how many of its rows exist (<= rows_per_tile)
  int num_keys = 0;  // keys any row may see: [0, the last row's position]
  int first_new_key = 0;  // keys before it were cached by earlier steps

  // Row r of the CTA (r < rows): its token in the step, its q head, and where
  // its q vector starts in qkv (elements).
  __device__ int token(int r) const { return q0 + (row0 + r) / group; }
  __device__ int head(int r) const { return kvh * group + (row0 + r) % group; }
  __device__ int64_t q_offset(const FlashArgs& a, int head_dim, int r) const {
    return static_cast<int64_t>(token(r)) * (a.num_heads + 2 * a.kv_heads) * head_dim +
           static_cast<int64_t>(head(r)) * head_dim;
  }
};

// Heavier tiles (later in a sequence) are numbered last: start them first,
// the tile of every kv head before the next lighter tile. CTAs are issued in
// blockIdx order, so this is longest-first over the whole grid; with the kv
// head as a grid dimension of its own, the last heads' heavy causal tiles
// started last and left SMs idle for ~30% of an 8B prefill layer.
// False: the CTA has no rows (a tile slot past its sequence).
__device__ inline bool locate_cta_rows(const FlashArgs& a, int rows_per_tile, CtaRows& c) {
  const int order = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int tile = order / a.kv_heads;
  c.kvh = order % a.kv_heads;
  c.group = a.group;
  int local = 0;
  if (a.tiles_per_seq > 0) {  // a fixed number of tile slots per sequence, some unused
    c.seq = tile / a.tiles_per_seq;
    local = tile % a.tiles_per_seq;
  } else if (!find_tile(a.query_starts, a.num_seqs, a.group, rows_per_tile, tile, c.seq, local)) {
    return false;
  }
  c.q0 = a.query_starts[c.seq];
  const int seq_rows = (a.query_starts[c.seq + 1] - c.q0) * a.group;
  c.row0 = local * rows_per_tile;
  if (c.row0 >= seq_rows) return false;
  c.rows = min(rows_per_tile, seq_rows - c.row0);
  // Positions rise by one per token within a sequence: the tile's last row has
  // the largest, and keys [0, last_pos] are all that any row may see.
  c.num_keys = a.positions[c.token(c.rows - 1)] + 1;
  // The kernel before attention (the q/k/v projection) writes only the keys
  // from the sequence's first query on.
  c.first_new_key = a.positions[c.q0];
  return true;
}

// The prefill kernel on tensor-core warpgroups (sm_90a): 128 rows per CTA,
// 128-key tiles; key splits of keys_per_split, a multiple of kWgmmaKeyTile.
inline constexpr int kWgmmaRows = 128, kWgmmaKeyTile = 128;
// Whether launch_attention runs prefill-shaped steps on it: an sm_90 device
// and FLINT_CUDA_ATTENTION not "mma" (A/B runs, tests; read at each call).
bool use_wgmma_attention();
// T: __nv_bfloat16 or __half; head_dim 64 or 128. grid: as the mma.sync kernel's.
template <typename T, int D>
void launch_wgmma_attention(const FlashArgs& args, dim3 grid, cudaStream_t stream);

}  // namespace flint::cuda::detail
