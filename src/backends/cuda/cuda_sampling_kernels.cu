// Sampling on the GPU (ops/sampling.h), so that only ids and logprobs leave
// the device. Two kernels:
// - row_stats_kernel: kStatChunks CTAs per logits row, each over a contiguous
//   slice of ids: its first NaN and first +inf id, its argmax (lowest id on
//   ties), its max m and sum of exp(v - m). This is all greedy decoding needs
//   of the row. One CTA per row read a 128k-token f32 row (513 KB) at what a
//   single SM can pull, ~25 us a decode step on the H100; in 64 slices, each
//   CTA has its whole ~8 KB in flight at once.
// - sample_rows_kernel: one CTA per row merges its row's slices in a fixed
//   order (the same bits every run) into the checks, the raw argmax and the
//   log-normaliser, then does the rest of the pipeline — penalties, then
//   greedy argmax or top-k / top-p / min-p and the draw. No sort: top-k and
//   top-p find their cut with a 4-pass radix select over the order-preserving
//   bits of the logits (8 bits a pass, a 256-bin shared histogram of counts for
//   top-k, of probability mass for top-p).
//
// Determinism: every thread owns a contiguous run of ids, so id-ordered work
// (ties broken by lowest id, the draw walking ids upwards) is a block scan.
// Probability mass is summed as 46-bit fixed point in 64-bit integers: sums are
// exact and independent of the order atomics land in, so one seed gives the
// same token on every run. (Weights below 2^-46 of the most probable token,
// for Llama 3's vocabulary, count as zero: such a token is never drawn.)
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_launch.cuh"

namespace flint::cuda {
namespace {

constexpr int kThreads = 1024;  // kThreads / 32 == 32 warps: one level of warp reduction
constexpr int kWarps = kThreads / 32;
// row_stats_kernel: CTAs per row (a 128k-token row: 2004 ids, 8 KB, a CTA)
// and threads per CTA, each with kStatLoads 16-byte loads in flight, so that
// such a row's slice is read in one round.
constexpr int kStatChunks = 64;
constexpr int kStatThreads = 256;
constexpr int kStatWarps = kStatThreads / 32;
constexpr int kStatLoads = 2;
static_assert(kStatChunks % 32 == 0, "the merge gives each lane of one warp the same number of slices");
constexpr float kNegInf = -INFINITY;

// Weights w in [0, 1] as fixed point with 63 - bit_width(vocab) fractional
// bits, so that a whole row's sum stays below 2^63 (46 bits for Llama 3).
__device__ __forceinline__ uint64_t quantize_mass(float w, double scale) {
  return __double2ull_rn(static_cast<double>(w) * scale);
}

// Larger float -> larger key (for every non-NaN float, -inf included).
__device__ __forceinline__ uint32_t order_key(float v) {
  const uint32_t b = __float_as_uint(v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

struct Best {
  float value;
  int32_t id;
};
// Higher value wins; the lower id on equal values.
__device__ __forceinline__ Best better(Best a, Best b) {
  return (b.value > a.value || (b.value == a.value && b.id < a.id)) ? b : a;
}

// Block-wide reductions and scans over all kThreads threads; every thread gets
// the result. `scratch` is per call site-free: each call syncs before reuse.
struct Scratch {
  float f[kWarps];
  int32_t i[kWarps];
  uint64_t u[kWarps];
};

template <typename T, typename Op>
__device__ T warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// `slots` (one per warp, in Scratch) is reused by every call: the first sync
// waits for the previous call's readers.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T* slots) {
  v = warp_reduce(v, op);
  __syncthreads();
  if (threadIdx.x % 32 == 0) slots[threadIdx.x / 32] = v;
  __syncthreads();
  return warp_reduce(slots[threadIdx.x % 32], op);
}

__device__ float block_max(float v, Scratch& s) {
  return block_reduce(v, [](float a, float b) { return fmaxf(a, b); }, s.f);
}

__device__ Best warp_best(Best b) {
  for (int o = 16; o > 0; o >>= 1) {
    const Best other{__shfl_xor_sync(0xffffffffu, b.value, o), __shfl_xor_sync(0xffffffffu, b.id, o)};
    b = better(b, other);
  }
  return b;
}

__device__ Best block_best(Best b, Scratch& s) {
  b = warp_best(b);
  __syncthreads();
  if (threadIdx.x % 32 == 0) {
    s.f[threadIdx.x / 32] = b.value;
    s.i[threadIdx.x / 32] = b.id;
  }
  __syncthreads();
  return warp_best(Best{s.f[threadIdx.x % 32], s.i[threadIdx.x % 32]});
}

// Exclusive prefix sum in thread order; `total` gets the sum of all.
__device__ uint64_t block_exclusive_scan(uint64_t v, uint64_t& total, Scratch& s) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  uint64_t inclusive = v;
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t up = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += up;
  }
  __syncthreads();
  if (lane == 31) s.u[warp] = inclusive;
  __syncthreads();
  uint64_t warp_total = s.u[lane];
  uint64_t warp_inclusive = warp_total;
  for (int o = 1; o < 32; o <<= 1) {
    const uint64_t up = __shfl_up_sync(0xffffffffu, warp_inclusive, o);
    if (lane >= o) warp_inclusive += up;
  }
  total = __shfl_sync(0xffffffffu, warp_inclusive, 31);
  const uint64_t warp_before = __shfl_sync(0xffffffffu, warp_inclusive - warp_total, warp);
  return warp_before + inclusive - v;
}

__device__ __forceinline__ void shared_add(uint32_t* at, uint32_t v) { atomicAdd(at, v); }
__device__ __forceinline__ void shared_add(uint64_t* at, uint64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(at), static_cast<unsigned long long>(v));
}

// A thread's run of consecutive adds to one histogram bin, added at once when
// the bin changes. Logits of neighbouring ids share their top key bits, so in
// the first radix pass nearly every element lands in a handful of bins: one
// shared atomic per element would serialise the whole row on those addresses.
template <typename T>
struct BinRun {
  T* hist;
  uint32_t bin = 0xffffffffu;
  T sum = 0;
  __device__ explicit BinRun(T* h) : hist(h) {}
  __device__ void add(uint32_t b, T v) {
    if (b != bin) {
      flush();
      bin = b;
    }
    sum += v;
  }
  __device__ void flush() {
    if (sum != 0) shared_add(&hist[bin], sum);
    sum = 0;
  }
};

// f(i, x[i]) for every id of the row, the CTA's loads coalesced (16 bytes a
// thread where the row allows): for a pass whose result does not depend on
// which thread saw which id (the argmax after penalties, with the lowest-id tie
// rule). A thread owning a contiguous run of ~125 ids instead makes every warp
// load touch 32 cache lines; greedy took ~75 us a row so.
template <typename F>
__device__ __forceinline__ void for_each_coalesced(const float* x, int32_t vocab, F&& f) {
  if (vocab % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    for (int32_t j = static_cast<int32_t>(threadIdx.x); j < vocab / 4; j += kThreads) {
      const float4 v = x4[j];
      f(4 * j, v.x);
      f(4 * j + 1, v.y);
      f(4 * j + 2, v.z);
      f(4 * j + 3, v.w);
    }
  } else {
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < vocab; i += kThreads) f(i, x[i]);
  }
}

// What step 1 needs of a slice of a row's ids. best and sum are over the
// values that are neither NaN nor +inf: best is their max (lowest id on ties;
// {-inf, vocab} when there is none) and sum is sum exp(v - best.value), 0 when
// best.value is -inf (exp(-inf - -inf) would be NaN).
struct RowStats {
  int32_t nan_id;  // the first NaN's id; vocab when there is none
  int32_t inf_id;  // the first +inf's id; vocab when there is none
  Best best;
  float sum;
};

__device__ __forceinline__ RowStats no_stats(int32_t vocab) {
  return RowStats{vocab, vocab, Best{kNegInf, vocab}, 0.0f};
}

// s.sum rescaled to a max m >= s.best.value.
__device__ __forceinline__ float sum_at(const RowStats& s, float m) {
  return s.best.value == kNegInf ? 0.0f : s.sum * expf(s.best.value - m);
}

// Logit v of id i into s (ids in any order). A new max rescales what was
// summed: from 0 when the old max was -inf, since expf(-inf) == 0.
__device__ __forceinline__ void add_logit(RowStats& s, int32_t i, float v) {
  if (isnan(v)) {
    s.nan_id = min(s.nan_id, i);
  } else if (isinf(v) && v > 0) {
    s.inf_id = min(s.inf_id, i);
  } else if (v > s.best.value) {
    s.sum = s.sum * expf(s.best.value - v) + 1.0f;
    s.best = Best{v, i};
  } else {
    if (v == s.best.value) s.best.id = min(s.best.id, i);
    if (v != kNegInf) s.sum += expf(v - s.best.value);
  }
}

// The statistics of two disjoint slices. Symmetric in a and b, so a butterfly
// leaves the same bits in every lane.
__device__ __forceinline__ RowStats merge(const RowStats& a, const RowStats& b) {
  RowStats r;
  r.nan_id = min(a.nan_id, b.nan_id);
  r.inf_id = min(a.inf_id, b.inf_id);
  r.best = better(a.best, b.best);
  r.sum = sum_at(a, r.best.value) + sum_at(b, r.best.value);
  return r;
}

__device__ RowStats warp_merge(RowStats s) {
  for (int o = 16; o > 0; o >>= 1) {
    RowStats other;
    other.nan_id = __shfl_xor_sync(0xffffffffu, s.nan_id, o);
    other.inf_id = __shfl_xor_sync(0xffffffffu, s.inf_id, o);
    other.best.value = __shfl_xor_sync(0xffffffffu, s.best.value, o);
    other.best.id = __shfl_xor_sync(0xffffffffu, s.best.id, o);
    other.sum = __shfl_xor_sync(0xffffffffu, s.sum, o);
    s = merge(s, other);
  }
  return s;
}

// stats[s][c] = RowStats of slice c of spec s's row.   grid (num_specs, kStatChunks)
// Slices are whole float4s where the row allows, so a row's CTAs share no
// 16-byte load; some are empty when the vocabulary is small.
__global__ void __launch_bounds__(kStatThreads)
    row_stats_kernel(const float* __restrict__ logits, int32_t vocab, const RowSamplingSpec* __restrict__ specs,
                     RowStats* __restrict__ stats) {
  FLINT_TRACE_KERNEL(trace::kSampleStats);
  __shared__ RowStats warp_stats[kStatWarps];
  wait_for_previous_grid();  // the logits are the previous kernel's output
  allow_next_grid();
  const float* x = logits + static_cast<int64_t>(specs[blockIdx.x].row) * vocab;
  const bool whole_float4s = vocab % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  int64_t size = (static_cast<int64_t>(vocab) + kStatChunks - 1) / kStatChunks;
  if (whole_float4s) size = (size + 3) / 4 * 4;
  const int64_t begin = min(static_cast<int64_t>(vocab), static_cast<int64_t>(blockIdx.y) * size);
  const int64_t end = min(static_cast<int64_t>(vocab), begin + size);

  RowStats s = no_stats(vocab);
  if (whole_float4s) {
    const float4* x4 = reinterpret_cast<const float4*>(x + begin);
    const int32_t n4 = static_cast<int32_t>((end - begin) / 4);
    for (int32_t j = static_cast<int32_t>(threadIdx.x); j < n4; j += kStatLoads * kStatThreads) {
      float4 v[kStatLoads];  // all loads issued before the first use
#pragma unroll
      for (int u = 0; u < kStatLoads; ++u)
        v[u] = j + u * kStatThreads < n4 ? x4[j + u * kStatThreads] : make_float4(0, 0, 0, 0);
#pragma unroll
      for (int u = 0; u < kStatLoads; ++u) {
        if (j + u * kStatThreads >= n4) break;
        const int32_t i = static_cast<int32_t>(begin) + 4 * (j + u * kStatThreads);
        add_logit(s, i, v[u].x);
        add_logit(s, i + 1, v[u].y);
        add_logit(s, i + 2, v[u].z);
        add_logit(s, i + 3, v[u].w);
      }
    }
  } else {
    for (int64_t i = begin + threadIdx.x; i < end; i += kStatThreads) add_logit(s, static_cast<int32_t>(i), x[i]);
  }

  s = warp_merge(s);
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  if (lane == 0) warp_stats[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = warp_merge(lane < kStatWarps ? warp_stats[lane] : no_stats(vocab));
    if (lane == 0) stats[static_cast<int64_t>(blockIdx.x) * kStatChunks + blockIdx.y] = s;
  }
}

// The row's statistics from its kStatChunks slices, in every lane of warp 0:
// the checks and best first, then S = sum_c s_c * exp(m_c - M) with one
// rescale a slice, added in a fixed order (a lane's slices in order, then a
// butterfly), so the log-normaliser has the same bits every run.
__device__ RowStats merge_row_stats(const RowStats* slices, int32_t vocab) {
  constexpr int kPerLane = kStatChunks / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  RowStats part[kPerLane];
  RowStats r = no_stats(vocab);
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    part[k] = slices[lane + 32 * k];
    r.nan_id = min(r.nan_id, part[k].nan_id);
    r.inf_id = min(r.inf_id, part[k].inf_id);
    r.best = better(r.best, part[k].best);
  }
  r.nan_id = warp_reduce(r.nan_id, [](int32_t a, int32_t b) { return min(a, b); });
  r.inf_id = warp_reduce(r.inf_id, [](int32_t a, int32_t b) { return min(a, b); });
  r.best = warp_best(r.best);
  float sum = 0;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) sum += sum_at(part[k], r.best.value);
  r.sum = warp_reduce(sum, [](float a, float b) { return a + b; });
  return r;
}

struct SampleShared {
  RowStats row;  // merge_row_stats' answer, for the whole CTA
  Scratch scratch;
  uint64_t mass[256];
  uint32_t count[256];
  uint32_t prefix;      // radix select: the key bits fixed so far
  uint64_t remaining;   // top-k: rank still to find among the keys under the prefix
  double mass_above;    // top-p: mass of the keys above the prefix
  int32_t found_id;
  int32_t no_cut;       // top-p: no bin reached the target (rounding): keep all
};

// What survives the filters decided so far, for element i with value v.
struct Filters {
  bool top_k = false, top_p = false, min_p = false;
  uint32_t key_k = 0, key_p = 0;
  int32_t cut_k = 0, cut_p = 0;  // ties at key_k / key_p survive up to this id
  float max_v = 0, min_p_value = 0;

  __device__ bool keeps(int32_t i, float v) const {
    if (v == kNegInf) return false;
    const uint32_t key = order_key(v);
    if (top_k && !(key > key_k || (key == key_k && i <= cut_k))) return false;
    if (top_p && !(key > key_p || (key == key_p && i <= cut_p))) return false;
    if (min_p && expf(v - max_v) < min_p_value) return false;
    return true;
  }
};

// The id of the `rank`-th (1-based) element, in id order, with key == `key`
// among those `f` keeps; the last id of the row if there are fewer.
template <typename ValueAt>
__device__ int32_t tie_cut(ValueAt value_at, int32_t begin, int32_t end, int32_t vocab, const Filters& f,
                           uint32_t key, uint64_t rank, SampleShared& sh) {
  uint64_t mine = 0;
  for (int32_t i = begin; i < end; ++i) {
    const float v = value_at(i);
    if (f.keeps(i, v) && order_key(v) == key) ++mine;
  }
  uint64_t total = 0;
  const uint64_t before = block_exclusive_scan(mine, total, sh.scratch);
  if (threadIdx.x == 0) sh.found_id = vocab - 1;
  __syncthreads();
  if (rank <= total && before < rank && rank <= before + mine) {
    uint64_t seen = before;
    for (int32_t i = begin; i < end; ++i) {
      const float v = value_at(i);
      if (f.keeps(i, v) && order_key(v) == key && ++seen == rank) {
        sh.found_id = i;
        break;
      }
    }
  }
  __syncthreads();
  return sh.found_id;
}

// out[s] = the token of spec s; stats: row_stats_kernel's [num_specs, kStatChunks].
__global__ void __launch_bounds__(kThreads)
    sample_rows_kernel(float* logits, int32_t vocab, const RowSamplingSpec* specs, const RowStats* stats,
                       const PenalizedToken* penalties, float* penalty_raw, RowSample* out, double mass_scale) {
  FLINT_TRACE_KERNEL(trace::kSampleRow);
  __shared__ SampleShared sh;
  wait_for_previous_grid();  // stats are the previous kernel's output
  allow_next_grid();
  const RowSamplingSpec spec = specs[blockIdx.x];
  float* x = logits + static_cast<int64_t>(spec.row) * vocab;
  const int32_t chunk = (vocab + kThreads - 1) / kThreads;
  const int32_t begin = min(vocab, static_cast<int32_t>(threadIdx.x) * chunk);
  const int32_t end = min(vocab, begin + chunk);
  RowSample result;

  // 1. Checks, the raw log-normaliser and the raw argmax (the greedy token
  // when no penalty applies), from the row's slices.
  if (threadIdx.x < 32) {
    const RowStats row = merge_row_stats(stats + static_cast<int64_t>(blockIdx.x) * kStatChunks, vocab);
    if (threadIdx.x == 0) sh.row = row;
  }
  __syncthreads();
  const int32_t nan_id = sh.row.nan_id, inf_id = sh.row.inf_id;
  const Best raw_best = sh.row.best;
  const float raw_max = raw_best.value;
  if (nan_id < vocab || inf_id < vocab || raw_max == kNegInf) {
    if (threadIdx.x == 0) {
      result.status = nan_id < vocab   ? RowSampleStatus::nan_logit
                      : inf_id < vocab ? RowSampleStatus::inf_logit
                                       : RowSampleStatus::all_neg_inf;
      result.id = nan_id < vocab ? nan_id : inf_id < vocab ? inf_id : -1;
      out[blockIdx.x] = result;
    }
    return;
  }
  // sum >= 1: the slice that holds the max adds exp(0) for it.
  const float log_z = raw_max + logf(sh.row.sum);

  // 2. Penalties, in place; the raw values are kept for the logprob.
  const PenalizedToken* pen = penalties + spec.penalties_begin;
  float* pen_raw = penalty_raw + spec.penalties_begin;
  for (int32_t j = threadIdx.x; j < spec.penalties_count; j += kThreads) {
    const PenalizedToken t = pen[j];
    float v = x[t.id];
    pen_raw[j] = v;
    if (t.seen && spec.repetition_penalty != 1.0f)
      v = v > 0 ? __fdiv_rn(v, spec.repetition_penalty) : __fmul_rn(v, spec.repetition_penalty);
    if (t.generated > 0) {
      v = __fsub_rn(v, __fmul_rn(spec.frequency_penalty, static_cast<float>(t.generated)));
      v = __fsub_rn(v, spec.presence_penalty);
    }
    x[t.id] = v;
  }
  __syncthreads();  // makes the block's global writes visible to the block

  if (spec.temperature < kGreedyTemperature) {
    // 3a. Greedy.
    Best best = raw_best;
    if (spec.penalties_count > 0) {
      best = Best{kNegInf, vocab};
      for_each_coalesced(x, vocab, [&](int32_t i, float v) { best = better(best, Best{v, i}); });
      best = block_best(best, sh.scratch);
    }
    result.id = best.id < vocab ? best.id : 0;  // all -inf after penalties: the lowest id, as the host does
  } else {
    // 3b. Temperature, top-k, top-p, min-p, draw.
    const float t = spec.temperature;
    auto value_at = [&](int32_t i) { return __fdiv_rn(x[i], t); };
    Filters f;
    float max_v = kNegInf;
    uint32_t finite = 0;
    for (int32_t i = begin; i < end; ++i) {
      const float v = value_at(i);
      if (v != kNegInf) ++finite;
      max_v = fmaxf(max_v, v);
    }
    max_v = block_max(max_v, sh.scratch);
    uint64_t finite_total = 0;
    block_exclusive_scan(finite, finite_total, sh.scratch);
    if (max_v == kNegInf) {
      if (threadIdx.x == 0) {
        result.status = RowSampleStatus::none_left;
        out[blockIdx.x] = result;
      }
      return;
    }
    f.max_v = max_v;

    if (spec.top_k > 0 && static_cast<uint64_t>(spec.top_k) < finite_total) {
      // The k-th largest key, 8 bits at a time from the top.
      if (threadIdx.x == 0) {
        sh.prefix = 0;
        sh.remaining = static_cast<uint64_t>(spec.top_k);
      }
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += kThreads) sh.count[b] = 0;
        __syncthreads();
        const uint32_t prefix = sh.prefix;
        const uint32_t high_mask = shift == 24 ? 0u : ~0u << (shift + 8);
        BinRun<uint32_t> run(sh.count);
        for (int32_t i = begin; i < end; ++i) {
          const float v = value_at(i);
          if (v == kNegInf) continue;
          const uint32_t key = order_key(v);
          if ((key & high_mask) == prefix) run.add((key >> shift) & 0xffu, 1u);
        }
        run.flush();
        __syncthreads();
        if (threadIdx.x == 0) {
          uint64_t above = 0;
          for (int b = 255; b >= 0; --b) {
            if (above + sh.count[b] >= sh.remaining) {
              sh.prefix = prefix | (static_cast<uint32_t>(b) << shift);
              sh.remaining -= above;
              break;
            }
            above += sh.count[b];
          }
        }
        __syncthreads();
      }
      const uint32_t key_k = sh.prefix;
      const uint64_t ties = sh.remaining;  // keys equal to key_k that make the cut, lowest ids first
      f.top_k = false;                     // tie_cut counts among all finite values
      f.cut_k = tie_cut(value_at, begin, end, vocab, f, key_k, ties, sh);
      f.key_k = key_k;
      f.top_k = true;
    }

    if (spec.top_p < 1.0f) {
      uint64_t mine = 0;
      for (int32_t i = begin; i < end; ++i) {
        const float v = value_at(i);
        if (f.keeps(i, v)) mine += quantize_mass(expf(v - max_v), mass_scale);
      }
      uint64_t total = 0;
      block_exclusive_scan(mine, total, sh.scratch);
      const double target = static_cast<double>(spec.top_p) * static_cast<double>(total);
      // The key of the last token kept: the first, in (value desc, id asc)
      // order, at which the mass so far reaches the target.
      if (threadIdx.x == 0) {
        sh.prefix = 0;
        sh.mass_above = 0;
        sh.no_cut = 0;
      }
      for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += kThreads) sh.mass[b] = 0;
        __syncthreads();
        const uint32_t prefix = sh.prefix;
        const uint32_t high_mask = shift == 24 ? 0u : ~0u << (shift + 8);
        BinRun<uint64_t> run(sh.mass);
        for (int32_t i = begin; i < end; ++i) {
          const float v = value_at(i);
          if (!f.keeps(i, v)) continue;
          const uint32_t key = order_key(v);
          if ((key & high_mask) == prefix) run.add((key >> shift) & 0xffu, quantize_mass(expf(v - max_v), mass_scale));
        }
        run.flush();
        __syncthreads();
        if (threadIdx.x == 0 && !sh.no_cut) {
          uint64_t above = 0;
          int chosen = -1;
          for (int b = 255; b >= 0; --b) {
            // An empty bin is never the cut (top_p = 0 makes the target 0).
            if (sh.mass[b] > 0 && sh.mass_above + static_cast<double>(above + sh.mass[b]) >= target) {
              chosen = b;
              break;
            }
            above += sh.mass[b];
          }
          if (chosen < 0) {
            sh.no_cut = 1;
          } else {
            sh.prefix = prefix | (static_cast<uint32_t>(chosen) << shift);
            sh.mass_above += static_cast<double>(above);
          }
        }
        __syncthreads();
      }
      if (!sh.no_cut) {
        const uint32_t key_p = sh.prefix;
        // Ties at key_p share one weight; tie t (0-based, id order) is kept
        // while the mass before it, mass_above + t * w, is below the target.
        const uint64_t w = quantize_mass(expf(key_value(key_p) - max_v), mass_scale);
        const double gap = target - sh.mass_above;  // > 0
        uint64_t ties = 0xffffffffull;
        if (w > 0) ties = static_cast<uint64_t>(ceil(gap / static_cast<double>(w)));
        if (ties < 1) ties = 1;
        f.cut_p = tie_cut(value_at, begin, end, vocab, f, key_p, ties, sh);
        f.key_p = key_p;
        f.top_p = true;
      }
    }

    if (spec.min_p > 0.0f) {
      f.min_p = true;
      f.min_p_value = spec.min_p;
    }

    // The draw, in id order.
    uint64_t mine = 0;
    for (int32_t i = begin; i < end; ++i) {
      const float v = value_at(i);
      if (f.keeps(i, v)) mine += quantize_mass(expf(v - max_v), mass_scale);
    }
    uint64_t total = 0;
    const uint64_t before = block_exclusive_scan(mine, total, sh.scratch);
    // The most probable token survives every filter with weight 1, so total
    // > 0; the guard only keeps a broken invariant from reading garbage.
    if (total == 0) {
      if (threadIdx.x == 0) {
        result.status = RowSampleStatus::none_left;
        out[blockIdx.x] = result;
      }
      return;
    }
    uint64_t target = static_cast<uint64_t>(spec.uniform * static_cast<double>(total));
    if (target >= total) target = total - 1;
    if (threadIdx.x == 0) sh.found_id = -1;
    __syncthreads();
    if (mine > 0 && before <= target && target < before + mine) {
      uint64_t mass = before;
      for (int32_t i = begin; i < end; ++i) {
        const float v = value_at(i);
        if (!f.keeps(i, v)) continue;
        mass += quantize_mass(expf(v - max_v), mass_scale);
        if (mass > target) {
          sh.found_id = i;
          break;
        }
      }
    }
    __syncthreads();
    result.id = sh.found_id;
  }

  if (threadIdx.x == 0) {
    if (result.id < 0) {  // no survivor was found: a broken invariant, reported, not read
      result.status = RowSampleStatus::none_left;
      out[blockIdx.x] = result;
      return;
    }
    float raw = x[result.id];
    // A penalised token's raw logit was saved: binary search the sorted list.
    int32_t lo = 0, hi = spec.penalties_count;
    while (lo < hi) {
      const int32_t mid = (lo + hi) / 2;
      if (pen[mid].id < result.id) lo = mid + 1;
      else hi = mid;
    }
    if (lo < spec.penalties_count && pen[lo].id == result.id) raw = pen_raw[lo];
    result.logprob = raw - log_z;
    out[blockIdx.x] = result;
  }
}

}  // namespace

size_t sample_rows_workspace_bytes(int32_t num_specs) {
  return static_cast<size_t>(num_specs) * kStatChunks * sizeof(RowStats);
}

void launch_sample_rows(float* logits, int32_t vocab, const RowSamplingSpec* specs, int32_t num_specs,
                        const PenalizedToken* penalties, float* penalty_raw, void* workspace, RowSample* out,
                        cudaStream_t stream) {
  if (num_specs == 0) return;
  int bits = 0;
  while ((int64_t{1} << bits) <= vocab) ++bits;
  const double mass_scale = std::ldexp(1.0, 63 - bits);
  // Specs on x: the grid's x dimension has no 65535 limit.
  auto* stats = static_cast<RowStats*>(workspace);
  launch_kernel(row_stats_kernel, dim3(static_cast<unsigned>(num_specs), kStatChunks), dim3(kStatThreads), 0, stream,
                static_cast<const float*>(logits), vocab, specs, stats);
  launch_kernel(sample_rows_kernel, dim3(static_cast<unsigned>(num_specs)), dim3(kThreads), 0, stream, logits, vocab,
                specs, static_cast<const RowStats*>(stats), penalties, penalty_raw, out, mass_scale);
}

}  // namespace flint::cuda
