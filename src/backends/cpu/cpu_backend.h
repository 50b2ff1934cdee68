// backends/cpu/cpu_backend.h — the CPU backend: the reference every other
// backend is tested against, and fast enough to use (OpenMP, AVX2 kernels
// chosen at run time with a portable fallback; batch-invariant: see
// cpu_kernels.h).
//
// Contract: implements ops/backend.h with f32 activations; weights stay in their
// checkpoint dtype (bf16/f16/f32, mmap'd views are never copied) and are
// converted on the fly; every accumulation is f32.
#pragma once

#include <memory>

#include "ops/backend.h"

namespace flint {

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace flint
