// backends/cuda/cuda_backend.h — the CUDA side of Flint, seen from outside.
//
// Contract: no CUDA type appears here; callers above backends/ get plain C++.
// Every CUDA call inside is checked and turned into a flint::Error that names
// the call. Functions that need a GPU throw a clear error when none is visible.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backends.h"
#include "ops/backend.h"

namespace flint {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  int compute_capability = 0;  // 90 for sm_90
  int multiprocessors = 0;
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
};
// Every visible GPU; empty (never an error) when there is no driver or device.
std::vector<CudaDeviceInfo> cuda_devices();
std::string cuda_unavailable_reason();  // why cuda_devices() is empty

// The CUDA backend (device 0): bf16 activations and weights, f32 norm weights,
// biases and accumulation; see docs/CUDA.md.
// Decode steps as CUDA graphs (docs/CUDA.md): off; eager = pad decode steps to
// the graph buckets but run them op by op (for tests: same work as `on`,
// without capture); on = pad, capture once per shape, replay.
enum class CudaGraphMode { off, eager, on };
// From the environment: FLINT_CUDA_GRAPHS=0 (or off) turns graphs off,
// FLINT_CUDA_GRAPHS=eager pads without capturing; otherwise on.
CudaGraphMode cuda_graph_mode_from_env();
const char* cuda_graph_mode_name(CudaGraphMode mode);
// Programmatic dependent launch of the step's kernels (cuda_launch.cuh): "on",
// "off" (FLINT_CUDA_PDL=0), or "off, <reason>" (a GPU before sm_90, none).
const char* cuda_programmatic_launch_mode();

struct CudaBackendOptions {
  // Rows of x up to which linear() streams the weight through the skinny
  // tensor-core GEMV instead of cuBLASLt (0 = always cuBLASLt; at most 32).
  int32_t gemv_max_rows = 16;
  CudaGraphMode graphs = cuda_graph_mode_from_env();
  // Decode-sized steps (rows <= gemv_max_rows): RoPE and the K/V cache write
  // in the q/k/v GEMV's epilogue. FLINT_CUDA_FUSE=0 turns it off (make_cuda_backend).
  bool rope_into_gemv = true;
  // Decode-sized steps on sm_90: the o projection's GEMV combines the
  // attention's split-KV partials (no combine kernel between the two).
  // FLINT_CUDA_COMBINE=kernel (or FLINT_CUDA_FUSE=0) turns it off (make_cuda_backend).
  bool merge_splits_into_gemv = true;
};
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options = {});
DeviceCeilings measure_cuda_ceilings();

// KV-cache blocks of `bytes_per_block` that fit when the process may use
// `fraction` (0, 1] of the GPU's memory in all: what is already allocated
// (weights, activations, other processes) and `reserve_bytes` more are taken
// off first. Throws flint::Error (field --gpu-memory-fraction) naming the
// bytes when not even one block fits.
int32_t cuda_kv_blocks_for(double fraction, uint64_t bytes_per_block, uint64_t reserve_bytes = 0);

// A dummy weight made on the GPU with core/dummy_values.h (no host copy).
Tensor cuda_dummy_tensor(DType dtype, const Shape& shape, uint64_t tensor_key, bool is_norm);
// A contiguous host copy of a contiguous device tensor.
Tensor cuda_to_host(const Tensor& t);

}  // namespace flint
