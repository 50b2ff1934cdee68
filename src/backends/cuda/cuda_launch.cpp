#include "backends/cuda/cuda_launch.cuh"

#include <cstdlib>
#include <string_view>

#include "backends/cuda/cuda_backend.h"

namespace flint::cuda {
namespace {

struct LaunchMode {
  bool enabled = false;
  const char* description = "";
};

LaunchMode decide_launch_mode() {
  if (const char* v = std::getenv("FLINT_CUDA_PDL")) {
    const std::string_view s(v);
    if (s == "0" || s == "off" || s == "false") return {false, "off"};
  }
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();  // no device: nothing will be launched anyway
    return {false, "off, no device"};
  }
  if (major < 9) return {false, "off, needs sm_90"};
  return {true, "on"};
}

const LaunchMode& launch_mode() {
  static const LaunchMode mode = decide_launch_mode();
  return mode;
}

}  // namespace

bool programmatic_launch_enabled() { return launch_mode().enabled; }

int multiprocessor_count() {
  int device = 0, count = 0;
  FLINT_CUDA_CHECK(cudaGetDevice(&device));
  FLINT_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

int compute_capability_major() {
  int device = 0, major = 0;
  FLINT_CUDA_CHECK(cudaGetDevice(&device));
  FLINT_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  return major;
}

}  // namespace flint::cuda

namespace flint {
const char* cuda_programmatic_launch_mode() { return cuda::launch_mode().description; }
}  // namespace flint
