#include "model/llama.h"

#include <atomic>
#include <cmath>

#include "core/error.h"
#include "model/memory_plan.h"

namespace flint {
namespace {

std::string layer_name(int64_t i, const char* leaf) { return fmt::format("model.layers.{}.{}", i, leaf); }

// Concatenates optional bias vectors (q/k/v or gate/up) on the host; small.
Tensor concat_bias(const WeightSource& src, const std::vector<std::string>& names) {
  std::vector<Tensor> parts;
  int64_t n = 0;
  for (const std::string& name : names) {
    parts.push_back(src.load(name));
    n += parts.back().numel();
  }
  Tensor out = Tensor::empty(DType::f32, {n});
  int64_t at = 0;
  for (const Tensor& p : parts)
    for (int64_t i = 0; i < p.numel(); ++i) out.data<float>()[at++] = p.item_f32(i);
  return out;
}

std::atomic<uint64_t> g_next_step_key{1};

}  // namespace

LlamaModel::LlamaModel(const ModelSource& source, Backend& backend)
    : config_(source.config), backend_(backend), step_key_(g_next_step_key.fetch_add(1)) {
  const WeightSource& src = *source.weights;
  const LlamaConfig& c = config_;
  const DType wt = c.dtype;  // compute dtype the backend may convert weights to
  backend_.check_weights_fit(plan_memory(c, src.headers(), {}).num_parameters, source.origin);
  auto load = [&](const std::string& name) { return src.load_on(name, backend_); };
  auto norm = [&](const std::string& name) { return backend_.prepare_weight(load(name), DType::f32); };
  auto linear = [&](const std::vector<std::string>& names, const std::vector<std::string>& bias_names) {
    std::vector<Tensor> parts;
    for (const std::string& n : names) parts.push_back(load(n));
    Tensor bias = bias_names.empty() ? Tensor() : concat_bias(src, bias_names);
    return backend_.prepare_linear(parts, bias, wt);
  };

  w_.embed = backend_.prepare_weight(load("model.embed_tokens.weight"), wt);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    auto n = [i](const char* leaf) { return layer_name(i, leaf); };
    LayerWeights l;
    l.attn_norm = norm(n("input_layernorm.weight"));
    std::vector<std::string> qkv_bias, o_bias, gate_up_bias, down_bias;
    if (c.attention_bias) {
      qkv_bias = {n("self_attn.q_proj.bias"), n("self_attn.k_proj.bias"), n("self_attn.v_proj.bias")};
      o_bias = {n("self_attn.o_proj.bias")};
    }
    if (c.mlp_bias) {
      gate_up_bias = {n("mlp.gate_proj.bias"), n("mlp.up_proj.bias")};
      down_bias = {n("mlp.down_proj.bias")};
    }
    l.qkv = linear({n("self_attn.q_proj.weight"), n("self_attn.k_proj.weight"), n("self_attn.v_proj.weight")},
                   qkv_bias);
    l.o = linear({n("self_attn.o_proj.weight")}, o_bias);
    l.mlp_norm = norm(n("post_attention_layernorm.weight"));
    l.gate_up = linear({n("mlp.gate_proj.weight"), n("mlp.up_proj.weight")}, gate_up_bias);
    l.down = linear({n("mlp.down_proj.weight")}, down_bias);
    w_.layers.push_back(std::move(l));
  }
  w_.final_norm = norm("model.norm.weight");
  if (c.tie_word_embeddings) {
    // The prepared table itself: a backend that uploads must not hold it twice.
    w_.lm_head.parts = {w_.embed};
    w_.lm_head.in_features = c.hidden_size;
    w_.lm_head.out_features = c.vocab_size;
  } else {
    w_.lm_head = linear({"lm_head.weight"}, {});
  }

  // inv_freq in f32, as HF keeps it, so positions rotate by the same angles.
  const std::vector<double> inv_freq = rope_inv_freq(c);
  Tensor f = Tensor::empty(DType::f32, {static_cast<int64_t>(inv_freq.size())});
  for (size_t i = 0; i < inv_freq.size(); ++i) f.data<float>()[i] = static_cast<float>(inv_freq[i]);
  rope_.inv_freq = backend_.from_host(f);
  attn_.num_heads = static_cast<int32_t>(c.num_attention_heads);
  attn_.kv_heads = static_cast<int32_t>(c.num_key_value_heads);
  attn_.head_dim = static_cast<int32_t>(c.head_dim);
  attn_.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));
}

KvCacheShape LlamaModel::kv_cache_shape(int32_t num_blocks, int32_t block_size, DType kv_dtype) const {
  KvCacheShape s;
  s.num_layers = static_cast<int32_t>(config_.num_hidden_layers);
  s.num_blocks = num_blocks;
  s.block_size = block_size;
  s.kv_heads = static_cast<int32_t>(config_.num_key_value_heads);
  s.head_dim = static_cast<int32_t>(config_.head_dim);
  s.dtype = kv_dtype;
  return s;
}

Tensor LlamaModel::forward(const Batch& batch, KvCache& cache) {
  return backend_.run_step(batch, cache, step_key_, [&](const Batch& step) { return step_body(step, cache); });
}

Tensor LlamaModel::step_body(const Batch& batch, KvCache& cache) {
  const LlamaConfig& c = config_;
  Backend& b = backend_;
  const int64_t T = batch.num_tokens();
  const int64_t R = static_cast<int64_t>(batch.logits_rows.size());
  const int64_t H = c.hidden_size, F = c.intermediate_size;
  const int64_t q_width = c.num_attention_heads * c.head_dim;
  const int64_t qkv_width = q_width + 2 * c.num_key_value_heads * c.head_dim;
  const DType act = b.activation_dtype();
  const auto eps = static_cast<float>(c.rms_norm_eps);

  Tensor x = b.empty(act, {T, H});       // the residual stream
  Tensor normed = b.empty(act, {T, H});  // a norm's output, where the backend makes it
  Tensor delta = b.empty(act, {T, H});   // a sublayer's output, where the backend makes it
  Tensor qkv = b.empty(act, {T, qkv_width});
  Tensor attn = b.empty(act, {T, q_width});
  Tensor gate_up = b.empty(act, {T, 2 * F});
  Tensor mlp = b.empty(act, {T, F});

  b.embedding(w_.embed, x);
  for (size_t i = 0; i < w_.layers.size(); ++i) {
    const LayerWeights& l = w_.layers[i];
    const auto layer = static_cast<int32_t>(i);
    // x += attention(norm(x))
    b.rms_norm_qkv_rope(x, l.attn_norm, eps, l.qkv, rope_, attn_, cache, layer, normed, qkv);
    b.attention_linear_add(qkv, attn_, cache, layer, attn, l.o, x, delta);
    // x += mlp(norm(x))
    b.rms_norm_linear_swiglu(x, l.mlp_norm, eps, l.gate_up, normed, gate_up, mlp);
    b.linear_add(mlp, l.down, x, delta);
  }
  // Only the rows that sample go through the final norm and the lm_head.
  Tensor rows = b.empty(act, {R, H});
  b.gather_rows(x, batch.logits_rows, rows);
  Tensor rows_normed = b.empty(act, {R, H});
  Tensor logits = b.empty(DType::f32, {R, c.vocab_size});
  b.rms_norm_linear(rows, w_.final_norm, eps, w_.lm_head, rows_normed, logits);
  return logits;
}

}  // namespace flint
