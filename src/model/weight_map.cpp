#include "model/weight_map.h"

#include <fmt/ranges.h>

#include <unordered_map>

#include "core/error.h"

namespace flint {

std::vector<TensorSpec> expected_llama_tensors(const LlamaConfig& c) {
  const int64_t V = c.vocab_size, H = c.hidden_size, F = c.intermediate_size;
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  std::vector<TensorSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {V, H}});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string layer = fmt::format("model.layers.{}.", i);
    // A projection's weight is [out, in]; its bias, when the config has one, [out].
    auto linear = [&](const char* name, int64_t out, int64_t in, bool bias) {
      specs.push_back({layer + name + ".weight", {out, in}});
      if (bias) specs.push_back({layer + name + ".bias", {out}});
    };
    specs.push_back({layer + "input_layernorm.weight", {H}});
    linear("self_attn.q_proj", q, H, c.attention_bias);
    linear("self_attn.k_proj", kv, H, c.attention_bias);
    linear("self_attn.v_proj", kv, H, c.attention_bias);
    linear("self_attn.o_proj", H, q, c.attention_bias);
    specs.push_back({layer + "post_attention_layernorm.weight", {H}});
    linear("mlp.gate_proj", F, H, c.mlp_bias);
    linear("mlp.up_proj", F, H, c.mlp_bias);
    linear("mlp.down_proj", H, F, c.mlp_bias);
  }
  specs.push_back({"model.norm.weight", {H}});
  if (!c.tie_word_embeddings) specs.push_back({"lm_head.weight", {V, H}});
  return specs;
}

namespace {

constexpr size_t kListed = 20;  // per kind of problem, so that one line stays readable

// One kind of problem and the items found of it, the first kListed kept.
class ProblemList {
 public:
  ProblemList(const char* singular, const char* plural) : singular_(singular), plural_(plural) {}

  void add(std::string item) {
    if (items_.size() < kListed) items_.push_back(std::move(item));
    ++count_;
  }
  bool empty() const { return count_ == 0; }

  // "2 missing tensors: a, b" / "25 ...: a, ..., t ... and 5 more"
  std::string render() const {
    std::string out = fmt::format("{} {}: {}", count_, count_ == 1 ? singular_ : plural_, fmt::join(items_, ", "));
    if (count_ > items_.size()) out += fmt::format(" ... and {} more", count_ - items_.size());
    return out;
  }

 private:
  const char* singular_;
  const char* plural_;
  std::vector<std::string> items_;
  size_t count_ = 0;
};

}  // namespace

void check_llama_tensors(const LlamaConfig& c, const std::vector<TensorHeader>& present, const std::string& source) {
  const std::vector<TensorSpec> expected = expected_llama_tensors(c);
  std::unordered_map<std::string_view, size_t> index;  // name -> position in `expected`
  index.reserve(expected.size());
  for (size_t i = 0; i < expected.size(); ++i) index.emplace(expected[i].name, i);
  std::vector<bool> seen(expected.size(), false);

  ProblemList missing("missing tensor", "missing tensors");
  ProblemList unexpected("unexpected tensor", "unexpected tensors");
  ProblemList duplicated("duplicated tensor", "duplicated tensors");
  ProblemList wrong_shape("shape mismatch", "shape mismatches");
  ProblemList wrong_dtype("tensor with a non-float dtype", "tensors with a non-float dtype");

  for (const TensorHeader& t : present) {
    if (t.name.ends_with("rotary_emb.inv_freq")) continue;
    if (c.tie_word_embeddings && t.name == "lm_head.weight") continue;
    const auto it = index.find(t.name);
    if (it == index.end()) {
      unexpected.add(t.name);
      continue;
    }
    if (seen[it->second]) {
      duplicated.add(t.name);
      continue;
    }
    seen[it->second] = true;
    const Shape& want = expected[it->second].shape;
    if (t.shape != want)
      wrong_shape.add(
          fmt::format("{}: expected shape {}, got {}", t.name, shape_to_string(want), shape_to_string(t.shape)));
    if (!dtype_is_float(t.dtype)) wrong_dtype.add(fmt::format("{} ({})", t.name, dtype_name(t.dtype)));
  }
  for (size_t i = 0; i < expected.size(); ++i)
    if (!seen[i]) missing.add(expected[i].name);

  std::string message;
  for (const ProblemList* p : {&missing, &unexpected, &duplicated, &wrong_shape, &wrong_dtype})
    if (!p->empty()) message += (message.empty() ? "" : "; ") + p->render();
  if (!message.empty()) fail({.file = source}, "the tensors do not match config.json: {}", message);
}

}  // namespace flint
