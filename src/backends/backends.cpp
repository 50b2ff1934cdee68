#include "backends/backends.h"

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef FLINT_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#endif

namespace flint {

bool cuda_backend_built() {
#ifdef FLINT_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

std::unique_ptr<Backend> make_backend(Device device) {
  if (device == Device::cpu) return make_cpu_backend();
#ifdef FLINT_HAVE_CUDA
  return make_cuda_backend();
#else
  fail({.field = "--device"}, "this flint was built without the CUDA backend (configure with -DFLINT_CUDA=ON)");
#endif
}

std::string step_execution(Device device) {
#ifdef FLINT_HAVE_CUDA
  if (device == Device::cuda)
    return std::string("cuda graphs ") + cuda_graph_mode_name(cuda_graph_mode_from_env()) +
           " (FLINT_CUDA_GRAPHS), programmatic launch " + cuda_programmatic_launch_mode() + " (FLINT_CUDA_PDL)";
#endif
  (void)device;
  return "op by op";
}

int32_t gpu_kv_blocks_for(Device device, double fraction, uint64_t bytes_per_block, uint64_t reserve_bytes) {
  FLINT_CHECK(device == Device::cuda, ErrorContext{.field = "--gpu-memory-fraction"},
              "applies to --device cuda only; size the CPU's KV cache with --kv-cache-gib");
#ifdef FLINT_HAVE_CUDA
  return cuda_kv_blocks_for(fraction, bytes_per_block, reserve_bytes);
#else
  (void)fraction, (void)bytes_per_block, (void)reserve_bytes;
  fail({.field = "--device"}, "this flint was built without the CUDA backend (configure with -DFLINT_CUDA=ON)");
#endif
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  fail({.field = "--device"}, "unknown device '{}' (cpu or cuda)", name);
}

}  // namespace flint
