// backends/cuda/cuda_trace.h — the host side of the kernel timeline
// (cuda_trace.cuh): which steps are recorded and where the records go.
//
// Only a build with -DFLINT_CUDA_TRACE=ON records; elsewhere on_step() does
// nothing. In such a build, FLINT_CUDA_TRACE_FILE=path turns it on:
// steps FIRST .. FIRST + COUNT - 1 of the process (FLINT_CUDA_TRACE_STEPS=
// FIRST:COUNT, default 60:8; every begin_step counts, prefill included) are
// recorded, then the records are written to path as CSV (one row per CTA:
// kernel,block,grid,sm,entry,wait_begin,wait_end,exit; times in ns of
// %globaltimer) and recording stops. scripts/kernel-timeline.py reads it.
#pragma once

#include <cuda_runtime.h>

namespace flint::cuda::trace {

// At the start of every step, before its first copy or kernel, outside any
// graph capture.
void on_step(cudaStream_t stream);

}  // namespace flint::cuda::trace
