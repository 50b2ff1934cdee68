// flint bench: offline prefill/decode throughput and latency, each figure
// beside the floor that the measured ceilings of the same device imply.
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "backends/backends.h"
#include "core/error.h"
#include "model/memory_plan.h"
#include "runtime/generator.h"
#include "tools/flint/cmd_bench_serve.h"
#include "tools/flint/commands.h"
#include "tools/flint/model_options.h"

namespace flint::cli {
namespace {

struct BenchOptions {
  ModelOptions model;
  std::string device = "cpu";
  std::string batches = "1";
  std::string input_lens = "128";
  int32_t output_len = 32;
  int32_t max_batched_tokens = 2048;
  std::string json_path;
  // Greedy by default; a temperature measures the sampling path (seeded).
  float temperature = 0;
  int32_t top_k = 0;
  float top_p = 1;
  bool no_overlap = false;  // wait for each step's tokens before queuing the next (A/B)
  int32_t repeat = 1;       // timed runs per (batch, input length); each figure is their median
};

std::vector<int32_t> parse_list(const std::string& text, const char* flag) {
  std::vector<int32_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      FLINT_CHECK(used == item.size() && v > 0, ErrorContext{.field = flag}, "'{}' is not a positive integer", item);
      out.push_back(v);
    } catch (const std::logic_error&) {
      fail({.field = flag}, "'{}' is not a positive integer", item);
    }
  }
  FLINT_CHECK(!out.empty(), ErrorContext{.field = flag}, "empty list");
  return out;
}

struct Figures {
  int32_t batch, input_len, output_len;
  double prefill_ms, ttft_ms, tpot_ms, decode_tps, prefill_tps;
  double prefill_floor_ms, decode_floor_ms;
  std::vector<double> prefill_ms_runs, tpot_ms_runs;  // every timed run, in order
};

// The median (the mean of the middle two for an even count).
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// FLOPs of a prefill of `batch` sequences of `len` tokens: 2 per weight per
// token for the layers' matrices, the lm_head once per sequence (only the
// last row is sampled), plus causal attention (QK^T and PV, each
// 2 * len^2/2 * heads * head_dim per layer).
double prefill_flops(const LlamaConfig& c, int64_t matmul_params, int32_t batch, int32_t len) {
  const double tokens = static_cast<double>(batch) * len;
  const double lm_head = static_cast<double>(c.vocab_size) * static_cast<double>(c.hidden_size);
  const double attention = 2.0 * 2.0 * 0.5 * static_cast<double>(len) * len * static_cast<double>(c.num_attention_heads) *
                           static_cast<double>(c.head_dim) * static_cast<double>(c.num_hidden_layers) * batch;
  return 2.0 * (static_cast<double>(matmul_params) - lm_head) * tokens + 2.0 * lm_head * batch + attention;
}

void run_bench(const BenchOptions& o) {
  const Device device = parse_device(o.device);
  const std::vector<int32_t> batches = parse_list(o.batches, "--batch");
  const std::vector<int32_t> input_lens = parse_list(o.input_lens, "--input-len");
  FLINT_CHECK(o.output_len >= 2, ErrorContext{.field = "--output-len"}, "needs at least 2 tokens to time decode");
  const ModelSource source = open_model(o.model);
  const LlamaConfig& c = source.config;
  const auto tokenizer = open_tokenizer(source);
  auto backend = make_backend(device);
  LlamaModel model(source, *backend);

  const DeviceCeilings ceil = measure_ceilings(device);
  fmt::print("device {}: copy {:.1f} GB/s ({}), GEMM {:.1f} GFLOP/s ({})\n", backend->name(),
             ceil.copy_bytes_per_s / 1e9, ceil.copy_method, ceil.gemm_flops_per_s / 1e9, ceil.gemm_method);
  fmt::print("decode steps: {}, {}; sampling: {}\n", step_execution(device),
             backend->samples_on_device() && !o.no_overlap ? "queued before the last step's tokens reach the host"
                                                           : "one after another",
             o.temperature == 0 ? std::string("greedy")
                                : fmt::format("temperature {} top-k {} top-p {}", o.temperature, o.top_k, o.top_p));
  // Bytes as the device holds them: the CUDA backend keeps every matrix in
  // bf16 whatever the checkpoint's dtype.
  std::vector<TensorHeader> held = source.weights->headers();
  if (device == Device::cuda)
    for (TensorHeader& h : held) h.dtype = DType::bf16;
  const MemoryPlan plan = plan_memory(c, held, {});
  const int64_t embed_params = c.tie_word_embeddings ? 0 : c.vocab_size * c.hidden_size;
  const int64_t matmul_params = plan.num_parameters - embed_params;
  const double kv_token_bytes = static_cast<double>(c.kv_bytes_per_token(backend->activation_dtype()));

  std::vector<Figures> all;
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(std::min<int64_t>(c.vocab_size, 32000)) - 1);
  fmt::print("{:>6} {:>6} {:>6} | {:>10} {:>9} {:>9} | {:>9} {:>11} {:>12} | {:>7} {:>7}\n", "batch", "in", "out",
             "prefill ms", "tok/s", "TTFT ms", "TPOT ms", "decode tok/s", "decode floor", "pf/flr", "dec/flr");
  for (int32_t B : batches) {
    for (int32_t L : input_lens) {
      std::vector<GenerationRequest> reqs(static_cast<size_t>(B));
      for (auto& r : reqs) {
        for (int32_t i = 0; i < L; ++i) r.prompt.push_back(token(rng));
        r.params.temperature = o.temperature;
        r.params.top_k = o.top_k;
        r.params.top_p = o.top_p;
        r.params.seed = 1234 + reqs.size();
        r.params.max_tokens = o.output_len;
        r.params.ignore_eos = true;
      }
      GeneratorOptions go;
      go.max_batched_tokens = std::max(o.max_batched_tokens, B);
      go.kv_dtype = backend->activation_dtype();
      go.overlap_steps = !o.no_overlap;
      Generator gen(model, *tokenizer, go);
      // Untimed first: lazy kernel loading, cuBLASLt heuristics, memory pools.
      std::vector<GenerationRequest> warm = reqs;
      for (auto& r : warm) r.params.max_tokens = 2;
      gen.run(warm);
      // Each run from an empty cache: the same work every time.
      std::vector<double> ttft_runs;
      Figures f{};
      for (int32_t r = 0; r < o.repeat; ++r) {
        gen.run(reqs);
        const GenerationStats& s = gen.stats();
        f.prefill_ms_runs.push_back(s.prefill_seconds * 1e3);
        ttft_runs.push_back(s.first_token_seconds * 1e3);
        f.tpot_ms_runs.push_back(s.decode_seconds * 1e3 / (o.output_len - 1));
      }
      f.batch = B;
      f.input_len = L;
      f.output_len = o.output_len;
      f.prefill_ms = median(f.prefill_ms_runs);
      f.ttft_ms = median(ttft_runs);
      f.tpot_ms = median(f.tpot_ms_runs);
      f.decode_tps = B * 1e3 / f.tpot_ms;
      f.prefill_tps = static_cast<double>(B) * L / (f.prefill_ms * 1e-3);
      f.prefill_floor_ms = prefill_flops(c, matmul_params, B, L) / ceil.gemm_flops_per_s * 1e3;
      // A decode step reads every weight once and the K/V of every sequence
      // (average context: input + half the output).
      const double step_bytes = static_cast<double>(plan.decode_bytes_per_step) +
                                kv_token_bytes * B * (L + o.output_len / 2.0);
      f.decode_floor_ms = step_bytes / ceil.copy_bytes_per_s * 1e3;
      fmt::print("{:>6} {:>6} {:>6} | {:>10.1f} {:>9.1f} {:>9.1f} | {:>9.2f} {:>11.1f} {:>9.2f} ms | {:>6.0f}% {:>6.0f}%\n",
                 B, L, o.output_len, f.prefill_ms, f.prefill_tps, f.ttft_ms, f.tpot_ms, f.decode_tps,
                 f.decode_floor_ms, 100 * f.prefill_floor_ms / f.prefill_ms, 100 * f.decode_floor_ms / f.tpot_ms);
      all.push_back(f);
    }
  }
  if (o.repeat > 1) {
    fmt::print("medians of {} runs; range over the runs:\n", o.repeat);
    for (const Figures& f : all) {
      const auto [p_lo, p_hi] = std::minmax_element(f.prefill_ms_runs.begin(), f.prefill_ms_runs.end());
      const auto [t_lo, t_hi] = std::minmax_element(f.tpot_ms_runs.begin(), f.tpot_ms_runs.end());
      fmt::print("{:>6} {:>6} {:>6} | prefill {:.1f}-{:.1f} ms | decode {:.1f}-{:.1f} tok/s\n", f.batch,
                 f.input_len, f.output_len, *p_lo, *p_hi, f.batch * 1e3 / *t_hi, f.batch * 1e3 / *t_lo);
    }
  }
  if (!o.json_path.empty()) {
    nlohmann::json j;
    j["model"] = source.origin;
    j["device"] = backend->name();
    j["ceilings"] = {{"copy_GBps", ceil.copy_bytes_per_s / 1e9},
                     {"gemm_GFLOPs", ceil.gemm_flops_per_s / 1e9},
                     {"copy_method", ceil.copy_method},
                     {"gemm_method", ceil.gemm_method}};
    for (const Figures& f : all)
      j["results"].push_back({{"batch", f.batch},
                              {"input_len", f.input_len},
                              {"output_len", f.output_len},
                              {"prefill_ms", f.prefill_ms},
                              {"prefill_tok_per_s", f.prefill_tps},
                              {"ttft_ms", f.ttft_ms},
                              {"tpot_ms", f.tpot_ms},
                              {"decode_tok_per_s", f.decode_tps},
                              {"prefill_floor_ms", f.prefill_floor_ms},
                              {"decode_floor_ms", f.decode_floor_ms},
                              {"prefill_ms_runs", f.prefill_ms_runs},
                              {"tpot_ms_runs", f.tpot_ms_runs}});
    std::ofstream out(o.json_path);
    out << j.dump(2) << "\n";
    FLINT_CHECK(out.good(), ErrorContext{.file = o.json_path}, "cannot write");
  }
}

void add_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand("bench", "offline throughput and latency (TTFT, TPOT, tokens/s) vs floors");
  add_model_options(*cmd, o->model);
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--batch", o->batches, "comma-separated batch sizes")->capture_default_str();
  cmd->add_option("--input-len", o->input_lens, "comma-separated prompt lengths")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "tokens generated per sequence")->capture_default_str();
  cmd->add_option("--max-batched-tokens", o->max_batched_tokens, "tokens per step")->capture_default_str();
  cmd->add_option("--json", o->json_path, "write the figures as JSON");
  cmd->add_option("--temperature", o->temperature, "sampling temperature (0: greedy)")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "top-k (0: off)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "top-p (1: off)")->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "timed runs per case; the table shows their medians")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_flag("--no-overlap", o->no_overlap,
                "queue each step only after the last one's tokens reach the host (for A/B runs)");
  // `flint bench serve` (cmd_bench_serve.cpp) drives a server instead.
  add_bench_serve(*cmd);
  cmd->callback([o, cmd] {
    if (cmd->get_subcommands().empty()) run_bench(*o);
  });
}

FLINT_REGISTER_COMMAND(add_bench);

}  // namespace
}  // namespace flint::cli
