// Dummy models: real Llama shapes with deterministic pseudo-random weights.
#include <omp.h>

#include <cstring>

#include "core/dummy_values.h"
#include "core/error.h"
#include "model/weight_source.h"

namespace flint {
namespace {

struct DummyShape {
  const char* name;
  int64_t vocab, hidden, ffn, layers, heads, kv_heads, head_dim, max_pos;
  bool tied;
  double rope_theta;
  double llama3_factor;  // 0 -> no rope scaling
};

// Published shapes of the Llama 3.x family (config.json of the hub checkpoints).
constexpr DummyShape kShapes[] = {
    {"tiny", 128256, 256, 512, 2, 8, 2, 32, 8192, true, 500000.0, 0.0},
    {"llama-3.2-1b", 128256, 2048, 8192, 16, 32, 8, 64, 131072, true, 500000.0, 32.0},
    {"llama-3.2-3b", 128256, 3072, 8192, 28, 24, 8, 128, 131072, true, 500000.0, 32.0},
    {"llama-3.1-8b", 128256, 4096, 14336, 32, 32, 8, 128, 131072, false, 500000.0, 8.0},
    {"llama-3.1-70b", 128256, 8192, 28672, 80, 64, 8, 128, 131072, false, 500000.0, 8.0},
};

class DummyWeights final : public WeightSource {
 public:
  DummyWeights(const LlamaConfig& config, DType dtype, uint64_t seed) : dtype_(dtype), seed_(seed) {
    FLINT_CHECK(dtype == DType::f32 || dtype == DType::f16 || dtype == DType::bf16,
                "dummy weights must be f32, f16 or bf16, not {}", dtype_name(dtype));
    for (const TensorSpec& spec : expected_llama_tensors(config)) headers_.push_back({spec.name, dtype, spec.shape});
  }

  const std::vector<TensorHeader>& headers() const override { return headers_; }

  Tensor load(const std::string& name) const override {
    const TensorHeader& h = header(name);
    Tensor t = Tensor::empty(dtype_, h.shape);
    const uint64_t key = dummy_tensor_key(seed_, name);
    const bool norm = is_norm_weight(name);
    const auto n = static_cast<int64_t>(t.numel());
    std::byte* out = t.raw();
    const DType dtype = dtype_;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i)
      store_from_f32(dtype, out, static_cast<uint64_t>(i), dummy_weight_value(key, static_cast<uint64_t>(i), norm));
    return t;
  }

  Tensor load_on(const std::string& name, Backend& backend) const override {
    const TensorHeader& h = header(name);
    Tensor t = backend.dummy_weight(dtype_, h.shape, dummy_tensor_key(seed_, name), is_norm_weight(name));
    return t.defined() ? t : load(name);
  }

  std::string describe() const override { return fmt::format("dummy {} weights (seed {})", dtype_name(dtype_), seed_); }

 private:
  const TensorHeader& header(const std::string& name) const {
    for (const TensorHeader& h : headers_)
      if (h.name == name) return h;
    fail({.tensor = name}, "no such tensor in the dummy model");
  }

  std::vector<TensorHeader> headers_;
  DType dtype_;
  uint64_t seed_;
};

}  // namespace

const std::vector<std::string>& dummy_shape_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const DummyShape& s : kShapes) v.emplace_back(s.name);
    return v;
  }();
  return names;
}

LlamaConfig dummy_config(const std::string& shape) {
  for (const DummyShape& s : kShapes) {
    if (shape != s.name) continue;
    LlamaConfig c;
    c.vocab_size = s.vocab;
    c.hidden_size = s.hidden;
    c.intermediate_size = s.ffn;
    c.num_hidden_layers = s.layers;
    c.num_attention_heads = s.heads;
    c.num_key_value_heads = s.kv_heads;
    c.head_dim = s.head_dim;
    c.max_position_embeddings = s.max_pos;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = s.rope_theta;
    if (s.llama3_factor > 0) {
      c.rope_scaling.type = RopeType::llama3;
      c.rope_scaling.factor = s.llama3_factor;
      c.rope_scaling.low_freq_factor = 1.0;
      c.rope_scaling.high_freq_factor = 4.0;
      c.rope_scaling.original_max_position_embeddings = 8192;
    }
    c.tie_word_embeddings = s.tied;
    c.bos_token_ids = {128000};
    c.eos_token_ids = {128001, 128008, 128009};
    c.dtype = DType::bf16;
    c.validate();
    return c;
  }
  std::string valid;
  for (const std::string& n : dummy_shape_names()) valid += (valid.empty() ? "" : ", ") + n;
  fail({.field = "--model"}, "unknown dummy shape 'dummy:{}' (valid: {})", shape, valid);
}

uint64_t dummy_tensor_key(uint64_t seed, const std::string& name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a over the name, then mixed with the seed
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001B3ull;
  return splitmix64(h ^ splitmix64(seed));
}

bool is_norm_weight(const std::string& name) { return name.find("norm.weight") != std::string::npos; }

std::shared_ptr<const WeightSource> make_dummy_weights(const LlamaConfig& config, DType dtype, uint64_t seed) {
  return std::make_shared<DummyWeights>(config, dtype, seed);
}

}  // namespace flint
