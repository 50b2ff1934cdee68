// The tensors a config implies, and how a checkpoint that disagrees is reported.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>

#include "core/error.h"
#include "model/config.h"
#include "model/weight_map.h"

namespace flint {
namespace {

// A small GQA config: 3 layers, 4 heads of 8, 2 KV heads, ffn 40.
LlamaConfig small_config() {
  LlamaConfig c;
  c.vocab_size = 100;
  c.hidden_size = 32;
  c.intermediate_size = 40;
  c.num_hidden_layers = 3;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.validate();
  return c;
}

std::vector<TensorHeader> headers_for(const LlamaConfig& c, DType dtype = DType::bf16) {
  std::vector<TensorHeader> out;
  for (const TensorSpec& s : expected_llama_tensors(c)) out.push_back({s.name, dtype, s.shape});
  return out;
}

// The message check_llama_tensors throws, or "" when the tensors match.
std::string check_error(const LlamaConfig& c, const std::vector<TensorHeader>& present) {
  try {
    check_llama_tensors(c, present, "ckpt/model.safetensors");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const Shape* shape_of(const std::vector<TensorSpec>& specs, const std::string& name) {
  for (const TensorSpec& s : specs)
    if (s.name == name) return &s.shape;
  return nullptr;
}

int64_t total_numel(const std::vector<TensorSpec>& specs) {
  int64_t n = 0;
  for (const TensorSpec& s : specs) n += shape_numel(s.shape);
  return n;
}

TEST(WeightMap, NamesAndShapesOfLlama31_8b) {
  LlamaConfig c;  // Llama-3.1-8B
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.validate();
  const std::vector<TensorSpec> specs = expected_llama_tensors(c);
  EXPECT_EQ(specs.size(), 1u + 32 * 9 + 1 + 1);
  const std::vector<std::pair<std::string, Shape>> want = {
      {"model.embed_tokens.weight", {128256, 4096}},
      {"model.layers.0.input_layernorm.weight", {4096}},
      {"model.layers.0.self_attn.q_proj.weight", {4096, 4096}},
      {"model.layers.7.self_attn.k_proj.weight", {1024, 4096}},
      {"model.layers.31.self_attn.v_proj.weight", {1024, 4096}},
      {"model.layers.31.self_attn.o_proj.weight", {4096, 4096}},
      {"model.layers.3.post_attention_layernorm.weight", {4096}},
      {"model.layers.3.mlp.gate_proj.weight", {14336, 4096}},
      {"model.layers.3.mlp.up_proj.weight", {14336, 4096}},
      {"model.layers.3.mlp.down_proj.weight", {4096, 14336}},
      {"model.norm.weight", {4096}},
      {"lm_head.weight", {128256, 4096}},
  };
  for (const auto& [name, shape] : want) {
    const Shape* got = shape_of(specs, name);
    ASSERT_NE(got, nullptr) << name;
    EXPECT_EQ(*got, shape) << name;
  }
  EXPECT_EQ(shape_of(specs, "model.layers.32.input_layernorm.weight"), nullptr);
  EXPECT_EQ(shape_of(specs, "model.layers.0.self_attn.q_proj.bias"), nullptr);
  EXPECT_EQ(specs.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(specs.back().name, "lm_head.weight");
  EXPECT_EQ(total_numel(specs), 8030261248);
}

TEST(WeightMap, HeadDimIndependentOfHidden) {
  LlamaConfig c = small_config();
  c.head_dim = 16;  // 4 heads of 16 = 64 != hidden 32
  c.validate();
  const std::vector<TensorSpec> specs = expected_llama_tensors(c);
  EXPECT_EQ(*shape_of(specs, "model.layers.0.self_attn.q_proj.weight"), (Shape{64, 32}));
  EXPECT_EQ(*shape_of(specs, "model.layers.0.self_attn.k_proj.weight"), (Shape{32, 32}));
  EXPECT_EQ(*shape_of(specs, "model.layers.0.self_attn.o_proj.weight"), (Shape{32, 64}));
}

TEST(WeightMap, BiasesTiesAndTheParameterCount) {
  struct Case {
    bool attention_bias, mlp_bias, tied;
    size_t per_layer;
  };
  for (const Case& k : {Case{false, false, false, 9}, Case{true, false, false, 13}, Case{false, true, false, 12},
                        Case{true, true, true, 16}}) {
    LlamaConfig c = small_config();
    c.attention_bias = k.attention_bias;
    c.mlp_bias = k.mlp_bias;
    c.tie_word_embeddings = k.tied;
    const std::vector<TensorSpec> specs = expected_llama_tensors(c);
    EXPECT_EQ(specs.size(), 2 + 3 * k.per_layer + (k.tied ? 0 : 1));
    EXPECT_EQ(shape_of(specs, "lm_head.weight") != nullptr, !k.tied);
    EXPECT_EQ(total_numel(specs), c.num_parameters());
    if (k.attention_bias) {
      EXPECT_EQ(*shape_of(specs, "model.layers.2.self_attn.q_proj.bias"), Shape{32});
      EXPECT_EQ(*shape_of(specs, "model.layers.2.self_attn.k_proj.bias"), Shape{16});
      EXPECT_EQ(*shape_of(specs, "model.layers.2.self_attn.v_proj.bias"), Shape{16});
      EXPECT_EQ(*shape_of(specs, "model.layers.2.self_attn.o_proj.bias"), Shape{32});
    }
    if (k.mlp_bias) {
      EXPECT_EQ(*shape_of(specs, "model.layers.0.mlp.gate_proj.bias"), Shape{40});
      EXPECT_EQ(*shape_of(specs, "model.layers.0.mlp.up_proj.bias"), Shape{40});
      EXPECT_EQ(*shape_of(specs, "model.layers.0.mlp.down_proj.bias"), Shape{32});
    }
    std::set<std::string> names;
    for (const TensorSpec& s : specs) names.insert(s.name);
    EXPECT_EQ(names.size(), specs.size());  // no name twice
  }
}

TEST(WeightMap, MatchingCheckpointsPass) {
  const LlamaConfig c = small_config();
  for (DType t : {DType::f32, DType::f16, DType::bf16}) EXPECT_EQ(check_error(c, headers_for(c, t)), "");
  std::vector<TensorHeader> h = headers_for(c);
  std::reverse(h.begin(), h.end());                                                // order does not matter
  h.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", DType::f32, {4}});  // old transformers saved these
  EXPECT_EQ(check_error(c, h), "");

  LlamaConfig tied = c;
  tied.tie_word_embeddings = true;
  std::vector<TensorHeader> with_copy = headers_for(tied);
  EXPECT_EQ(check_error(tied, with_copy), "");
  with_copy.push_back({"lm_head.weight", DType::bf16, {100, 32}});  // a saved copy of the tied table: ignored
  EXPECT_EQ(check_error(tied, with_copy), "");
}

struct MismatchCase {
  const char* name;
  std::function<void(LlamaConfig&, std::vector<TensorHeader>&)> edit;
  std::vector<std::string> expected;  // substrings of the one error
};

void erase_named(std::vector<TensorHeader>& h, const std::string& name) {
  std::erase_if(h, [&](const TensorHeader& t) { return t.name == name; });
}

TensorHeader& named(std::vector<TensorHeader>& h, const std::string& name) {
  for (TensorHeader& t : h)
    if (t.name == name) return t;
  throw std::logic_error("no tensor " + name);
}

TEST(WeightMap, MismatchesAreListed) {
  const std::vector<MismatchCase> cases = {
      {"one missing",
       [](LlamaConfig&, auto& h) { erase_named(h, "model.layers.1.mlp.up_proj.weight"); },
       {"1 missing tensor: model.layers.1.mlp.up_proj.weight"}},
      {"untied lm_head missing",
       [](LlamaConfig&, auto& h) { erase_named(h, "lm_head.weight"); },
       {"1 missing tensor: lm_head.weight"}},
      {"a layer too few",
       [](LlamaConfig& c, auto&) { c.num_hidden_layers = 4; },
       {"9 missing tensors: model.layers.3.input_layernorm.weight, model.layers.3.self_attn.q_proj.weight"}},
      {"a layer too many",
       [](LlamaConfig& c, auto& h) {
         c.num_hidden_layers = 2;
         h = headers_for(small_config());
       },
       {"9 unexpected tensors: model.layers.2."}},
      {"unexpected names",
       [](LlamaConfig&, auto& h) {
         h.push_back({"model.layers.0.self_attn.q_proj.weight_scale", DType::f32, {1}});
         h.push_back({"extra", DType::f32, {1}});
       },
       {"2 unexpected tensors: model.layers.0.self_attn.q_proj.weight_scale, extra"}},
      {"biases the config does not have",
       [](LlamaConfig&, auto& h) {
         h.push_back({"model.layers.0.self_attn.q_proj.bias", DType::bf16, {32}});
       },
       {"1 unexpected tensor: model.layers.0.self_attn.q_proj.bias"}},
      {"biases the config wants",
       [](LlamaConfig& c, auto&) { c.attention_bias = true; },
       {"12 missing tensors: model.layers.0.self_attn.q_proj.bias, model.layers.0.self_attn.k_proj.bias"}},
      {"transposed",
       [](LlamaConfig&, auto& h) {
         named(h, "model.layers.2.mlp.up_proj.weight").shape = {32, 40};
       },
       {"1 shape mismatch: model.layers.2.mlp.up_proj.weight: expected shape [40, 32], got [32, 40]"}},
      {"wrong rank",
       [](LlamaConfig&, auto& h) {
         named(h, "model.norm.weight").shape = {1, 32};
       },
       {"model.norm.weight: expected shape [32], got [1, 32]"}},
      {"tied lm_head missing embed",
       [](LlamaConfig& c, auto& h) {
         c.tie_word_embeddings = true;
         erase_named(h, "model.embed_tokens.weight");
       },
       {"1 missing tensor: model.embed_tokens.weight"}},
      {"integer weights",
       [](LlamaConfig&, auto& h) { named(h, "model.layers.0.mlp.down_proj.weight").dtype = DType::i32; },
       {"1 tensor with a non-float dtype: model.layers.0.mlp.down_proj.weight (i32)"}},
      {"duplicated",
       [](LlamaConfig&, auto& h) {
         h.push_back({"model.norm.weight", DType::bf16, {32}});
       },
       {"1 duplicated tensor: model.norm.weight"}},
      {"all kinds at once",
       [](LlamaConfig&, auto& h) {
         erase_named(h, "model.norm.weight");
         h.push_back({"model.final_norm.weight", DType::bf16, {32}});
         named(h, "model.embed_tokens.weight").shape = {32, 100};
       },
       {"1 missing tensor: model.norm.weight; 1 unexpected tensor: model.final_norm.weight; 1 shape mismatch: "
        "model.embed_tokens.weight: expected shape [100, 32], got [32, 100]"}},
  };
  for (const MismatchCase& k : cases) {
    LlamaConfig c = small_config();
    std::vector<TensorHeader> h = headers_for(c);
    k.edit(c, h);
    const std::string error = check_error(c, h);
    ASSERT_FALSE(error.empty()) << k.name;
    EXPECT_EQ(error.rfind("ckpt/model.safetensors: ", 0), 0u) << k.name << ": " << error;
    EXPECT_EQ(error.find('\n'), std::string::npos) << k.name << ": " << error;  // one line
    for (const std::string& want : k.expected)
      EXPECT_NE(error.find(want), std::string::npos) << k.name << ": " << error;
  }
}

TEST(WeightMap, LongListsAreCut) {
  LlamaConfig c = small_config();
  c.num_hidden_layers = 30;
  c.validate();
  std::vector<TensorHeader> h = headers_for(small_config());  // 3 of the 30 layers
  h.push_back({"junk.a", DType::f32, {1}});
  const std::string error = check_error(c, h);
  const int64_t missing = 27 * 9;
  EXPECT_NE(error.find(fmt::format("{} missing tensors: model.layers.3.input_layernorm.weight", missing)),
            std::string::npos)
      << error;
  EXPECT_NE(error.find(fmt::format(" ... and {} more; 1 unexpected tensor: junk.a", missing - 20)), std::string::npos)
      << error;
  // 20 names listed, not 243.
  EXPECT_EQ(std::count(error.begin(), error.end(), ','), 19) << error;
}

}  // namespace
}  // namespace flint
