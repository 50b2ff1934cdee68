// RoPE on the q and k heads of qkv, in place, and the K/V store into the
// paged cache: one CTA per token.
//
// The arithmetic is the CPU backend's, step for step, so that both backends
// write the same cache bits: angle = float(position) * inv_freq[i] (one f32
// product, as HF computes it), cos/sin of it rounded once from double, then
// x0 c - x1 s and x1 c + x0 s with each product and the sum rounded to f32
// (no FMA contraction), then one rounding to the cache type.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdio>

#include "backends/cuda/cuda_attention.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_mma.cuh"

namespace flint::cuda {
namespace {

constexpr int kRopeThreads = 128;
constexpr int kMaxHeadDim = 256;

// Eight 16-bit elements: one 16-byte access.
template <typename T>
struct alignas(16) Vec8 {
  T v[8];
};

// cos/sin of position * inv_freq[i], as the CPU backend works them out: the
// angle one f32 product, cos/sin from double, rounded once to f32.
__device__ __forceinline__ void rope_cos_sin(int32_t pos, float inv_freq, float& c, float& s) {
  const float angle = __fmul_rn(static_cast<float>(pos), inv_freq);
  double sd, cd;
  sincos(static_cast<double>(angle), &sd, &cd);
  c = static_cast<float>(cd);
  s = static_cast<float>(sd);
}

// One CTA per token: table[t][0][i] = cos, table[t][1][i] = sin.
__global__ void __launch_bounds__(kRopeThreads)
    rope_table_kernel(const float* inv_freq, const int32_t* positions, int half, float* table) {
  FLINT_TRACE_KERNEL(trace::kRopeTable);
  const int t = blockIdx.x;
  const int32_t pos = positions[t];
  wait_for_previous_grid();  // the table may still be read by the kernel before
  allow_next_grid();
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    float c, s;
    rope_cos_sin(pos, inv_freq[i], c, s);
    table[(static_cast<int64_t>(t) * 2) * half + i] = c;
    table[(static_cast<int64_t>(t) * 2 + 1) * half + i] = s;
  }
}

template <typename T>
__global__ void __launch_bounds__(kRopeThreads) rope_and_cache_kernel(T* qkv, const float* inv_freq, StepArrays step,
                                                                      AttentionShape shape, T* k_cache, T* v_cache) {
  FLINT_TRACE_KERNEL(trace::kRopeCache);
  using H = Half16<T>;
  __shared__ float cos_s[kMaxHeadDim / 2], sin_s[kMaxHeadDim / 2];
  const int t = blockIdx.x;
  const int d = shape.head_dim, half = d / 2;
  const int hq = shape.num_heads, hkv = shape.kv_heads, bs = shape.block_size;
  // The step arrays and inv_freq are read-only during steps: the angles and
  // the cache slot are worked out while the kernel that writes qkv may still
  // run (programmatic launch, cuda_launch.cuh).
  const int32_t pos = step.positions[t];
  for (int i = threadIdx.x; i < half; i += blockDim.x) rope_cos_sin(pos, inv_freq[i], cos_s[i], sin_s[i]);
  const int32_t seq = step.token_seq[t];
  const int32_t block = step.block_tables[static_cast<int64_t>(seq) * step.max_blocks_per_seq + pos / bs];
  __syncthreads();
  wait_for_previous_grid();
  allow_next_grid();
  // Row `pos % bs` of head h of the cache block: [num_blocks, Hkv, bs, D].
  const auto cache_row = [&](int h) {
    return (((static_cast<int64_t>(block) * hkv + h) * bs) + pos % bs) * static_cast<int64_t>(d);
  };
  T* row = qkv + static_cast<int64_t>(t) * (hq + 2 * hkv) * d;

  // Rotate: each item is eight pairs (i, i + D/2) of one q or k head.
  const int vecs_per_half = half / 8;
  for (int w = threadIdx.x; w < (hq + hkv) * vecs_per_half; w += blockDim.x) {
    const int h = w / vecs_per_half, i0 = (w % vecs_per_half) * 8;
    T* x = row + h * d;
    const Vec8<T> a = *reinterpret_cast<const Vec8<T>*>(x + i0);
    const Vec8<T> b = *reinterpret_cast<const Vec8<T>*>(x + i0 + half);
    Vec8<T> ra, rb;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float x0 = H::to_float(a.v[j]), x1 = H::to_float(b.v[j]);
      const float c = cos_s[i0 + j], s = sin_s[i0 + j];
      ra.v[j] = H::from_float(__fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s)));
      rb.v[j] = H::from_float(__fadd_rn(__fmul_rn(x1, c), __fmul_rn(x0, s)));
    }
    *reinterpret_cast<Vec8<T>*>(x + i0) = ra;
    *reinterpret_cast<Vec8<T>*>(x + i0 + half) = rb;
    if (h >= hq) {
      T* k = k_cache + cache_row(h - hq);
      *reinterpret_cast<Vec8<T>*>(k + i0) = ra;
      *reinterpret_cast<Vec8<T>*>(k + i0 + half) = rb;
    }
  }

  // V goes to the cache as it is.
  const int vecs_per_head = d / 8;
  const T* v = row + (hq + hkv) * d;
  for (int w = threadIdx.x; w < hkv * vecs_per_head; w += blockDim.x) {
    const int h = w / vecs_per_head, i0 = (w % vecs_per_head) * 8;
    *reinterpret_cast<Vec8<T>*>(v_cache + cache_row(h) + i0) = *reinterpret_cast<const Vec8<T>*>(v + h * d + i0);
  }
}

[[noreturn]] void bad_argument(const char* what, int value, const char* file, int line) {
  char msg[160];
  std::snprintf(msg, sizeof msg, "launch_rope_and_cache: %s (got %d)", what, value);
  throw_cuda_error(cudaErrorInvalidValue, msg, file, line);
}

}  // namespace

void launch_rope_and_cache(void* qkv, DType dtype, const float* inv_freq, const StepArrays& step,
                           const AttentionShape& shape, void* k_cache, void* v_cache, cudaStream_t stream) {
  // 16-byte vectors on each half of a head: D a multiple of 16.
  if (shape.head_dim <= 0 || shape.head_dim % 16 != 0 || shape.head_dim > kMaxHeadDim)
    bad_argument("head_dim must be a positive multiple of 16, at most 256", shape.head_dim, __FILE__, __LINE__);
  if (shape.kv_heads <= 0 || shape.num_heads <= 0 || shape.num_heads % shape.kv_heads != 0)
    bad_argument("num_heads must be a positive multiple of kv_heads", shape.num_heads, __FILE__, __LINE__);
  if (shape.block_size <= 0) bad_argument("block_size must be positive", shape.block_size, __FILE__, __LINE__);
  if (step.num_tokens <= 0) return;
  const dim3 grid(static_cast<unsigned>(step.num_tokens));
  if (dtype == DType::bf16) {
    launch_kernel(rope_and_cache_kernel<__nv_bfloat16>, grid, kRopeThreads, 0, stream,
                  static_cast<__nv_bfloat16*>(qkv), inv_freq, step, shape, static_cast<__nv_bfloat16*>(k_cache),
                  static_cast<__nv_bfloat16*>(v_cache));
  } else if (dtype == DType::f16) {
    launch_kernel(rope_and_cache_kernel<__half>, grid, kRopeThreads, 0, stream, static_cast<__half*>(qkv), inv_freq,
                  step, shape, static_cast<__half*>(k_cache), static_cast<__half*>(v_cache));
  } else {
    bad_argument("dtype must be bf16 or f16", static_cast<int>(dtype), __FILE__, __LINE__);
  }
}

void launch_rope_table(const float* inv_freq, int head_dim, const int32_t* positions, int32_t num_tokens,
                       float* table, cudaStream_t stream) {
  if (head_dim <= 0 || head_dim % 2 != 0 || head_dim > kMaxHeadDim)
    bad_argument("head_dim must be even, at most 256", head_dim, __FILE__, __LINE__);
  if (num_tokens <= 0) return;
  launch_kernel(rope_table_kernel, static_cast<unsigned>(num_tokens), kRopeThreads, 0, stream, inv_freq, positions,
                head_dim / 2, table);
}

}  // namespace flint::cuda
