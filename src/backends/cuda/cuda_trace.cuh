// backends/cuda/cuda_trace.cuh — a per-CTA timeline of the step kernels, for
// finding where a decode step's time goes between kernels.
//
// Nsight Compute times one kernel at a time, serialised, so it cannot show
// what programmatic dependent launch overlaps or where the GPU waits between
// two kernels. With -DFLINT_CUDA_TRACE=ON (CMake) every step kernel records,
// per CTA: its SM, when it started, when it reached and left
// griddepcontrol.wait, and when its last thread ended (%globaltimer, ns).
// cuda_trace.h turns recording on for a few steps and writes the records to a
// CSV file; scripts/kernel-timeline.py reads it. Without the option
// FLINT_TRACE_KERNEL is empty and the kernels are unchanged.
//
// Use: FLINT_TRACE_KERNEL(tag) as a kernel's first statement (all threads of
// the CTA present: it synchronises them once); wait_for_previous_grid()
// (cuda_launch.cuh) stamps the wait when thread 0 calls it.
#pragma once

#include <cstdint>

namespace flint::cuda::trace {

// What a record names; the host's names are in cuda_trace.cpp. GEMV tags add
// the epilogue (SkinnyEpilogue's value) to their base.
enum Kernel : uint32_t {
  kEmbedding = 1,
  kRmsNorm = 2,
  kRopeTable = 3,
  kRopeCache = 4,
  kAttention = 5,
  kCombine = 6,
  kSampleStats = 7,
  kSampleRow = 8,
  kConvert = 9,
  kSwiglu = 10,
  kBias = 11,
  kFallbackLinear = 12,
  kGatherRows = 13,
  kGemvPipelined = 16,  // + epilogue (0-3)
  kGemvRegister = 32,   // + epilogue (0-3)
};

struct Record {
  uint32_t kernel, block, grid, sm;
  uint64_t entry, wait_begin, wait_end, exit;  // ns; wait_* = entry when the CTA never waited
};

struct Buffer {
  unsigned long long count;  // records written (may pass capacity: those are dropped)
  unsigned long long capacity;
  Record* records;
};

}  // namespace flint::cuda::trace

#if defined(FLINT_CUDA_TRACE) && defined(__CUDACC__)

namespace flint::cuda::trace {

// Each translation unit has its own copy (no relocatable device code); the
// host binds every copy through the registry in cuda_trace.h.
static __device__ Buffer* g_buffer = nullptr;

int register_binder(void (*bind)(Buffer*));
static void bind_this_unit(Buffer* b) { cudaMemcpyToSymbol(g_buffer, &b, sizeof b); }
[[maybe_unused]] static const int g_registered = register_binder(&bind_this_unit);

__device__ __forceinline__ uint64_t now() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ bool is_first_thread() { return threadIdx.x == 0 && threadIdx.y == 0 && threadIdx.z == 0; }

struct CtaState {
  uint64_t entry, wait_begin, wait_end;
  unsigned long long slot;
  uint32_t kernel, exited;
};

__device__ __forceinline__ CtaState& cta_state() {
  __shared__ CtaState state;
  return state;
}

// Stamps entry now and the exit when the CTA's last thread leaves scope. The
// slot is taken at entry so that no atomic's round trip delays the exit (its
// result is first needed there); the exit itself is plain stores.
struct Scope {
  unsigned long long slot = ~0ull;  // thread 0's

  __device__ explicit Scope(uint32_t kernel) {
    CtaState& s = cta_state();
    if (is_first_thread()) {
      s.entry = now();
      s.wait_begin = s.wait_end = 0;
      s.kernel = kernel;
      s.exited = 0;
    }
    __syncthreads();
    if (is_first_thread() && g_buffer != nullptr) slot = atomicAdd(&g_buffer->count, 1ull);
  }
  __device__ ~Scope() {
    CtaState& s = cta_state();
    if (is_first_thread()) s.slot = slot;
    __threadfence_block();
    // One shared atomic per converged group of a warp, not per thread.
    const unsigned active = __activemask();
    unsigned lane;
    asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
    const uint32_t threads = blockDim.x * blockDim.y * blockDim.z;
    unsigned done = 0;
    if (lane == static_cast<unsigned>(__ffs(active) - 1)) done = atomicAdd(&s.exited, __popc(active)) + __popc(active);
    if (done != threads) return;
    const uint64_t exit = now();
    __threadfence_block();
    Buffer* b = g_buffer;
    if (b == nullptr || s.slot >= b->capacity) return;
    uint32_t sm;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
    const uint32_t block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const uint64_t wait_begin = s.wait_begin ? s.wait_begin : s.entry;
    const uint64_t wait_end = s.wait_end ? s.wait_end : s.entry;
    b->records[s.slot] = Record{s.kernel, block, gridDim.x * gridDim.y * gridDim.z, sm, s.entry, wait_begin, wait_end, exit};
  }
};

__device__ __forceinline__ void stamp_wait_begin() {
  if (is_first_thread()) cta_state().wait_begin = now();
}
__device__ __forceinline__ void stamp_wait_end() {
  if (is_first_thread()) cta_state().wait_end = now();
}

}  // namespace flint::cuda::trace

#define FLINT_TRACE_KERNEL(tag) const ::flint::cuda::trace::Scope flint_trace_scope_(tag)
#define FLINT_TRACE_WAIT_BEGIN() ::flint::cuda::trace::stamp_wait_begin()
#define FLINT_TRACE_WAIT_END() ::flint::cuda::trace::stamp_wait_end()

#else

#define FLINT_TRACE_KERNEL(tag) ((void)0)
#define FLINT_TRACE_WAIT_BEGIN() ((void)0)
#define FLINT_TRACE_WAIT_END() ((void)0)

#endif
