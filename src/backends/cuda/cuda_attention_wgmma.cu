// Causal prefill attention over the paged KV cache on Hopper's warpgroup
// tensor cores (wgmma, sm_90a): the same rows, keys, masking, online softmax
// and outputs as cuda_attention.cu's mma.sync kernel (see there), with two
// warpgroups of 64 rows each (128 rows a CTA) and 128-key tiles.
//
// Why: mma.sync caps the 8B prefill attention at ~197 TFLOP/s (its fragments
// go through registers: ldmatrix for every K and V fragment, 255 registers a
// thread). wgmma reads Q, K and V straight from shared memory and runs
// asynchronously; each warpgroup computes S = Q K^T (m64 x 128 keys) in
// D / 16 instructions and O += P V in 8, with P from registers.
//
// Memory: a third warpgroup (the producer) gathers 16-byte chunks of each K/V
// tile through the block table with cp.async, straight into the 128-byte
// swizzled layout (cuda_wgmma.cuh), into a ring of 3 (D 128) or 4 (D 64)
// stages. Its copies arrive on the stage's "full" mbarrier as they land
// (cp.async.mbarrier.arrive); each consumer warp arrives on the stage's
// "empty" mbarrier once its P V of the tile is done. So the two consumer
// warpgroups share no barrier and never issue a copy: with the copies and a
// CTA barrier in every consumer's tile, the same MMAs took 117 us instead of
// 104 (8B heads, L 2048). cp.async writes go through the generic proxy and
// wgmma reads through the async proxy, hence fence.proxy.async after each
// wait on "full".
//
// Registers: 384 threads cap every thread at 168 (a scheduler's register
// file holds three of the warps); the consumers fit without spilling when P V
// is waited for at the end of its tile (waited for under the next tile's S
// instead, P's registers stay live across it: spills, and 109 us vs 104).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdlib>
#include <string_view>

#include "backends/cuda/cuda_attention_kernels.cuh"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_mma.cuh"
#include "backends/cuda/cuda_wgmma.cuh"

namespace flint::cuda::detail {
namespace {

constexpr int kConsumers = 256;               // two warpgroups of 64 query rows each
constexpr int kThreads = kConsumers + 128;  // and one that gathers K/V
constexpr int kM = kWgmmaRows, kN = kWgmmaKeyTile;

// 2^x; subnormal results flush to zero (P is rounded to 16 bits next, and a
// term below 2^-126 of a row sum of at least 1 is nothing): one MUFU op, where
// exp2f adds a range check and two multiplies.
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ float exp2_ftz(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
#endif

template <int D>
struct WgmmaConfig {
  static constexpr int kQBytes = kM * D * 2;
  static constexpr int kTileBytes = kN * D * 2;  // one K or one V tile
  // The ring of K/V stages: as many as fit, up to 4 (3 at D 128, 4 at D 64).
  // + 1024: the dynamic shared memory is aligned up to the swizzle's repeat.
  static constexpr int kFit = (227 * 1024 - 1024 - kQBytes) / (2 * kTileBytes);
  static constexpr int kStages = kFit > 4 ? 4 : kFit;
  static constexpr int kSmemBytes = 1024 + kQBytes + 2 * kStages * kTileBytes;
  static_assert(kStages >= 2, "shared memory per CTA");
};

template <typename T, int D>
__global__ void __launch_bounds__(kThreads, 1) wgmma_attention_kernel(const FlashArgs a) {
  FLINT_TRACE_KERNEL(trace::kAttention);
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using H = Half16<T>;
  using C = WgmmaConfig<D>;
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  extern __shared__ unsigned char smem_raw[];
  const uint32_t q_s = (smem_addr(smem_raw) + 1023) & ~1023u;  // [kM][D] swizzled
  constexpr int S = C::kStages;
  const uint32_t k_s = q_s + C::kQBytes;                       // [S][kN][D] swizzled
  const uint32_t v_s = k_s + S * C::kTileBytes;                // [S][kN][D] swizzled
  __shared__ uint64_t full[S], empty[S];

  CtaRows cta;
  if (!locate_cta_rows(a, kM, cta)) return;
  const int split = blockIdx.z;
  const int key_begin = split * a.keys_per_split;
  const int key_end = min(cta.num_keys, key_begin + a.keys_per_split);
  if (key_begin >= key_end) return;  // this split lies past the context (see the reducer)
  const int tile_begin = key_begin / kN, tile_end = (key_end + kN - 1) / kN;

  const int tid = threadIdx.x, lane = tid & 31;
  const int wg = tid / 128, warp_in_wg = (tid / 32) % 4;
  const T* qkv = static_cast<const T*>(a.qkv);
  const int32_t* table = a.block_tables + static_cast<int64_t>(cta.seq) * a.max_blocks_per_seq;

  if (tid == 0) {
    for (int st = 0; st < S; ++st) {
      mbar_init(&full[st], 128);  // the producer warpgroup's threads, as their copies land
      mbar_init(&empty[st], 8);   // the consumer warps, once their P V of the tile is done
    }
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();

  if (tid >= kConsumers) {  // the producer warpgroup: gathers K/V tiles into the ring
    const int ptid = tid - kConsumers;
    const int bs = a.block_size;
    const bool bs_pow2 = (bs & (bs - 1)) == 0;
    const int bs_shift = __ffs(bs) - 1;
    constexpr int kStep = 128 / kChunks, kRows = kN / kStep;
    const int first_row = ptid / kChunks, part = ptid % kChunks;
    const int64_t block_stride = static_cast<int64_t>(a.kv_heads) * bs * D;
    const T* k_src = static_cast<const T*>(a.k_cache) + static_cast<int64_t>(cta.kvh) * bs * D + part * 8;
    const T* v_src = static_cast<const T*>(a.v_cache) + static_cast<int64_t>(cta.kvh) * bs * D + part * 8;
    const auto fetch_blocks = [&](int key_tile, int (&blocks)[kRows]) {
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        const int key = key_tile * kN + first_row + i * kStep;
        blocks[i] = key < cta.num_keys ? table[bs_pow2 ? key >> bs_shift : key / bs] : -1;
      }
    };
    enum class Keys { cached, new_, all };
    const auto load_kv = [&](int key_tile, int stage, const int (&blocks)[kRows], Keys keys) {
#pragma unroll
      for (int i = 0; i < kRows; ++i) {
        const int kr = first_row + i * kStep, key = key_tile * kN + kr;
        if (keys != Keys::all && (key < cta.first_new_key) != (keys == Keys::cached)) continue;
        int64_t off = 0;
        uint32_t bytes = 0;
        if (blocks[i] >= 0) {  // past the context: zeros (stale rows may hold NaN)
          off = blocks[i] * block_stride + (bs_pow2 ? key & (bs - 1) : key % bs) * D;
          bytes = 16;
        }
        const uint32_t dst = stage * C::kTileBytes + swizzled_offset(kN, kr, part);
        cp_async16(k_s + dst, k_src + off, bytes);
        cp_async16(v_s + dst, v_src + off, bytes);
      }
    };
    // As in the mma.sync kernel, the first tile's cached keys go out before
    // the wait for the q/k/v projection; each later tile's table entries are
    // requested before the wait for its stage.
    int blocks[kRows];
    fetch_blocks(tile_begin, blocks);
    load_kv(tile_begin, 0, blocks, Keys::cached);
    wait_for_previous_grid();
    load_kv(tile_begin, 0, blocks, Keys::new_);
    cp_async_mbar_arrive(&full[0]);
    for (int i = 1; tile_begin + i < tile_end; ++i) {
      fetch_blocks(tile_begin + i, blocks);
      const int st = i % S;
      mbar_wait(&empty[st], ((i / S) & 1) ^ 1);  // tile i - S's P V done (passes at once for i < S)
      load_kv(tile_begin + i, st, blocks, Keys::all);
      cp_async_mbar_arrive(&full[st]);
    }
    cp_async_commit();
    cp_async_wait<0>();
    return;
  }

  wait_for_previous_grid();
  allow_next_grid();
  // Q: each warpgroup its own 64 rows.
  for (int c = tid % 128; c < 64 * kChunks; c += 128) {
    const int r = wg * 64 + c / kChunks, q_part = c % kChunks;
    const T* src = qkv;
    uint32_t bytes = 0;
    if (r < cta.rows) {
      src = qkv + cta.q_offset(a, D, r) + q_part * 8;
      bytes = 16;
    }
    cp_async16(q_s + swizzled_offset(kM, r, q_part), src, bytes);
  }
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async_shared();
  asm volatile("bar.sync %0, 128;" ::"r"(1 + wg) : "memory");

  // This thread's rows of its warpgroup's m64 tile: g and g + 8 of its warp's 16.
  const int row_base = wg * 64 + warp_in_wg * 16 + (lane >> 2);
  int row_pos[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = row_base + 8 * h;
    row_pos[h] = r < cta.rows ? a.positions[cta.token(r)] : -1;  // -1: every key masked
  }
  const int lowest_pos = __reduce_min_sync(0xffffffffu, min(row_pos[0], row_pos[1]));

  float o[D / 2];  // m64 x D accumulator
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.0f;

  for (int kt = tile_begin; kt < tile_end; ++kt) {
    const int n = kt - tile_begin, stage = n % S;
    mbar_wait(&full[stage], (n / S) & 1);  // the producer's copies of tile kt landed
    fence_proxy_async_shared();

    // S = Q K^T over the tile's 128 keys.
    float s[kN / 2];
#pragma unroll
    for (int i = 0; i < kN / 2; ++i) s[i] = 0.0f;
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint32_t q_at = q_s + (kk / 4) * kM * 128 + wg * 64 * 128 + (kk % 4) * 32;
      const uint32_t k_at = k_s + stage * C::kTileBytes + (kk / 4) * kN * 128 + (kk % 4) * 32;
      Wgmma<T, kN>::ss(s, wgmma_descriptor(q_at, 16, 1024), wgmma_descriptor(k_at, 16, 1024), kk > 0);
    }
    wgmma_commit();
    wgmma_wait<0>();
#pragma unroll
    for (int i = 0; i < kN / 2; ++i) wgmma_pin(s[i]);

    // Mask (only where the tile reaches past a row's position), online
    // softmax in base 2 with the scale folded into exp2's FFMA.
    const int key_base = kt * kN + 2 * (lane & 3);
    if (kt * kN + kN - 1 > lowest_pos) {
#pragma unroll
      for (int j = 0; j < kN / 8; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (key_base + j * 8 + (e & 1) > row_pos[e >> 1]) s[4 * j + e] = -INFINITY;
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) mx[e >> 1] = fmaxf(mx[e >> 1], s[4 * j + e]);
    float corr[2], m_use[2];
    bool moved = false;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 1));
      mx[h] = fmaxf(mx[h], __shfl_xor_sync(0xffffffffu, mx[h], 2));
      const float m_new = fmaxf(m[h], mx[h] * a.scale_log2);
      m_use[h] = m_new == -INFINITY ? 0.0f : m_new;  // every key so far masked: exp2(-inf - 0) = 0, not NaN
      corr[h] = exp2f(m[h] - m_use[h]);
      moved |= corr[h] != 1.0f;
      m[h] = m_new;
    }
    float sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < kN / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[4 * j + e] = exp2_ftz(fmaf(s[4 * j + e], a.scale_log2, -m_use[e >> 1]));
        sum[e >> 1] += s[4 * j + e];
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) l[h] = l[h] * corr[h] + sum[h];
    if (__any_sync(0xffffffffu, moved)) {
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        o[4 * j] *= corr[0];
        o[4 * j + 1] *= corr[0];
        o[4 * j + 2] *= corr[1];
        o[4 * j + 3] *= corr[1];
      }
    }

    // O += P V: P's accumulator layout is the A fragment layout, k16 step by
    // k16 step; V is the MN-major B operand.
    uint32_t p[kN / 16][4];
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk) {
      p[kk][0] = H::pack(s[8 * kk], s[8 * kk + 1]);
      p[kk][1] = H::pack(s[8 * kk + 2], s[8 * kk + 3]);
      p[kk][2] = H::pack(s[8 * kk + 4], s[8 * kk + 5]);
      p[kk][3] = H::pack(s[8 * kk + 6], s[8 * kk + 7]);
    }
#pragma unroll
    for (int i = 0; i < D / 2; ++i) wgmma_pin(o[i]);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kN / 16; ++kk) {
      const uint32_t v_at = v_s + stage * C::kTileBytes + kk * 16 * 128;
      Wgmma<T, D>::rs(o, p[kk], wgmma_descriptor(v_at, kN * 128, 1024), 1);
    }
    wgmma_commit();
    wgmma_wait<0>();
    if (lane == 0) mbar_arrive(&empty[stage]);  // the stage goes back to the producer
  }
#pragma unroll
  for (int i = 0; i < D / 2; ++i) wgmma_pin(o[i]);

  // Epilogue: each warpgroup owns whole rows over all of the split's keys.
  float inv[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    inv[h] = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
  }
  if (a.num_splits == 1) {
    // Through the warpgroup's own Q rows (its S products are done), swizzled
    // as Q was, then out with 16-byte stores.
    unsigned char* q_ptr = smem_raw + (q_s - smem_addr(smem_raw));
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        const uint32_t at = swizzled_offset(kM, row_base + 8 * h, j) + 4 * (lane & 3);
        *reinterpret_cast<uint32_t*>(q_ptr + at) = H::pack(o[4 * j + 2 * h] * inv[h], o[4 * j + 2 * h + 1] * inv[h]);
      }
    asm volatile("bar.sync %0, 128;" ::"r"(1 + wg) : "memory");  // this warpgroup's 128 threads
    const int wtid = tid % 128;
    for (int c = wtid; c < 64 * kChunks; c += 128) {
      const int r = wg * 64 + c / kChunks, part = c % kChunks;
      if (r >= cta.rows) continue;
      const int token = cta.token(r), head = cta.head(r);
      T* dst = static_cast<T*>(a.out) + (static_cast<int64_t>(token) * a.num_heads + head) * D + part * 8;
      *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(q_ptr + swizzled_offset(kM, r, part));
    }
  } else {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = row_base + 8 * h;
      if (r >= cta.rows) continue;
      const int token = cta.token(r), head = cta.head(r);
      const int64_t prow = (static_cast<int64_t>(split) * a.num_tokens + token) * a.num_heads + head;
      float* dst = a.part_o + prow * D + 2 * (lane & 3);
#pragma unroll
      for (int j = 0; j < D / 8; ++j)
        *reinterpret_cast<float2*>(dst + 8 * j) = make_float2(o[4 * j + 2 * h] * inv[h], o[4 * j + 2 * h + 1] * inv[h]);
      if ((lane & 3) == 0) a.part_lse[prow] = l[h] > 0.0f ? m[h] + log2f(l[h]) : -INFINITY;
    }
  }
#endif
}

}  // namespace

bool use_wgmma_attention() {
  static const bool sm90 = [] {
    int major = 0, minor = 0, device = 0;
    FLINT_CUDA_CHECK(cudaGetDevice(&device));
    FLINT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    FLINT_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    return major == 9 && minor == 0;  // the sm_90a code runs on sm_90 only
  }();
  // Read at every launch (a prefill step's 32 launches, not a graph replay),
  // so one process can run both kernels (the GPU tests do).
  const char* v = std::getenv("FLINT_CUDA_ATTENTION");
  return sm90 && !(v && std::string_view(v) == "mma");
}

template <typename T, int D>
void launch_wgmma_attention(const FlashArgs& args, dim3 grid, cudaStream_t stream) {
  using C = WgmmaConfig<D>;
  const auto kernel = wgmma_attention_kernel<T, D>;
  FLINT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, C::kSmemBytes));
  launch_kernel(kernel, grid, kThreads, C::kSmemBytes, stream, args);
}

template void launch_wgmma_attention<__nv_bfloat16, 64>(const FlashArgs&, dim3, cudaStream_t);
template void launch_wgmma_attention<__nv_bfloat16, 128>(const FlashArgs&, dim3, cudaStream_t);
template void launch_wgmma_attention<__half, 64>(const FlashArgs&, dim3, cudaStream_t);
template void launch_wgmma_attention<__half, 128>(const FlashArgs&, dim3, cudaStream_t);

}  // namespace flint::cuda::detail
