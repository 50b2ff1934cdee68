// backends/cuda/cuda_launch.cuh — kernel launches with programmatic dependent
// launch (PDL, sm_90 and later).
//
// A decode step is ~150-300 short kernels back to back; between two of them
// the GPU idles while the next grid is launched and ramps up. With PDL the
// next kernel is launched while the previous one still runs: its CTAs take
// free SM slots, do what needs none of the previous kernel's output (index
// math; the GEMV streams its first weight chunk), then wait for it.
//
// Contract for every kernel launched with launch_kernel():
// - before wait_for_previous_grid() it may read only memory that is read-only
//   while steps run: weights (the backend's prepare_*/dummy_weight finish
//   their writes before they return) and the step arrays (copied in before the
//   step's first kernel). Everything else, and every write, comes after the
//   wait, which returns when the whole previous grid has finished and its
//   writes are visible (that grid waited on its own predecessor, so all
//   earlier work is done too);
// - it may call allow_next_grid() anywhere (it only lets the next launch
//   begin; the next kernel still waits for this one to finish).
// Where it calls it decides how early the next grid's CTAs take SM slots.
// Before the wait, the next grid is launched while this one may still wait
// on its own predecessor, so the next CTAs fill SMs as the grid two back
// drains: what the pipelined GEMV wants (a persistent CTA per SM that streams
// weights before its wait). The RMSNorm kernels, the pipelined GEMV and the
// split-KV combine ahead of one trigger first; every other kernel after its
// wait: triggered first, the register GEMVs and the attention kernels made
// 16-row decode steps 15-27% slower (docs/PERF.md).
// Kernels launched with <<<>>> are ordered the usual way, before and after.
// Off (plain stream order) on GPUs before sm_90 and when FLINT_CUDA_PDL=0.
#pragma once

#include <cuda_runtime.h>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_trace.cuh"

namespace flint::cuda {

// Whether launch_kernel() asks for programmatic dependent launch: on when the
// current device is sm_90 or later and FLINT_CUDA_PDL is not 0 / off.
bool programmatic_launch_enabled();

// Of the current device (for grid sizes and kernel choices).
int multiprocessor_count();
int compute_capability_major();

template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem_bytes, cudaStream_t stream,
                   Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = programmatic_launch_enabled() ? 1 : 0;
  FLINT_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<Args&&>(args)...));
}

#ifdef __CUDACC__
__device__ __forceinline__ void wait_for_previous_grid() {
  FLINT_TRACE_WAIT_BEGIN();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
  FLINT_TRACE_WAIT_END();
}

__device__ __forceinline__ void allow_next_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
#endif

}  // namespace flint::cuda
