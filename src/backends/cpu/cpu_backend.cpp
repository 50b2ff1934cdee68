// The CPU backend: argument checks and the simple row-wise ops live here; the
// heavy kernels (linear, attention, swiglu) are in cpu_kernels.h.
#include "backends/cpu/cpu_backend.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_simd.h"
#include "core/error.h"

namespace flint {
namespace {

bool is_cpu_weight_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

// Row i of a [rows, n] f32/bf16/f16 tensor widened into dst[n].
void row_to_f32(const Tensor& t, int64_t i, int64_t n, float* dst) {
  const size_t at = static_cast<size_t>(i) * static_cast<size_t>(n);
  switch (t.dtype()) {
    case DType::f32: std::copy_n(t.data<float>() + at, n, dst); return;
    case DType::bf16:
      for (int64_t j = 0; j < n; ++j) dst[j] = bf16_bits_to_f32(t.data<uint16_t>()[at + static_cast<size_t>(j)]);
      return;
    case DType::f16:
      for (int64_t j = 0; j < n; ++j) dst[j] = f16_bits_to_f32(t.data<uint16_t>()[at + static_cast<size_t>(j)]);
      return;
    default: FLINT_ASSERT(false);
  }
}

void check_act(const Tensor& t, const char* op, const char* what, const Shape& shape) {
  FLINT_CHECK(t.defined() && t.device() == Device::cpu, "{}: {} must be a CPU tensor", op, what);
  FLINT_CHECK(t.dtype() == DType::f32, "{}: {} must be f32, got {}", op, what, dtype_name(t.dtype()));
  FLINT_CHECK(t.is_contiguous(), "{}: {} must be contiguous", op, what);
  FLINT_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, what, shape_to_string(t.shape()),
              shape_to_string(shape));
}

void check_weight(const Tensor& t, const char* op, const char* what) {
  FLINT_CHECK(t.defined() && t.device() == Device::cpu, "{}: {} must be a CPU tensor", op, what);
  FLINT_CHECK(is_cpu_weight_dtype(t.dtype()), "{}: {} has dtype {}; the CPU backend takes f32, bf16, f16", op, what,
              dtype_name(t.dtype()));
  FLINT_CHECK(t.is_contiguous(), "{}: {} must be contiguous", op, what);
}

// HF's LlamaRMSNorm in f32,
// w * (x * rsqrt(mean(x^2) + eps)). The mean is summed in double, as close to
// torch's pairwise sum as a serial loop gets.
void rms_norm_rows(const float* x, const Tensor& weight, float eps, int64_t n, int64_t h, float* out) {
  std::vector<float> w(static_cast<size_t>(h));
  row_to_f32(weight, 0, h, w.data());
#pragma omp parallel for schedule(static) if (n > 1)
  for (int64_t t = 0; t < n; ++t) {
    const float* xt = x + t * h;
    double ss = 0.0;
    for (int64_t i = 0; i < h; ++i) ss += static_cast<double>(xt[i]) * xt[i];
    const float r = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(h)) + eps);
    float* o = out + t * h;
    for (int64_t i = 0; i < h; ++i) o[i] = w[static_cast<size_t>(i)] * (xt[i] * r);
  }
}

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu; }
  std::string name() const override { return "cpu"; }
  DType activation_dtype() const override { return DType::f32; }

  Tensor empty(DType dtype, Shape shape) override { return Tensor::empty(dtype, std::move(shape)); }

  Tensor prepare_weight(const Tensor& host, DType compute_dtype) override {
    FLINT_CHECK(host.defined() && host.device() == Device::cpu, "prepare_weight: expected a host tensor");
    FLINT_CHECK(is_cpu_weight_dtype(host.dtype()),
                "the CPU backend runs f32, bf16 and f16 weights; got a {} tensor of shape {}", dtype_name(host.dtype()),
                shape_to_string(host.shape()));
    const Tensor t = host.is_contiguous() ? host : host.contiguous_copy();
    // Norm weights and biases are tiny and read every step: widen them once.
    // Matrices stay as they are (an mmap'd view is never copied).
    if (compute_dtype == DType::f32 && t.dim() <= 1 && t.dtype() != DType::f32) {
      Tensor f = Tensor::empty(DType::f32, t.shape());
      row_to_f32(t, 0, t.numel(), f.data<float>());
      return f;
    }
    return t;
  }

  KvCache create_kv_cache(const KvCacheShape& shape) override {
    shape.check();
    FLINT_CHECK(is_cpu_weight_dtype(shape.dtype), "KV cache dtype {} is not supported on the CPU (f32, bf16, f16)",
                dtype_name(shape.dtype));
    KvCache cache;
    cache.shape = shape;
    const Shape s = {shape.num_blocks, shape.kv_heads, shape.block_size, shape.head_dim};
    for (int32_t l = 0; l < shape.num_layers; ++l) {
      cache.k.push_back(Tensor::empty(shape.dtype, s));
      cache.v.push_back(Tensor::empty(shape.dtype, s));
    }
    return cache;
  }

  Tensor to_host(const Tensor& t) override { return t.contiguous_copy(); }
  Tensor from_host(const Tensor& t) override { return t.contiguous_copy(); }
  void synchronize() override {}

  void begin_step(const Batch& batch, const KvCache& cache) override {
    batch.validate(cache.shape.block_size, cache.shape.num_blocks);
    for (int32_t from : batch.token_from_sample)
      FLINT_CHECK(from < 0, "batch: token_from_sample needs a backend that samples on its device, not the CPU");
    batch_ = batch;
    step_shape_ = cache.shape;
    token_seq_.assign(static_cast<size_t>(batch.num_tokens()), 0);
    for (int32_t s = 0; s < batch.num_seqs(); ++s)
      for (int32_t t = batch.query_starts[static_cast<size_t>(s)]; t < batch.query_starts[static_cast<size_t>(s) + 1];
           ++t)
        token_seq_[static_cast<size_t>(t)] = s;
    have_step_ = true;
  }

  void embedding(const Tensor& table, Tensor& out) override {
    require_step("embedding");
    check_weight(table, "embedding", "table");
    FLINT_CHECK(table.dim() == 2, "embedding: table must be [vocab, hidden], got {}", shape_to_string(table.shape()));
    const int64_t vocab = table.size(0), h = table.size(1), n = batch_.num_tokens();
    check_act(out, "embedding", "out", {n, h});
    for (int64_t t = 0; t < n; ++t) {
      const int32_t id = batch_.token_ids[static_cast<size_t>(t)];
      FLINT_CHECK(id >= 0 && id < vocab, "embedding: token id {} (batch row {}) is outside the vocabulary [0, {})", id,
                  t, vocab);
    }
#pragma omp parallel for schedule(static) if (n > 8)
    for (int64_t t = 0; t < n; ++t)
      row_to_f32(table, batch_.token_ids[static_cast<size_t>(t)], h, out.data<float>() + t * h);
  }

  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    FLINT_CHECK(x.dim() == 2, "rms_norm: x must be [N, H], got {}", shape_to_string(x.shape()));
    check_act(x, "rms_norm", "x", x.shape());
    check_act(out, "rms_norm", "out", x.shape());
    check_norm_weight(weight, x.size(1), "rms_norm");
    rms_norm_rows(x.data<float>(), weight, eps, x.size(0), x.size(1), out.data<float>());
  }

  void linear(const Tensor& x, const Linear& w, Tensor& out) override {
    FLINT_CHECK(x.dim() == 2, "linear: x must be [N, in], got {}", shape_to_string(x.shape()));
    const int64_t n = x.size(0);
    check_act(x, "linear", "x", {n, w.in_features});
    check_act(out, "linear", "out", {n, w.out_features});
    std::vector<cpu::WeightRows> parts;
    int64_t rows = 0;
    for (const Tensor& part : w.parts) {
      check_weight(part, "linear", "weight");
      FLINT_CHECK(part.dim() == 2 && part.size(1) == w.in_features, "linear: weight part {} does not take {} inputs",
                  shape_to_string(part.shape()), w.in_features);
      parts.push_back({part.raw(), part.dtype(), part.size(0)});
      rows += part.size(0);
    }
    FLINT_CHECK(rows == w.out_features, "linear: parts hold {} rows for {} outputs", rows, w.out_features);
    const float* bias = nullptr;
    if (w.bias.defined()) {
      check_act(w.bias, "linear", "bias", {w.out_features});
      bias = w.bias.data<float>();
    }
    cpu::linear(x.data<float>(), n, w.in_features, parts, bias, out.data<float>(), w.out_features);
  }

  void linear_add(const Tensor& x, const Linear& w, Tensor& residual, Tensor& scratch) override {
    FLINT_CHECK(x.dim() == 2, "linear_add: x must be [N, in], got {}", shape_to_string(x.shape()));
    check_act(residual, "linear_add", "residual", {x.size(0), w.out_features});
    FLINT_CHECK(residual.raw() != x.raw() && residual.raw() != scratch.raw(),
                "linear_add: residual must be a tensor of its own, not x or scratch");
    linear(x, w, scratch);
    float* r = residual.data<float>();
    const float* d = scratch.data<float>();
    const int64_t count = residual.numel();
#pragma omp parallel for schedule(static) if (count > 65536)
    for (int64_t i = 0; i < count; ++i) r[i] += d[i];
  }

  void rope_and_cache(Tensor& qkv, const RopeTables& rope, const AttentionParams& p, KvCache& cache,
                      int32_t layer) override {
    check_attention_args(qkv, p, cache, layer, "rope_and_cache");
    check_act(rope.inv_freq, "rope_and_cache", "inv_freq", {p.head_dim / 2});
    cpu::rope_and_cache(qkv.data<float>(), rope.inv_freq.data<float>(), p, step_view(), cache.k[static_cast<size_t>(layer)],
                        cache.v[static_cast<size_t>(layer)]);
  }

  void attention(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer,
                 Tensor& out) override {
    check_attention_args(qkv, p, cache, layer, "attention");
    check_act(out, "attention", "out", {batch_.num_tokens(), static_cast<int64_t>(p.num_heads) * p.head_dim});
    cpu::attention(qkv.data<float>(), p, step_view(), cache.k[static_cast<size_t>(layer)],
                   cache.v[static_cast<size_t>(layer)], out.data<float>());
  }

  void swiglu(const Tensor& gate_up, Tensor& out) override {
    FLINT_CHECK(gate_up.dim() == 2 && gate_up.size(1) % 2 == 0, "swiglu: gate_up must be [N, 2F], got {}",
                shape_to_string(gate_up.shape()));
    check_act(gate_up, "swiglu", "gate_up", gate_up.shape());
    const int64_t n = gate_up.size(0), f = gate_up.size(1) / 2;
    check_act(out, "swiglu", "out", {n, f});
    cpu::swiglu(gate_up.data<float>(), n, f, out.data<float>());
  }

  void gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) override {
    FLINT_CHECK(x.dim() == 2, "gather_rows: x must be [T, H], got {}", shape_to_string(x.shape()));
    check_act(x, "gather_rows", "x", x.shape());
    const int64_t t = x.size(0), h = x.size(1);
    check_act(out, "gather_rows", "out", {static_cast<int64_t>(rows.size()), h});
    for (int32_t r : rows) FLINT_CHECK(r >= 0 && r < t, "gather_rows: row {} outside [0, {})", r, t);
    for (size_t i = 0; i < rows.size(); ++i)
      std::copy_n(x.data<float>() + rows[i] * h, h, out.data<float>() + static_cast<int64_t>(i) * h);
  }

 private:
  void require_step(const char* op) const {
    FLINT_CHECK(have_step_, "{}: begin_step() must be called first", op);
  }

  void check_norm_weight(const Tensor& w, int64_t h, const char* op) const {
    check_weight(w, op, "weight");
    FLINT_CHECK(w.numel() == h && w.dim() == 1, "{}: weight has shape {}, expected [{}]", op,
                shape_to_string(w.shape()), h);
  }

  void check_attention_args(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer,
                            const char* op) const {
    require_step(op);
    const Shape expect = check_attention_params(p, cache, layer, step_shape_, op);
    for (const Tensor* t : {&cache.k[static_cast<size_t>(layer)], &cache.v[static_cast<size_t>(layer)]}) {
      FLINT_CHECK(t->defined() && t->device() == Device::cpu && t->is_contiguous() && t->shape() == expect &&
                      t->dtype() == cache.shape.dtype && is_cpu_weight_dtype(t->dtype()),
                  "{}: cache tensors of layer {} must be contiguous CPU {} {}", op, layer, dtype_name(cache.shape.dtype),
                  shape_to_string(expect));
    }
    check_act(qkv, op, "qkv",
              {batch_.num_tokens(), static_cast<int64_t>(p.num_heads + 2 * p.kv_heads) * p.head_dim});
  }

  cpu::StepView step_view() const { return {&batch_, token_seq_.data(), step_shape_.block_size}; }

  Batch batch_;
  std::vector<int32_t> token_seq_;  // [T] sequence index of each token
  KvCacheShape step_shape_;
  bool have_step_ = false;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace flint
