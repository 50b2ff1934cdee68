// flint serve: the OpenAI-compatible HTTP server (server/server.h) over the
// serving engine (runtime/engine.h).
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "backends/backends.h"
#include "core/error.h"
#include "model/memory_plan.h"
#include "runtime/engine.h"
#include "server/server.h"
#include "tools/flint/commands.h"
#include "tools/flint/model_options.h"

namespace flint::cli {
namespace {

struct ServeOptions {
  ModelOptions model;
  std::string device = "cpu";
  ServerOptions server;
  EngineOptions engine;
  double kv_cache_gib = 0;             // 0: the device's default
  double gpu_memory_fraction = 0;      // CUDA, when neither KV size is given; 0: kDefaultGpuMemoryFraction
};

constexpr double kDefaultGpuMemoryFraction = 0.9;  // vLLM's default
constexpr double kCpuKvCacheGib = 2.0;

// Activations of the largest step (hidden states, q/k/v, MLP, logits) plus
// room for cuBLASLt's workspace and the CUDA graphs' arena: what the KV pool
// must leave free on the GPU.
uint64_t activation_reserve_bytes(const LlamaConfig& c, const EngineOptions& e) {
  const auto T = static_cast<uint64_t>(e.max_num_batched_tokens);
  const auto per_token = static_cast<uint64_t>(4 * c.hidden_size +
                                               (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim +
                                               3 * c.intermediate_size);
  const auto logits = static_cast<uint64_t>(e.max_num_seqs) * static_cast<uint64_t>(c.vocab_size) * 4 * 2;
  return (uint64_t{512} << 20) + T * per_token * 2 + logits;
}

void run_serve(ServeOptions o) {
  // Signals are taken by sigwait() below, so no thread (OpenMP's, httplib's,
  // the engine's) may receive them: block them before any thread exists.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a crash

  FLINT_CHECK(o.kv_cache_gib >= 0, ErrorContext{.field = "--kv-cache-gib"}, "must be positive (0: the default)");
  const Device device = parse_device(o.device);
  const ModelSource source = open_model(o.model);
  const std::unique_ptr<Tokenizer> tokenizer = open_tokenizer(source);
  std::unique_ptr<Backend> backend = make_backend(device);
  LlamaModel model(source, *backend);

  o.engine.kv_dtype = backend->activation_dtype();
  const LlamaConfig& c = source.config;
  if (o.gpu_memory_fraction != 0 && device != Device::cuda)
    gpu_kv_blocks_for(device, o.gpu_memory_fraction, 1, 0);  // the error that says it is for CUDA
  if (o.kv_cache_gib > 0 || (device == Device::cpu && o.engine.num_kv_blocks == 0)) {
    o.engine.kv_cache_bytes = static_cast<uint64_t>((o.kv_cache_gib > 0 ? o.kv_cache_gib : kCpuKvCacheGib) * (1ull << 30));
  } else if (o.engine.num_kv_blocks == 0) {
    // The weights are on the GPU now: the pool takes what the fraction leaves.
    const uint64_t block_bytes = static_cast<uint64_t>(c.kv_bytes_per_token(o.engine.kv_dtype)) *
                                 static_cast<uint64_t>(o.engine.block_size);
    const double fraction = o.gpu_memory_fraction != 0 ? o.gpu_memory_fraction : kDefaultGpuMemoryFraction;
    const int32_t blocks = gpu_kv_blocks_for(device, fraction, block_bytes,
                                             activation_reserve_bytes(c, o.engine));
    o.engine.kv_cache_bytes = static_cast<uint64_t>(blocks) * block_bytes;
  }
  if (o.server.served_model_name.empty()) o.server.served_model_name = source.origin;
  o.server.tokenizer_dir = source.tokenizer_dir;
  Engine engine(model, *tokenizer, o.engine);
  OpenAiServer server(engine, *tokenizer, o.server);
  const int port = server.bind();

  const auto kv_bytes = static_cast<uint64_t>(engine.num_kv_blocks()) * static_cast<uint64_t>(o.engine.block_size) *
                        static_cast<uint64_t>(c.kv_bytes_per_token(o.engine.kv_dtype));
  fmt::print(stderr,
             "[flint] serve {} as '{}' on {} | max_num_seqs {}, max_num_batched_tokens {}, max_queued_requests {} | "
             "KV cache {} blocks x {} tokens ({}, {}) | context {} tokens | api key {}\n",
             source.origin, o.server.served_model_name, backend->name(), o.engine.max_num_seqs,
             o.engine.max_num_batched_tokens, o.engine.max_queued_requests, engine.num_kv_blocks(), o.engine.block_size,
             format_bytes(kv_bytes), dtype_name(o.engine.kv_dtype), engine.max_model_len(),
             o.server.api_key.empty() ? "off" : "on");
  fmt::print(stderr, "[flint] listening on http://{}:{}\n", o.server.host, port);
  std::fflush(stderr);

  std::atomic<bool> stopping{false};
  std::thread http([&] {
    server.serve();
    // serve() returns on its own only if listening failed: wake the main thread.
    if (!stopping) kill(getpid(), SIGTERM);
  });
  int sig = 0;
  sigwait(&stop_signals, &sig);
  stopping = true;
  fmt::print(stderr, "[flint] {}: no new requests; finishing those in flight (up to {} s)\n",
             sig == SIGINT ? "SIGINT" : "SIGTERM", o.server.shutdown_grace_seconds);
  std::fflush(stderr);
  server.shutdown();
  http.join();
  engine.shutdown();
  const EngineStats s = engine.stats();
  fmt::print(stderr, "[flint] stopped: {} requests finished, {} cancelled, {} failed; {} tokens generated\n",
             s.requests_finished, s.requests_cancelled, s.requests_failed, s.generated_tokens);
}

void add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (completions, chat, metrics)");
  add_model_options(*cmd, o->model);
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--host", o->server.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o->server.port, "port to listen on (0: any free port)")->capture_default_str();
  cmd->add_option("--api-key", o->server.api_key, "require 'Authorization: Bearer KEY' on /v1/ endpoints");
  cmd->add_option("--served-model-name", o->server.served_model_name,
                  "the model name clients use (default: the --model argument)");
  cmd->add_option("--max-num-seqs", o->engine.max_num_seqs, "sequences running at once")->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", o->engine.max_num_batched_tokens,
                  "tokens per engine step (prefill chunk size)")
      ->capture_default_str();
  cmd->add_option("--num-kv-blocks", o->engine.num_kv_blocks, "KV cache blocks of 16 tokens (0: from --kv-cache-gib)")
      ->capture_default_str();
  cmd->add_option("--kv-cache-gib", o->kv_cache_gib,
                  "KV cache memory when --num-kv-blocks is 0 (0: 2 GiB on the CPU, --gpu-memory-fraction on CUDA)")
      ->capture_default_str();
  cmd->add_option("--gpu-memory-fraction", o->gpu_memory_fraction,
                  "CUDA: share of the GPU's memory Flint may use in all; the KV cache gets what the weights and "
                  "activations leave, when neither --num-kv-blocks nor --kv-cache-gib is given (default 0.9)");
  cmd->add_option("--max-queued-requests", o->engine.max_queued_requests,
                  "requests waiting beyond --max-num-seqs; more get HTTP 503")
      ->capture_default_str();
  cmd->add_option("--shutdown-grace", o->server.shutdown_grace_seconds,
                  "seconds in-flight requests may finish after SIGINT/SIGTERM")
      ->capture_default_str();
  cmd->callback([o] { run_serve(*o); });
}

FLINT_REGISTER_COMMAND(add_serve);

}  // namespace
}  // namespace flint::cli
