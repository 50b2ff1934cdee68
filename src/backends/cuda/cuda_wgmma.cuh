// backends/cuda/cuda_wgmma.cuh — the warpgroup tensor-core instructions of
// sm_90a (wgmma.mma_async) as inline PTX, for kernels whose operands sit in
// shared memory in the 128-byte swizzled layout. Device code only; every
// function here compiles to nothing outside sm_90a (callers dispatch on the
// device, see use_wgmma_attention()).
//
// Shared-memory layout ("swizzled tile", 1024-byte aligned): a [rows][cols]
// tile of 16-bit elements is stored as cols / 64 column blocks of [rows][64],
// each row 128 bytes, and the 16-byte chunk c (0-7) of row r at chunk
// c ^ (r % 8) of that row. swizzled_offset() gives the byte offset.
// - As a K-major operand (A = Q, B = K: the reduction runs along the row),
//   the k16 step kk starts at column block kk / 4, byte 32 * (kk % 4) of the
//   row; 8-row groups are 1024 bytes apart (SBO).
// - As an MN-major operand (B = V in O = P V: the reduction runs down the
//   rows), the k16 step kk starts at row 16 kk; column blocks are LBO =
//   rows * 128 bytes apart and 8-row groups SBO = 1024.
//
// Fragments (warp w of the warpgroup owns rows 16 w .. 16 w + 15 of the
// m64 tile; g = lane / 4, c = lane % 4): the accumulator of m64nNk16 holds,
// for each n8 block j, d[4j], d[4j+1] at (row g, cols 8j + 2c, +1) and
// d[4j+2], d[4j+3] at row g + 8 — mma.sync's C layout, repeated over N. A
// from registers has mma.sync's A layout (see cuda_mma.cuh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace flint::cuda {

__host__ __device__ constexpr uint32_t swizzled_offset(int rows, int r, int chunk) {
  return static_cast<uint32_t>((chunk >> 3) * rows * 128 + r * 128 + (((chunk & 7) ^ (r & 7)) << 4));
}

// Matrix descriptor: start address, leading and stride byte offsets, 128-byte swizzle.
__device__ __forceinline__ uint64_t wgmma_descriptor(uint32_t smem_byte_addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((smem_byte_addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(lbo >> 4) << 16) |
         (static_cast<uint64_t>(sbo >> 4) << 32) | (uint64_t{1} << 62);
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FLINT_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define FLINT_WGMMA_ASM(...) \
  do {                       \
  } while (0)
#endif

// Orders this thread's register and shared-memory accesses before the
// warpgroup's next wgmma (required before the first, and whenever the
// accumulator or A registers were written by other instructions).
__device__ __forceinline__ void wgmma_fence() { FLINT_WGMMA_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { FLINT_WGMMA_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  FLINT_WGMMA_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Makes this thread's completed generic-proxy writes to shared memory
// (cp.async, st.shared) visible to the async proxy that wgmma reads through.
__device__ __forceinline__ void fence_proxy_async_shared() {
  FLINT_WGMMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Keeps the compiler from moving accumulator registers across wgmma batches.
__device__ __forceinline__ void wgmma_pin(float& x) { FLINT_WGMMA_ASM("" : "+f"(x)::"memory"); }

#define FLINT_F4(d, i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define FLINT_F16(d, i) FLINT_F4(d, i), FLINT_F4(d, i + 4), FLINT_F4(d, i + 8), FLINT_F4(d, i + 12)
#define FLINT_F32(d, i) FLINT_F16(d, i), FLINT_F16(d, i + 16)
#define FLINT_ACC32                                                                                                   \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define FLINT_ACC64                                                                                                   \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, "  \
  "%46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"

// D (m64 x N, f32) = A B + (accumulate ? D : 0), 16-bit operands of type T.
//   ss: A and B from shared memory, both K-major.
//   rs: A from registers (four .b32 of two elements), B MN-major.
template <typename T, int N>
struct Wgmma;

#define FLINT_DEFINE_WGMMA(TYPE, PTX_TYPE)                                                                          \
  template <>                                                                                                       \
  struct Wgmma<TYPE, 64> {                                                                                          \
    __device__ __forceinline__ static void ss(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {             \
      FLINT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                                  \
                      "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " FLINT_ACC32           \
                      ", %32, %33, p, 1, 1, 0, 0;\n}\n"                                                             \
                      : FLINT_F32(d, 0)                                                                             \
                      : "l"(a), "l"(b), "r"(accumulate));                                                           \
    }                                                                                                               \
    __device__ __forceinline__ static void rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b, int accumulate) { \
      FLINT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                                  \
                      "wgmma.mma_async.sync.aligned.m64n64k16.f32." PTX_TYPE "." PTX_TYPE " " FLINT_ACC32           \
                      ", {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"                                               \
                      : FLINT_F32(d, 0)                                                                             \
                      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));                       \
    }                                                                                                               \
  };                                                                                                                \
  template <>                                                                                                       \
  struct Wgmma<TYPE, 128> {                                                                                         \
    __device__ __forceinline__ static void ss(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {             \
      FLINT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                  \
                      "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE " " FLINT_ACC64          \
                      ", %64, %65, p, 1, 1, 0, 0;\n}\n"                                                             \
                      : FLINT_F32(d, 0), FLINT_F32(d, 32)                                                           \
                      : "l"(a), "l"(b), "r"(accumulate));                                                           \
    }                                                                                                               \
    __device__ __forceinline__ static void rs(float (&d)[64], const uint32_t (&a)[4], uint64_t b, int accumulate) { \
      FLINT_WGMMA_ASM("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"                                                  \
                      "wgmma.mma_async.sync.aligned.m64n128k16.f32." PTX_TYPE "." PTX_TYPE " " FLINT_ACC64          \
                      ", {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"                                               \
                      : FLINT_F32(d, 0), FLINT_F32(d, 32)                                                           \
                      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));                       \
    }                                                                                                               \
  };

FLINT_DEFINE_WGMMA(__nv_bfloat16, "bf16")
FLINT_DEFINE_WGMMA(__half, "f16")

#undef FLINT_DEFINE_WGMMA
#undef FLINT_ACC64
#undef FLINT_ACC32
#undef FLINT_F32
#undef FLINT_F16
#undef FLINT_F4

}  // namespace flint::cuda
