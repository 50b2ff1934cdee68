// config.json -> LlamaConfig: defaults, both RoPE forms, every malformed value,
// real and published configs. (RoPE frequencies: test_rope_freq.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "support/test_support.h"

namespace flint {
namespace {

using nlohmann::json;

// A small valid config in the classic (transformers 4) form.
json tiny_json() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", 64},
          {"intermediate_size", 176},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 8},
          {"num_key_value_heads", 2},
          {"vocab_size", 300},
          {"max_position_embeddings", 256},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"rope_scaling", nullptr},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"torch_dtype", "bfloat16"}};
}

LlamaConfig parse(const json& j) { return parse_llama_config(j.dump(), "config.json"); }

// The message of the Error that parsing `j` throws, or "" when it parses.
std::string parse_error(const json& j) {
  try {
    parse(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

json llama3_scaling(double factor) {
  return {{"rope_type", "llama3"},
          {"factor", factor},
          {"low_freq_factor", 1.0},
          {"high_freq_factor", 4.0},
          {"original_max_position_embeddings", 8192}};
}

TEST(Config, ReadsEveryField) {
  json j = tiny_json();
  j["head_dim"] = 16;
  j["attention_bias"] = true;
  j["mlp_bias"] = true;
  j["tie_word_embeddings"] = true;
  j["eos_token_id"] = {2, 7};
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = llama3_scaling(8.0);
  j["max_position_embeddings"] = 131072;
  j["vocab_size"] = 128256;
  const LlamaConfig c = parse(j);
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 176);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 16);  // given, so not hidden / heads (= 8)
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_theta, 500000.0);
  EXPECT_EQ(c.rope_scaling.type, RopeType::llama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_TRUE(c.mlp_bias);
  EXPECT_EQ(c.bos_token_ids, std::vector<int32_t>{1});
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{2, 7}));
  EXPECT_EQ(c.dtype, DType::bf16);
}

TEST(Config, AbsentFieldsTakeTransformersDefaults) {
  const json j = {{"architectures", {"LlamaForCausalLM"}},
                  {"hidden_size", 64},
                  {"intermediate_size", 176},
                  {"num_hidden_layers", 2},
                  {"num_attention_heads", 8}};
  const LlamaConfig c = parse(j);
  EXPECT_EQ(c.num_key_value_heads, 8);  // = num_attention_heads
  EXPECT_EQ(c.head_dim, 8);             // = hidden_size / num_attention_heads
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.rope_scaling, RopeScaling{});
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.mlp_bias);
  EXPECT_TRUE(c.bos_token_ids.empty());
  EXPECT_TRUE(c.eos_token_ids.empty());
  EXPECT_EQ(c.dtype, DType::f32);  // neither dtype nor torch_dtype
}

TEST(Config, NullMeansDefault) {
  json j = tiny_json();
  for (const char* key : {"num_key_value_heads", "head_dim", "rope_theta", "rope_scaling", "bos_token_id",
                          "eos_token_id", "torch_dtype", "tie_word_embeddings", "rms_norm_eps"})
    j[key] = nullptr;
  const LlamaConfig c = parse(j);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.bos_token_ids.empty());
  EXPECT_EQ(c.dtype, DType::f32);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
}

TEST(Config, UnknownAndIgnoredFieldsAreIgnored) {
  json j = tiny_json();
  j["some_future_field"] = {{"nested", {1, 2, 3}}};
  j["transformers_version"] = "5.17.0";
  j["_name_or_path"] = "meta-llama/Llama-3.1-8B";
  j["pad_token_id"] = nullptr;
  j["attention_dropout"] = 0.0;
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  EXPECT_EQ(parse(j).hidden_size, 64);
  for (const json& tp : {json(1), json(2), json(8)}) {  // a training-time split: same math
    j["pretraining_tp"] = tp;
    EXPECT_NO_THROW(parse(j)) << tp;
  }
}

TEST(Config, TokenIds) {
  struct Case {
    json value;
    std::vector<int32_t> ids;
  };
  const std::vector<Case> cases = {
      {json(5), {5}}, {json::array({1, 2, 3}), {1, 2, 3}}, {json::array(), {}}, {json(nullptr), {}}, {json(0), {0}}};
  for (const Case& c : cases) {
    json j = tiny_json();
    j["bos_token_id"] = c.value;
    j["eos_token_id"] = c.value;
    const LlamaConfig config = parse(j);
    EXPECT_EQ(config.bos_token_ids, c.ids) << c.value;
    EXPECT_EQ(config.eos_token_ids, c.ids) << c.value;
  }
}

TEST(Config, Dtype) {
  struct Case {
    json fields;
    DType dtype;
  };
  const std::vector<Case> cases = {
      {{{"torch_dtype", "float32"}}, DType::f32},
      {{{"torch_dtype", "float16"}}, DType::f16},
      {{{"torch_dtype", "bfloat16"}}, DType::bf16},
      {{{"dtype", "bfloat16"}}, DType::bf16},
      {{{"dtype", "float16"}, {"torch_dtype", "float32"}}, DType::f16},  // transformers 5's name wins
      {{{"dtype", nullptr}, {"torch_dtype", "float16"}}, DType::f16},
      {json::object(), DType::f32},
  };
  for (const Case& c : cases) {
    json j = tiny_json();
    j.erase("torch_dtype");
    j.update(c.fields);
    EXPECT_EQ(parse(j).dtype, c.dtype) << c.fields;
  }
}

// The Llama 3.1 scaling with one key changed (null: removed).
json llama3_with(const char* key, json value) {
  json j = llama3_scaling(8.0);
  j.merge_patch({{key, std::move(value)}});
  return j;
}

json patched(const json& patch) {
  json j = tiny_json();
  j.merge_patch(patch);
  return j;
}

// --- malformed configs: one table, each with the substring its error must hold ----

struct BadCase {
  const char* name;
  json patch;  // an RFC 7386 merge patch on tiny_json(): null removes a key, objects merge
  const char* expected;
};

// clang-format off
const std::vector<BadCase> kBadCases = {
    // identity
    {"other architecture", {{"architectures", {"MistralForCausalLM"}}},
     "field 'architectures': unsupported architecture [MistralForCausalLM]"},
    {"two other architectures", {{"architectures", {"LlamaModel", "LlamaForSequenceClassification"}}},
     "[LlamaModel, LlamaForSequenceClassification]"},
    {"empty architectures", {{"architectures", json::array()}}, "unsupported architecture []"},
    {"architectures not a list", {{"architectures", "LlamaForCausalLM"}},
     "field 'architectures': expected a list of class names"},
    {"architecture not a string", {{"architectures", {1}}}, "field 'architectures': expected class names"},
    {"other model type", {{"model_type", "mistral"}}, "field 'model_type': unsupported model type 'mistral'"},
    {"model type not a string", {{"model_type", 3}}, "field 'model_type': expected a string"},
    {"no identity", {{"architectures", nullptr}, {"model_type", nullptr}}, "field 'model_type': missing"},
    {"gelu", {{"hidden_act", "gelu"}}, "field 'hidden_act': unsupported activation 'gelu'"},
    {"quantized", {{"quantization_config", {{"quant_method", "awq"}}}},
     "field 'quantization_config': quantized checkpoints are not supported"},
    // required sizes
    {"no hidden_size", {{"hidden_size", nullptr}}, "field 'hidden_size': missing (required)"},
    {"no intermediate_size", {{"intermediate_size", nullptr}}, "field 'intermediate_size': missing"},
    {"no num_hidden_layers", {{"num_hidden_layers", nullptr}}, "field 'num_hidden_layers': missing"},
    {"no num_attention_heads", {{"num_attention_heads", nullptr}}, "field 'num_attention_heads': missing"},
    // wrong JSON types
    {"string size", {{"hidden_size", "4096"}}, "field 'hidden_size': expected an integer, got string \"4096\""},
    {"float size", {{"intermediate_size", 176.0}},
     "field 'intermediate_size': expected an integer, got the number 176.0"},
    {"bool size", {{"num_hidden_layers", true}}, "field 'num_hidden_layers': expected an integer"},
    {"huge size", {{"vocab_size", 18446744073709551615ull}}, "field 'vocab_size': expected an integer"},
    {"string eps", {{"rms_norm_eps", "1e-5"}}, "field 'rms_norm_eps': expected a number"},
    {"string theta", {{"rope_theta", "10000"}}, "field 'rope_theta': expected a number"},
    {"string bool", {{"tie_word_embeddings", "true"}}, "field 'tie_word_embeddings': expected true or false"},
    {"int bool", {{"attention_bias", 0}}, "field 'attention_bias': expected true or false"},
    {"mlp_bias string", {{"mlp_bias", "no"}}, "field 'mlp_bias': expected true or false"},
    {"dtype number", {{"torch_dtype", 16}}, "field 'torch_dtype': expected a string"},
    // values out of range
    {"zero hidden", {{"hidden_size", 0}}, "field 'hidden_size': must be in [1,"},
    {"negative ffn", {{"intermediate_size", -1}}, "field 'intermediate_size': must be in [1,"},
    {"zero layers", {{"num_hidden_layers", 0}}, "field 'num_hidden_layers': must be in [1,"},
    {"zero heads", {{"num_attention_heads", 0}}, "field 'num_attention_heads': must be positive"},
    {"negative kv heads", {{"num_key_value_heads", -2}}, "field 'num_key_value_heads': must be in [1,"},
    {"zero vocab", {{"vocab_size", 0}}, "field 'vocab_size': must be in [1,"},
    {"vocab past int32", {{"vocab_size", int64_t{1} << 31}}, "field 'vocab_size': must be in [1,"},
    {"zero max positions", {{"max_position_embeddings", 0}}, "field 'max_position_embeddings': must be in [1,"},
    {"absurd hidden", {{"hidden_size", int64_t{1} << 40}}, "field 'hidden_size': must be in [1,"},
    {"zero head_dim", {{"head_dim", 0}}, "field 'head_dim': must be in [1,"},
    {"odd head_dim", {{"head_dim", 7}}, "field 'head_dim': must be even"},
    {"odd default head_dim", {{"num_attention_heads", 64}, {"num_key_value_heads", 64}},
     "field 'head_dim': must be even"},  // 64 / 64 = 1
    {"hidden not divisible", {{"num_attention_heads", 6}, {"num_key_value_heads", 6}},
     "field 'head_dim': not given, and hidden_size 64 is not a multiple of num_attention_heads 6"},
    {"heads % kv", {{"num_key_value_heads", 3}},
     "field 'num_key_value_heads': num_attention_heads 8 is not a multiple of num_key_value_heads 3"},
    {"kv > heads", {{"num_key_value_heads", 16}}, "field 'num_key_value_heads': num_attention_heads 8 is not"},
    {"zero eps", {{"rms_norm_eps", 0.0}}, "field 'rms_norm_eps': must be positive"},
    {"negative theta", {{"rope_theta", -1.0}}, "field 'rope_theta': must be positive"},
    {"partial rotary", {{"partial_rotary_factor", 0.5}}, "field 'partial_rotary_factor': partial RoPE"},
    // token ids
    {"string bos", {{"bos_token_id", "<s>"}}, "field 'bos_token_id': expected a token id"},
    {"float eos", {{"eos_token_id", 2.0}}, "field 'eos_token_id': expected a token id"},
    {"nested eos", {{"eos_token_id", {json::array({2})}}}, "field 'eos_token_id': expected a token id"},
    {"object eos", {{"eos_token_id", {{"id", 2}}}}, "field 'eos_token_id': expected a token id"},
    {"negative bos", {{"bos_token_id", -1}}, "field 'bos_token_id': token id -1 is out of range"},
    {"eos past int32", {{"eos_token_id", {2, 4294967296ull}}}, "field 'eos_token_id': token id 4294967296 is out"},
    {"eos past vocab", {{"eos_token_id", {2, 300}}},
     "field 'eos_token_id': token id 300 is outside the vocabulary [0, 300)"},
    // dtype
    {"float64", {{"torch_dtype", "float64"}}, "field 'torch_dtype': unsupported dtype 'float64'"},
    {"int8 dtype", {{"dtype", "int8"}}, "field 'dtype': unsupported dtype 'int8'"},
    {"our dtype name", {{"torch_dtype", "bf16"}}, "unsupported dtype 'bf16'"},
    // RoPE, classic form
    {"yarn", {{"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}}},
     "field 'rope_scaling.rope_type': unsupported RoPE type 'yarn'"},
    {"longrope legacy key", {{"rope_scaling", {{"type", "longrope"}}}},
     "field 'rope_scaling.type': unsupported RoPE type 'longrope'"},
    {"ntk", {{"rope_scaling", {{"type", "ntk"}, {"factor", 2.0}}}}, "unsupported RoPE type 'ntk'"},
    {"rope type not a string", {{"rope_scaling", {{"rope_type", 3}}}},
     "field 'rope_scaling.rope_type': expected a string"},
    {"rope_scaling a number", {{"rope_scaling", 2.0}},
     "field 'rope_scaling': expected an object or null, got the number 2.0"},
    {"rope_scaling a list", {{"rope_scaling", {1, 2}}}, "field 'rope_scaling': expected an object or null"},
    {"linear without factor", {{"rope_scaling", {{"type", "linear"}}}},
     "field 'rope_scaling.factor': missing (required for RoPE type 'linear')"},
    {"dynamic without factor", {{"rope_scaling", {{"rope_type", "dynamic"}}}},
     "field 'rope_scaling.factor': missing (required for RoPE type 'dynamic')"},
    {"zero factor", {{"rope_scaling", {{"type", "linear"}, {"factor", 0.0}}}},
     "field 'rope_scaling.factor': must be positive"},
    {"string factor", {{"rope_scaling", {{"type", "linear"}, {"factor", "2"}}}},
     "field 'rope_scaling.factor': expected a number"},
    {"llama3 without factor", {{"rope_scaling", llama3_with("factor", nullptr)}},
     "field 'rope_scaling.factor': missing (required for RoPE type 'llama3')"},
    {"llama3 without original", {{"rope_scaling", llama3_with("original_max_position_embeddings", nullptr)}},
     "field 'rope_scaling.original_max_position_embeddings': missing (required for RoPE type 'llama3')"},
    {"llama3 without low", {{"rope_scaling", llama3_with("low_freq_factor", nullptr)}},
     "field 'rope_scaling.low_freq_factor': missing"},
    {"llama3 without high", {{"rope_scaling", llama3_with("high_freq_factor", nullptr)}},
     "field 'rope_scaling.high_freq_factor': missing"},
    {"llama3 high <= low", {{"rope_scaling", llama3_with("high_freq_factor", 1.0)}},
     "field 'rope_scaling.high_freq_factor': must be greater than low_freq_factor (1), got 1"},
    {"llama3 zero low", {{"rope_scaling", llama3_with("low_freq_factor", 0)}},
     "field 'rope_scaling.low_freq_factor': must be positive"},
    {"llama3 float original", {{"rope_scaling", llama3_with("original_max_position_embeddings", 8192.5)}},
     "field 'rope_scaling.original_max_position_embeddings': expected an integer"},
    {"llama3 zero original", {{"rope_scaling", llama3_with("original_max_position_embeddings", 0)}},
     "field 'rope_scaling.original_max_position_embeddings': must be in [1,"},
    {"dynamic with head_dim 2", {{"head_dim", 2}, {"rope_scaling", {{"type", "dynamic"}, {"factor", 2.0}}}},
     "field 'head_dim': dynamic RoPE needs head_dim > 2"},
    // RoPE, transformers 5 form, and the two forms together
    {"v5 yarn", {{"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1e4}, {"factor", 4.0}}}},
     "field 'rope_parameters.rope_type': unsupported RoPE type 'yarn'"},
    {"v5 string theta", {{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", "1e4"}}}},
     "field 'rope_parameters.rope_theta': expected a number"},
    {"v5 linear without factor", {{"rope_parameters", {{"rope_type", "linear"}}}},
     "field 'rope_parameters.factor': missing"},
    {"v5 llama3 high <= low", {{"rope_parameters", llama3_with("high_freq_factor", 0.5)}},
     "field 'rope_parameters.high_freq_factor': must be greater than low_freq_factor"},
    {"v5 partial rotary", {{"rope_parameters", {{"rope_theta", 1e4}, {"partial_rotary_factor", 0.5}}}},
     "field 'rope_parameters.partial_rotary_factor': partial RoPE"},
    {"v5 per-layer", {{"rope_parameters", {{"full_attention", {{"rope_type", "default"}, {"rope_theta", 1e4}}}}}},
     "field 'rope_parameters.full_attention': per-layer RoPE parameters are not supported"},
    {"v5 theta disagrees with top level", {{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 5e5}}}},
     "field 'rope_theta': 10000 disagrees with rope_parameters.rope_theta = 500000"},
    {"theta in rope_scaling disagrees", {{"rope_scaling", {{"rope_type", "default"}, {"rope_theta", 5e5}}}},
     "field 'rope_theta': 10000 disagrees with rope_scaling.rope_theta = 500000"},
    {"v5 scaling disagrees with rope_scaling",
     {{"rope_scaling", llama3_scaling(8.0)}, {"rope_parameters", llama3_scaling(32.0)}},
     "field 'rope_parameters': disagrees with rope_scaling: llama3 x32"},
};
// clang-format on

TEST(Config, MalformedValuesNameTheField) {
  for (const BadCase& c : kBadCases) {
    const std::string error = parse_error(patched(c.patch));
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.name << ": got \"" << error << "\"";
    EXPECT_EQ(error.rfind("config.json: field '", 0), 0u) << c.name << ": " << error;  // the file, then the field
  }
}

TEST(Config, NotJsonOrNotAnObject) {
  for (const char* text : {"", "{", "{\"hidden_size\": }", "[1, 2]", "null", "\"llama\"", "{\"a\": 1e999}"}) {
    try {
      parse_llama_config(text, "weird/config.json");
      ADD_FAILURE() << "parsed: " << text;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("weird/config.json: ", 0), 0u) << e.what();
      EXPECT_EQ(e.context().file, "weird/config.json");
    }
  }
}

// --- the two RoPE forms -------------------------------------------------------

TEST(Config, RopeFormsReadTheSame) {
  struct Case {
    const char* name;
    json patch;  // merge patch on tiny_json(), whose rope is theta 10000, rope_scaling null
    RopeScaling scaling;
    double theta;
  };
  const RopeScaling llama3{RopeType::llama3, 8.0, 1.0, 4.0, 8192};
  const RopeScaling linear{RopeType::linear, 4.0, 1.0, 4.0, 0};
  const RopeScaling dynamic{RopeType::dynamic, 2.0, 1.0, 4.0, 0};
  json v5_llama3 = llama3_scaling(8.0);
  v5_llama3["rope_theta"] = 500000.0;
  // clang-format off
  const std::vector<Case> cases = {
      {"null scaling", json::object(), {}, 10000.0},
      {"no theta anywhere", {{"rope_theta", nullptr}}, {}, 10000.0},
      {"integer theta", {{"rope_theta", 1000000}}, {}, 1e6},
      {"classic default", {{"rope_scaling", {{"rope_type", "default"}}}}, {}, 10000.0},
      {"classic llama3", {{"rope_theta", 500000.0}, {"rope_scaling", llama3_scaling(8.0)}}, llama3, 500000.0},
      {"legacy type key", {{"rope_scaling", {{"type", "linear"}, {"factor", 4.0}}}}, linear, 10000.0},
      {"rope_type wins over type", {{"rope_scaling", {{"rope_type", "linear"}, {"type", "yarn"}, {"factor", 4}}}},
       linear, 10000.0},
      {"dynamic, unused keys ignored", {{"rope_scaling", {{"type", "dynamic"}, {"factor", 2}, {"low_freq_factor", 9}}}},
       dynamic, 10000.0},
      {"unknown rope keys ignored", {{"rope_scaling", llama3_with("beta_fast", 32)}}, llama3, 10000.0},
      {"v5 default", {{"rope_theta", nullptr}, {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1e4}}}},
       {}, 10000.0},
      {"v5 without rope_type", {{"rope_theta", nullptr}, {"rope_parameters", {{"rope_theta", 5e5}}}}, {}, 500000.0},
      {"v5 llama3", {{"rope_theta", nullptr}, {"rope_parameters", v5_llama3}}, llama3, 500000.0},
      {"v5 without theta falls back to the top level", {{"rope_theta", 5e5}, {"rope_parameters", llama3_scaling(8)}},
       llama3, 500000.0},
      {"v5 and classic agreeing",
       {{"rope_theta", 5e5}, {"rope_scaling", llama3_scaling(8.0)}, {"rope_parameters", v5_llama3}}, llama3, 500000.0},
      {"v5 with partial_rotary_factor 1", {{"rope_parameters", {{"partial_rotary_factor", 1.0}}}}, {}, 10000.0},
  };
  // clang-format on
  for (const Case& c : cases) {
    const LlamaConfig config = parse(patched(c.patch));
    EXPECT_EQ(config.rope_scaling, c.scaling) << c.name;
    EXPECT_EQ(config.rope_theta, c.theta) << c.name;
  }
}

// --- configs as they ship ---------------------------------------------------------

TEST(Config, RealConfigsFromTheAssets) {
  FLINT_REQUIRE_ASSETS();
  const auto models = testing::shared_assets() / "models";
  const LlamaConfig code = load_llama_config((models / "flint-code-22m" / "config.json").string());  // v5 form
  EXPECT_EQ(code.hidden_size, 384);
  EXPECT_EQ(code.intermediate_size, 1024);
  EXPECT_EQ(code.num_hidden_layers, 6);
  EXPECT_EQ(code.num_attention_heads, 6);
  EXPECT_EQ(code.num_key_value_heads, 2);
  EXPECT_EQ(code.head_dim, 64);
  EXPECT_EQ(code.vocab_size, 32000);
  EXPECT_EQ(code.rope_theta, 10000.0);
  EXPECT_EQ(code.rope_scaling.type, RopeType::default_);
  EXPECT_EQ(code.rms_norm_eps, 1e-5);
  EXPECT_TRUE(code.tie_word_embeddings);
  EXPECT_EQ(code.dtype, DType::bf16);
  EXPECT_EQ(code.bos_token_ids, std::vector<int32_t>{1});
  EXPECT_EQ(code.eos_token_ids, std::vector<int32_t>{2});
  EXPECT_NEAR(static_cast<double>(code.num_parameters()) / 1e6, 21.7, 0.05);  // MANIFEST: 21.7M

  const LlamaConfig stories = load_llama_config((models / "stories260K-hf" / "config.json").string());  // classic
  EXPECT_EQ(stories.hidden_size, 64);
  EXPECT_EQ(stories.intermediate_size, 172);
  EXPECT_EQ(stories.num_hidden_layers, 5);
  EXPECT_EQ(stories.num_attention_heads, 8);
  EXPECT_EQ(stories.num_key_value_heads, 4);
  EXPECT_EQ(stories.head_dim, 8);
  EXPECT_EQ(stories.vocab_size, 512);
  EXPECT_EQ(stories.max_position_embeddings, 512);
  EXPECT_EQ(stories.rope_scaling.type, RopeType::default_);
  EXPECT_TRUE(stories.tie_word_embeddings);
  EXPECT_EQ(stories.dtype, DType::f32);
  // 260K parameters: 512*64 embedding + 5 layers + final norm (llama2.c's count).
  EXPECT_EQ(stories.num_parameters(), 512 * 64 + 5 * (2 * 64 + 64 * 64 * 2 + 2 * 32 * 64 + 3 * 172 * 64) + 64);
}

TEST(Config, LoadNamesAMissingFile) {
  testing::TempDir dir;
  const std::string path = (dir / "config.json").string();
  try {
    load_llama_config(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  testing::write_text(dir / "config.json", "{\"model_type\": \"llama\", \"hidden_size\": \"big\"}");
  try {
    load_llama_config(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.context().file, path);
    EXPECT_EQ(e.context().field, "hidden_size");
  }
}

// Published hub configs, verbatim but for whitespace.
constexpr const char* kLlama2_7b = R"({
  "_name_or_path": "meta-llama/Llama-2-7b-hf", "architectures": ["LlamaForCausalLM"], "bos_token_id": 1,
  "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 11008, "max_position_embeddings": 4096, "model_type": "llama", "num_attention_heads": 32,
  "num_hidden_layers": 32, "num_key_value_heads": 32, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": null, "tie_word_embeddings": false, "torch_dtype": "float16",
  "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})";

constexpr const char* kCodeLlama_7b = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 16384,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 1000000,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.33.0.dev0",
  "use_cache": true, "vocab_size": 32016})";

constexpr const char* kLlama31_8b = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

constexpr const char* kLlama32_1b_instruct = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072,
  "mlp_bias": false, "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})";

TEST(Config, PublishedHubConfigs) {
  const LlamaConfig l2 = parse_llama_config(kLlama2_7b, "Llama-2-7b-hf/config.json");
  EXPECT_EQ(l2.num_key_value_heads, 32);
  EXPECT_EQ(l2.head_dim, 128);
  EXPECT_EQ(l2.rope_theta, 10000.0);  // absent: the default
  EXPECT_EQ(l2.rope_scaling.type, RopeType::default_);
  EXPECT_EQ(l2.max_position_embeddings, 4096);
  EXPECT_EQ(l2.dtype, DType::f16);
  EXPECT_EQ(l2.num_parameters(), 6738415616);  // the published 6.74B
  EXPECT_EQ(l2.kv_bytes_per_token(DType::f16), 2 * 32 * 32 * 128 * 2);

  const LlamaConfig code = parse_llama_config(kCodeLlama_7b, "CodeLlama-7b-hf/config.json");
  EXPECT_EQ(code.rope_theta, 1e6);
  EXPECT_EQ(code.vocab_size, 32016);
  EXPECT_EQ(code.max_position_embeddings, 16384);
  EXPECT_EQ(code.dtype, DType::bf16);
  EXPECT_EQ(code.num_parameters(), 6738415616 + 2 * 16 * 4096);  // 16 more rows in embed and lm_head

  const LlamaConfig l31 = parse_llama_config(kLlama31_8b, "Llama-3.1-8B/config.json");
  EXPECT_EQ(l31.num_key_value_heads, 8);
  EXPECT_EQ(l31.head_dim, 128);
  EXPECT_EQ(l31.rope_scaling, (RopeScaling{RopeType::llama3, 8.0, 1.0, 4.0, 8192}));
  EXPECT_EQ(l31.bos_token_ids, std::vector<int32_t>{128000});
  EXPECT_EQ(l31.eos_token_ids, std::vector<int32_t>{128001});
  EXPECT_EQ(l31.num_parameters(), 8030261248);
  EXPECT_EQ(l31.kv_bytes_per_token(DType::bf16), 131072);
  EXPECT_EQ(l31.kv_bytes_per_token(DType::f8e4m3fn), 65536);

  const LlamaConfig l32 = parse_llama_config(kLlama32_1b_instruct, "Llama-3.2-1B-Instruct/config.json");
  EXPECT_TRUE(l32.tie_word_embeddings);
  EXPECT_EQ(l32.head_dim, 64);
  EXPECT_EQ(l32.rope_scaling.factor, 32.0);
  EXPECT_EQ(l32.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  EXPECT_EQ(l32.num_parameters(), 1235814400);  // embedding counted once
}

// The same Llama 3.1 config as transformers 5 saves it reads the same.
TEST(Config, TransformersFiveFormOfLlama31) {
  json j = json::parse(kLlama31_8b);
  j["rope_parameters"] = j["rope_scaling"];
  j["rope_parameters"]["rope_theta"] = j["rope_theta"];
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["dtype"] = j["torch_dtype"];
  j.erase("torch_dtype");
  const LlamaConfig v5 = parse(j);
  const LlamaConfig v4 = parse_llama_config(kLlama31_8b, "config.json");
  EXPECT_EQ(v5.rope_scaling, v4.rope_scaling);
  EXPECT_EQ(v5.rope_theta, v4.rope_theta);
  EXPECT_EQ(v5.dtype, v4.dtype);
  EXPECT_EQ(rope_inv_freq(v5), rope_inv_freq(v4));
}

// --- validate() on configs built in code ------------------------------------------

TEST(Config, ValidateNamesTheField) {
  EXPECT_NO_THROW(LlamaConfig{}.validate());  // the Llama-2-7B defaults
  const std::vector<std::pair<std::function<void(LlamaConfig&)>, const char*>> cases = {
      {[](LlamaConfig& c) { c.hidden_size = 0; }, "hidden_size"},
      {[](LlamaConfig& c) { c.num_key_value_heads = 5; }, "num_key_value_heads"},
      {[](LlamaConfig& c) { c.head_dim = 127; }, "head_dim"},
      {[](LlamaConfig& c) { c.rms_norm_eps = std::nan(""); }, "rms_norm_eps"},
      {[](LlamaConfig& c) { c.rope_theta = 0; }, "rope_theta"},
      {[](LlamaConfig& c) {
         c.rope_scaling = {RopeType::linear, -2.0};
       },
       "rope_scaling.factor"},
      {[](LlamaConfig& c) {
         c.rope_scaling = {RopeType::llama3, 8.0, 1.0, 4.0, 0};
       },
       "rope_scaling.original_max_position_embeddings"},
      {[](LlamaConfig& c) {
         c.rope_scaling = {RopeType::llama3, 8.0, 0.0, 4.0, 8192};
       },
       "rope_scaling.low_freq_factor"},
      {[](LlamaConfig& c) { c.bos_token_ids = {32000}; }, "bos_token_id"},
      {[](LlamaConfig& c) { c.dtype = DType::i8; }, "dtype"},
  };
  for (const auto& [edit, field] : cases) {
    LlamaConfig c;
    edit(c);
    try {
      c.validate();
      ADD_FAILURE() << field << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.context().field, field) << e.what();
    }
  }
}

TEST(Config, ParameterCountOverflowIsAnError) {
  LlamaConfig c;
  c.vocab_size = std::numeric_limits<int32_t>::max();
  c.hidden_size = c.intermediate_size = int64_t{1} << 20;
  c.num_attention_heads = c.num_key_value_heads = int64_t{1} << 20;
  c.head_dim = int64_t{1} << 20;
  c.num_hidden_layers = int64_t{1} << 16;
  EXPECT_THROW(c.validate(), Error);
  EXPECT_THROW(c.num_parameters(), Error);
}

}  // namespace
}  // namespace flint
