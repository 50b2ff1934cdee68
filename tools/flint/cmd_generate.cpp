// flint generate: prompt(s) in, text out, streamed as it is produced.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "backends/backends.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "runtime/generator.h"
#include "tokenizer/chat_template.h"
#include "tools/flint/commands.h"
#include "tools/flint/model_options.h"

namespace flint::cli {
namespace {

struct GenerateOptions {
  ModelOptions model;
  std::string prompt;
  std::string prompts_file;
  bool chat = false;
  std::string system;
  std::string device = "cpu";
  SamplingParams sampling;
  int32_t max_batched_tokens = 2048;
  int64_t seed = -1;  // -1: random
};

struct PromptSpec {
  std::string text;
  int32_t max_tokens;
};

// tt-metal's demo format: [{"prompt": "...", "max_length": N}, ...];
// max_length (optional) is the number of tokens to generate for that prompt.
std::vector<PromptSpec> read_prompts_file(const std::string& path, int32_t default_max_tokens) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail({.file = path}, "not valid JSON: {}", e.what());
  }
  FLINT_CHECK(doc.is_array(), ErrorContext{.file = path}, "expected a JSON list of {{\"prompt\": ...}} objects");
  FLINT_CHECK(!doc.empty(), ErrorContext{.file = path}, "the list of prompts is empty");
  std::vector<PromptSpec> out;
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& item = doc[i];
    const std::string where = fmt::format("[{}]", i);
    FLINT_CHECK(item.is_object(), ErrorContext{.file = path, .field = where}, "expected an object");
    FLINT_CHECK(item.contains("prompt") && item["prompt"].is_string(),
                ErrorContext{.file = path, .field = where + ".prompt"}, "missing or not a string");
    PromptSpec p{item["prompt"].get<std::string>(), default_max_tokens};
    if (item.contains("max_length")) {
      const auto& m = item["max_length"];
      FLINT_CHECK(m.is_number_integer() && m.get<int64_t>() >= 1 && m.get<int64_t>() <= 1 << 20,
                  ErrorContext{.file = path, .field = where + ".max_length"}, "must be a positive integer");
      p.max_tokens = m.get<int32_t>();
    }
    out.push_back(std::move(p));
  }
  return out;
}

void run_generate(const GenerateOptions& o) {
  FLINT_CHECK(o.prompt.empty() != o.prompts_file.empty(), ErrorContext{.field = "--prompt"},
              "give exactly one of --prompt and --prompts-file");
  std::vector<PromptSpec> prompts = o.prompts_file.empty()
                                        ? std::vector<PromptSpec>{{o.prompt, o.sampling.max_tokens}}
                                        : read_prompts_file(o.prompts_file, o.sampling.max_tokens);
  const Device device = parse_device(o.device);
  const ModelSource source = open_model(o.model);
  const std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(source);
  std::unique_ptr<Backend> backend = make_backend(device);
  const auto load_start = std::chrono::steady_clock::now();
  LlamaModel model(source, *backend);
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();

  std::vector<GenerationRequest> requests;
  for (const PromptSpec& p : prompts) {
    GenerationRequest r;
    r.params = o.sampling;
    if (o.seed >= 0) r.params.seed = static_cast<uint64_t>(o.seed);
    r.params.max_tokens = p.max_tokens;
    std::string text = p.text;
    if (o.chat) text = render_chat_prompt(source.tokenizer_dir, *tokenizer, o.system, p.text);
    // A chat template already wrote BOS; the plain prompt gets it from the tokenizer config.
    r.prompt = tokenizer->encode(text, {.add_special = !o.chat, .parse_special = o.chat});
    requests.push_back(std::move(r));
  }

  GeneratorOptions gen_options;
  gen_options.max_batched_tokens = o.max_batched_tokens;
  gen_options.kv_dtype = backend->activation_dtype();  // f32 on the CPU, bf16 on CUDA
  Generator generator(model, *tokenizer, gen_options);
  const bool single = requests.size() == 1;
  if (single) {
    std::fputs(prompts.front().text.c_str(), stdout);
    std::fflush(stdout);
  }
  std::vector<GenerationResult> results = generator.run(requests, [&](size_t, std::string_view delta) {
    if (!single) return;
    std::fwrite(delta.data(), 1, delta.size(), stdout);
    std::fflush(stdout);
  });
  if (single) {
    std::fputc('\n', stdout);
  } else {
    for (size_t i = 0; i < results.size(); ++i)
      fmt::print("--- [{}] ({} tokens, {})\n{}{}\n", i, results[i].tokens.size(),
                 finish_reason_name(results[i].finish), prompts[i].text, results[i].text);
  }

  const GenerationStats& s = generator.stats();
  const double decode_tps = s.decode_seconds > 0 ? static_cast<double>(s.generated_tokens - static_cast<int64_t>(
                                                       requests.size())) / s.decode_seconds
                                                 : 0.0;
  fmt::print(stderr,
             "[flint] {} on {}: load {:.2f} s | prompt {} tokens, prefill {:.1f} ms ({:.1f} tok/s) | generated {} "
             "tokens, decode {:.1f} tok/s | first token {:.1f} ms\n",
             source.origin, backend->name(), load_seconds, s.prompt_tokens, s.prefill_seconds * 1e3,
             s.prefill_seconds > 0 ? static_cast<double>(s.prompt_tokens) / s.prefill_seconds : 0.0,
             s.generated_tokens, decode_tps, s.first_token_seconds * 1e3);
}

void add_generate(CLI::App& app) {
  auto o = std::make_shared<GenerateOptions>();
  o->sampling.max_tokens = 64;
  CLI::App* cmd = app.add_subcommand("generate", "generate text from a prompt (streamed)");
  add_model_options(*cmd, o->model);
  cmd->add_option("--prompt,-p", o->prompt, "the prompt text");
  cmd->add_option("--prompts-file", o->prompts_file, "JSON list of {\"prompt\": ..., \"max_length\": N}, run as one batch");
  cmd->add_flag("--chat", o->chat, "render the prompt as a user turn with the model's chat template");
  cmd->add_option("--system", o->system, "system message for --chat");
  cmd->add_option("--max-tokens,-n", o->sampling.max_tokens, "tokens to generate")->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "0 = off")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p)->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p)->capture_default_str();
  cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty)->capture_default_str();
  cmd->add_option("--presence-penalty", o->sampling.presence_penalty)->capture_default_str();
  cmd->add_option("--frequency-penalty", o->sampling.frequency_penalty)->capture_default_str();
  cmd->add_option("--seed", o->seed, "sampling seed (default: random)");
  cmd->add_option("--stop", o->sampling.stop, "stop string (repeatable)");
  cmd->add_flag("--ignore-eos", o->sampling.ignore_eos, "keep generating past EOS");
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--max-batched-tokens", o->max_batched_tokens, "tokens per step (prefill chunk)")
      ->capture_default_str();
  cmd->callback([o] { run_generate(*o); });
}

FLINT_REGISTER_COMMAND(add_generate);

}  // namespace
}  // namespace flint::cli
