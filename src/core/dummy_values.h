// core/dummy_values.h — the values of dummy weights, as a pure function.
//
// Contract: element `index` of a dummy tensor with key `tensor_key` has the
// value dummy_weight_value(key, index, is_norm) on every device: the CPU fills
// tensors with it and the CUDA backend evaluates the same code in a kernel, so
// weights are generated where they live, never copied from the host.
// Values: uniform in [-0.04, 0.04) (about the 0.02-std init of HF Llama), or
// 1 +- 0.04 for norm weights, so activations stay in range through many layers.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define FLINT_HOST_DEVICE __host__ __device__
#else
#define FLINT_HOST_DEVICE
#endif

namespace flint {

FLINT_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

FLINT_HOST_DEVICE inline float dummy_weight_value(uint64_t tensor_key, uint64_t index, bool is_norm) {
  const uint64_t bits = splitmix64(tensor_key + index * 0x9E3779B97F4A7C15ull);
  // 24 random bits -> uniform in [-1, 1), exact in float.
  const float u = static_cast<float>(static_cast<int64_t>(bits >> 40) - (int64_t{1} << 23)) * (1.0f / 8388608.0f);
  // Separately rounded multiply and add on the GPU too: nvcc would fuse them
  // into one FMA and the values would differ from the host's in the last bit.
#if defined(__CUDA_ARCH__)
  const float scaled = __fmul_rn(0.04f, u);
  return is_norm ? __fadd_rn(1.0f, scaled) : scaled;
#else
  const float scaled = 0.04f * u;
  return is_norm ? 1.0f + scaled : scaled;
#endif
}

}  // namespace flint
