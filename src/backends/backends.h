// backends/backends.h — picks a compute backend by device.
//
// Contract: make_backend(Device::cpu) always works; Device::cuda works when the
// CUDA backend was built and a GPU is visible, else throws flint::Error saying
// which. Lives above every backend so that ops/ and model/ never name one.
#pragma once

#include <memory>
#include <string>

#include "ops/backend.h"

namespace flint {

std::unique_ptr<Backend> make_backend(Device device);
Device parse_device(const std::string& name);  // "cpu" | "cuda"; Error naming --device otherwise
bool cuda_backend_built();
// How make_backend(device) runs decode steps, for reports: "op by op" on the
// CPU; the CUDA backend's graph mode (FLINT_CUDA_GRAPHS, docs/CUDA.md).
std::string step_execution(Device device);
// KV-cache blocks of `bytes_per_block` that fit in `fraction` of the GPU's
// memory beside what is allocated now and `reserve_bytes` more (CUDA only:
// cuda_kv_blocks_for); throws flint::Error naming --gpu-memory-fraction.
int32_t gpu_kv_blocks_for(Device device, double fraction, uint64_t bytes_per_block, uint64_t reserve_bytes);

}  // namespace flint

namespace flint {

// What the hardware under a backend can do, measured now (benchmarks report
// every figure beside the floor these imply).
struct DeviceCeilings {
  double copy_bytes_per_s = 0;  // large copy, bytes read + written per second
  double gemm_flops_per_s = 0;  // large f32 (CPU) / bf16 (CUDA) matrix product
  std::string copy_method, gemm_method;
};
DeviceCeilings measure_ceilings(Device device);

}  // namespace flint
