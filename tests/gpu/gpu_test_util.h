// tests/gpu/gpu_test_util.h — what the GPU tests share: the skip when no GPU
// is visible, fresh random seeds, poisoned outputs and the comparison.
//
// Every run draws new inputs (the seed is printed with any failure, so a
// failure reproduces by pinning it). Outputs are filled with NaN before an op
// runs, so an element the op forgot to write fails the comparison.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "backends/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "core/tensor.h"
#include "eval/logits_eval.h"
#include "model/weight_source.h"
#include "ops/backend.h"
#include "ops/op_test_util.h"

#define FLINT_REQUIRE_GPU()                                                                          \
  do {                                                                                               \
    if (::flint::cuda_devices().empty()) GTEST_SKIP() << "no GPU: " << ::flint::cuda_unavailable_reason(); \
  } while (0)

namespace flint::testing {

inline uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) | rd();
}

// A device tensor of NaNs (bf16 0x7FC0, f32 quiet NaN).
inline Tensor poisoned(Backend& gpu, DType dtype, const Shape& shape) {
  Tensor host = Tensor::empty(dtype, shape);
  for (int64_t i = 0; i < host.numel(); ++i) store_from_f32(dtype, host.raw(), static_cast<uint64_t>(i), NAN);
  return gpu.from_host(host);
}

// A host f32 copy of any float tensor (exact widening), as a 2-D [rows, cols].
inline Tensor as_f32_2d(const Tensor& t) {
  const int64_t cols = t.dim() == 0 ? 1 : t.size(-1);
  const int64_t rows = cols == 0 ? 0 : t.numel() / cols;
  Tensor out = Tensor::empty(DType::f32, {rows, cols});
  for (int64_t i = 0; i < t.numel(); ++i) out.data<float>()[i] = t.item_f32(i);
  return out;
}

// ||got - ref|| / ||ref|| over all elements (eval/logits_eval.h's yardstick);
// NaN anywhere in `got` makes it NaN, which fails every bound.
inline double relative_error(const Tensor& got, const Tensor& ref) {
  const Tensor g = as_f32_2d(got), r = as_f32_2d(ref);
  if (g.numel() == 0 && r.numel() == 0) return 0.0;
  return compare_logits(g, r).relative_error;
}

// A two-layer dummy model the GPU kernels take (head_dim 64, 8 query heads
// over 2 kv heads, vocabulary 1000), bf16 random weights from `seed`.
inline ModelSource small_dummy_model(uint64_t seed, const char* origin) {
  LlamaConfig c = dummy_config("tiny");
  c.vocab_size = 1000;
  c.hidden_size = 512;
  c.intermediate_size = 1024;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};
  c.validate();
  ModelSource source;
  source.origin = origin;
  source.config = c;
  source.weights = make_dummy_weights(c, DType::bf16, seed);
  source.is_dummy = true;
  return source;
}

inline bool same_bits(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

}  // namespace flint::testing
