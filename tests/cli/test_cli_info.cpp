// flint info on checkpoints written by our own writer, on every dummy shape,
// and on broken checkpoints (exit 1 with one clear line).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "io/safetensors.h"
#include "model/config.h"
#include "model/weight_map.h"
#include "support/process_runner.h"
#include "support/test_support.h"

namespace flint::testing {
namespace {

nlohmann::json tiny_config_json() {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", 32},
          {"intermediate_size", 48},
          {"num_hidden_layers", 2},
          {"num_attention_heads", 4},
          {"num_key_value_heads", 2},
          {"vocab_size", 64},
          {"max_position_embeddings", 128},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"hidden_act", "silu"},
          {"tie_word_embeddings", false},
          {"bos_token_id", 1},
          {"eos_token_id", 2},
          {"torch_dtype", "float32"}};
}

std::vector<std::pair<std::string, Tensor>> random_weights(const LlamaConfig& config) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.1f, 0.1f);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const TensorSpec& spec : expected_llama_tensors(config)) {
    Tensor t = Tensor::empty(DType::f32, spec.shape);
    for (float& v : t.span<float>()) v = u(rng);
    out.emplace_back(spec.name, t);
  }
  return out;
}

// A checkpoint directory as transformers' save_pretrained lays it out.
void write_checkpoint(const std::filesystem::path& dir, const nlohmann::json& config_json, bool sharded) {
  std::filesystem::create_directories(dir);
  write_text(dir / "config.json", config_json.dump(2));
  const LlamaConfig config = parse_llama_config(config_json.dump(), "config.json");
  const auto weights = random_weights(config);
  if (sharded)
    write_sharded_safetensors(dir.string(), weights, 20000);
  else
    write_safetensors((dir / "model.safetensors").string(), weights);
}

int64_t line_count(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

TEST(CliInfo, ReadsASingleFileCheckpoint) {
  TempDir dir;
  write_checkpoint(dir.path(), tiny_config_json(), false);
  const ProcessResult r = run_flint({"info", "--model", dir.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const LlamaConfig c = parse_llama_config(tiny_config_json().dump(), "config.json");
  EXPECT_NE(r.out.find("parameters    " + std::to_string(c.num_parameters())), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 safetensors file"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KV cache"), std::string::npos);
}

TEST(CliInfo, ReadsAShardedCheckpoint) {
  TempDir dir;
  write_checkpoint(dir.path(), tiny_config_json(), true);
  ASSERT_TRUE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  const ProcessResult r = run_flint({"info", "--model", dir.path().string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("safetensors files"), std::string::npos) << r.out;
}

TEST(CliInfo, PrintsEveryDummyShape) {
  // Published parameter counts of the real models (billions, 3 decimals).
  const std::vector<std::pair<std::string, std::string>> shapes = {{"tiny", ""},
                                                                   {"llama-3.2-1b", "(1.236 B)"},
                                                                   {"llama-3.2-3b", "(3.213 B)"},
                                                                   {"llama-3.1-8b", "(8.030 B)"},
                                                                   {"llama-3.1-70b", "(70.554 B)"}};
  for (const auto& [shape, count] : shapes) {
    const ProcessResult r =
        run_flint({"info", "--model", "dummy:" + shape, "--max-seq-len", "8192", "--max-batch", "4"});
    ASSERT_EQ(r.exit_code, 0) << shape << ": " << r.err;
    EXPECT_NE(r.out.find(count), std::string::npos) << shape << ":\n" << r.out;
    EXPECT_NE(r.out.find("max seq len 8192, max batch 4"), std::string::npos);
  }
}

struct BrokenCase {
  const char* name;
  std::function<void(const std::filesystem::path&)> breakage;
  const char* expected;  // substring of the one-line error
};

TEST(CliInfo, BrokenCheckpointsFailWithOneLine) {
  const std::vector<BrokenCase> cases = {
      {"missing config", [](const auto& d) { std::filesystem::remove(d / "config.json"); }, "config.json"},
      {"bad config value",
       [](const auto& d) {
         auto j = tiny_config_json();
         j["hidden_act"] = "gelu";
         write_text(d / "config.json", j.dump());
       },
       "hidden_act"},
      {"wrong architecture",
       [](const auto& d) {
         auto j = tiny_config_json();
         j["architectures"] = {"MistralForCausalLM"};
         write_text(d / "config.json", j.dump());
       },
       "MistralForCausalLM"},
      {"config disagrees with tensors",
       [](const auto& d) {
         auto j = tiny_config_json();
         j["intermediate_size"] = 64;
         write_text(d / "config.json", j.dump());
       },
       "mlp.up_proj.weight"},
      {"missing layer",
       [](const auto& d) {
         auto j = tiny_config_json();
         j["num_hidden_layers"] = 3;
         write_text(d / "config.json", j.dump());
       },
       "model.layers.2."},
      {"truncated weights",
       [](const auto& d) { std::filesystem::resize_file(d / "model.safetensors", 1000); }, "model.safetensors"},
      {"no weights", [](const auto& d) { std::filesystem::remove(d / "model.safetensors"); }, "safetensors"},
  };
  for (const BrokenCase& c : cases) {
    TempDir dir;
    write_checkpoint(dir.path(), tiny_config_json(), false);
    c.breakage(dir.path());
    const ProcessResult r = run_flint({"info", "--model", dir.path().string()});
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.out;
    EXPECT_EQ(line_count(r.err), 1) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << c.name << ": " << r.err;
    EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << c.name << ": " << r.err;
  }
}

TEST(CliInfo, UnknownModelSpecs) {
  ProcessResult r = run_flint({"info", "--model", "dummy:llama-9"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("llama-3.1-8b"), std::string::npos) << r.err;  // lists the valid shapes
  r = run_flint({"info", "--model", "/nonexistent/dir"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/dir"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flint::testing
