// flint info: validate a checkpoint (config, every tensor header and byte range,
// reading no weight data) and print what running it would take.
#include <fmt/format.h>

#include "core/error.h"
#include "model/memory_plan.h"
#include "tools/flint/commands.h"
#include "tools/flint/model_options.h"

namespace flint::cli {
namespace {

struct InfoOptions {
  ModelOptions model;
  MemoryPlanInput plan;
  std::string kv_dtype = "";
};

std::string rope_description(const LlamaConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  switch (s.type) {
    case RopeType::default_: return fmt::format("theta {:g}", c.rope_theta);
    case RopeType::linear: return fmt::format("theta {:g}, linear x{:g}", c.rope_theta, s.factor);
    case RopeType::dynamic: return fmt::format("theta {:g}, dynamic NTK x{:g}", c.rope_theta, s.factor);
    case RopeType::llama3:
      return fmt::format("theta {:g}, llama3 x{:g} (low {:g}, high {:g}, original {})", c.rope_theta, s.factor,
                         s.low_freq_factor, s.high_freq_factor, s.original_max_position_embeddings);
  }
  return "?";
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
  if (ids.empty()) return "none";
  return fmt::format("{}", fmt::join(ids, ", "));
}

void run_info(const InfoOptions& o) {
  const ModelSource m = open_model(o.model);
  const LlamaConfig& c = m.config;
  MemoryPlanInput plan_in = o.plan;
  plan_in.kv_dtype = c.dtype;
  if (!o.kv_dtype.empty()) {
    auto t = dtype_from_name(o.kv_dtype);
    FLINT_CHECK(t.has_value(), ErrorContext{.field = "--kv-dtype"}, "unknown dtype '{}'", o.kv_dtype);
    plan_in.kv_dtype = *t;
  }
  const MemoryPlan p = plan_memory(c, m.weights->headers(), plan_in);

  fmt::print("model         {}\n", m.origin);
  fmt::print("weights       {}, {} tensors\n", m.weights->describe(), m.weights->headers().size());
  fmt::print("config        vocab {}, hidden {}, ffn {}, layers {}, heads {}, kv heads {}, head dim {}\n",
             c.vocab_size, c.hidden_size, c.intermediate_size, c.num_hidden_layers, c.num_attention_heads,
             c.num_key_value_heads, c.head_dim);
  fmt::print("              rms eps {:g}, rope {}, max positions {}\n", c.rms_norm_eps, rope_description(c),
             c.max_position_embeddings);
  fmt::print("              tied embeddings {}, attention bias {}, mlp bias {}, dtype {}\n",
             c.tie_word_embeddings ? "yes" : "no", c.attention_bias ? "yes" : "no", c.mlp_bias ? "yes" : "no",
             dtype_name(c.dtype));
  fmt::print("              bos {}, eos {}\n", ids_to_string(c.bos_token_ids), ids_to_string(c.eos_token_ids));
  fmt::print("tokenizer     {}\n", m.tokenizer_dir.empty() ? "built-in bytes (dummy model)" : m.tokenizer_dir);
  fmt::print("parameters    {} ({:.3f} B)\n", p.num_parameters, static_cast<double>(p.num_parameters) / 1e9);
  std::string by_dtype;
  for (const auto& [dtype, bytes] : p.weight_bytes_by_dtype)
    by_dtype += fmt::format("{}{} {}", by_dtype.empty() ? "" : ", ", dtype_name(dtype), format_bytes(bytes));
  fmt::print("weight bytes  {} ({})\n", format_bytes(p.weight_bytes), by_dtype);
  fmt::print("decode reads  {} per step (weights, one embedding row)\n", format_bytes(p.decode_bytes_per_step));
  fmt::print("KV cache      {} per token ({})\n", format_bytes(p.kv_bytes_per_token), dtype_name(plan_in.kv_dtype));
  fmt::print("memory plan   max seq len {}, max batch {}, max batched tokens {}\n", plan_in.max_seq_len,
             plan_in.max_batch, plan_in.max_batched_tokens);
  fmt::print("  weights     {}\n", format_bytes(p.weight_bytes));
  fmt::print("  KV cache    {}\n", format_bytes(p.kv_bytes));
  fmt::print("  activations {}\n", format_bytes(p.activation_bytes));
  fmt::print("  total       {}\n", format_bytes(p.total_bytes));
}

void add_info(CLI::App& app) {
  auto options = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand("info", "validate a checkpoint and print its config and memory plan");
  add_model_options(*cmd, options->model);
  cmd->add_option("--max-seq-len", options->plan.max_seq_len, "longest sequence to plan for")->capture_default_str();
  cmd->add_option("--max-batch", options->plan.max_batch, "sequences resident at once")->capture_default_str();
  cmd->add_option("--max-batched-tokens", options->plan.max_batched_tokens, "tokens per step")
      ->capture_default_str();
  cmd->add_option("--kv-dtype", options->kv_dtype, "KV cache dtype (default: the model's)");
  cmd->callback([options] { run_info(*options); });
}

FLINT_REGISTER_COMMAND(add_info);

}  // namespace
}  // namespace flint::cli
