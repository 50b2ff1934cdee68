// runtime/engine.h — the serving engine: requests in from any thread, one
// loop that batches them continuously, tokens out through per-request queues.
//
// Contract:
// - One engine thread owns the model, the KV pool and the Scheduler. Other
//   threads only call submit(), cancel(), stats() and shutdown(); all of them
//   are thread-safe. The loop sleeps on a condition variable when there is no
//   work (no polling).
// - submit() validates every request of a group before it queues any (a
//   flint::Error names the field: prompt, max_tokens, temperature, ...), so a
//   group is accepted or refused as a whole. It throws EngineBusy when the
//   engine already holds max_num_seqs + max_queued_requests unfinished
//   requests, and EngineStopped after shutdown().
// - Every accepted request ends with exactly one last event (RequestEvent::
//   last()): finished (stop or length), cancelled, or failed with a message.
//   Nothing is dropped silently. A request that needs more KV blocks than the
//   pool holds ends with finish reason "length".
// - cancel() frees the request's KV blocks before the next step runs.
// - Greedy tokens do not depend on the other requests in the engine, nor on
//   preemption: a row's logits depend only on its own tokens. On the CPU this
//   holds bit for bit, logprobs included (backends/cpu/cpu_kernels.h); on
//   CUDA, cuBLAS picks kernels by batch size, so logits may differ in the
//   last bits and a near-tie may then break the other way.
// - Stop conditions are the Generator's (runtime/generator.h): max_tokens, the
//   context length, EOS (unless ignore_eos), stop_token_ids, stop strings.
// - The engine knows nothing of HTTP; the server maps events to responses.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "model/llama.h"
#include "runtime/generator.h"
#include "runtime/sampling.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace flint {

struct EngineOptions {
  int32_t max_num_seqs = 64;
  int32_t max_num_batched_tokens = 2048;
  int32_t num_kv_blocks = 0;             // 0: from kv_cache_bytes
  uint64_t kv_cache_bytes = 1ull << 30;  // KV pool budget when num_kv_blocks is 0
  int32_t block_size = 16;
  DType kv_dtype = DType::f32;        // callers pass the backend's activation dtype
  int32_t max_queued_requests = 256;  // waiting requests beyond max_num_seqs; more: EngineBusy
};

// The number of KV blocks `options` asks for: num_kv_blocks, or as many as
// kv_cache_bytes holds, but never more than max_num_seqs full-context
// sequences need. Throws flint::Error if that is less than one block.
int32_t resolve_num_kv_blocks(const EngineOptions& options, const LlamaConfig& config);

struct EngineRequest {
  std::vector<TokenId> prompt;
  SamplingParams params;
  // >= 0: also score the prompt (OpenAI's echo with logprobs): the logprob of
  // every prompt token after the first, with this many alternatives (<= 20).
  // Such a sequence computes at most kPromptLogprobsChunk tokens per step, to
  // bound the logits it asks for.
  int32_t prompt_logprobs = -1;
};
inline constexpr int64_t kPromptLogprobsChunk = 64;

// One step of one request's output. A token event carries the token, its
// logprobs and the text that became final with it (possibly empty: an
// unfinished UTF-8 character or a possible stop string is held back).
struct RequestEvent {
  size_t tag = 0;                     // the caller's index of the request within its group
  std::optional<SampledToken> token;  // none for a last event without a token
  // With EngineRequest::prompt_logprobs, on the first token's event: entry i
  // scores prompt token i + 1 (its id, logprob and top alternatives).
  std::vector<SampledToken> prompt_logprobs;
  std::string text;
  FinishReason finish = FinishReason::none;  // stop or length: the request is done
  bool cancelled = false;                    // by cancel() or shutdown()
  std::string error;                         // non-empty: the request failed
  bool last() const { return finish != FinishReason::none || cancelled || !error.empty(); }
};

// Where the engine delivers a request group's events; one consumer.
class RequestOutputs {
 public:
  void push(RequestEvent event);
  // Blocks until at least one event is there, then returns all of them.
  std::vector<RequestEvent> wait();
  // As wait(), but gives up after `timeout` (returns an empty list).
  std::vector<RequestEvent> wait_for(std::chrono::milliseconds timeout);

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<RequestEvent> events_;
};

class EngineBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class EngineStopped : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct EngineStats {
  int32_t running = 0;  // sequences holding KV blocks
  int32_t waiting = 0;  // accepted, not running (queued or preempted)
  int32_t kv_blocks_used = 0;
  int32_t kv_blocks_total = 0;
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0;  // of accepted requests
  int64_t generated_tokens = 0;
  int64_t computed_tokens = 0;  // prompt + recomputed + decode tokens run through the model
  int64_t steps = 0;
  int64_t requests_finished = 0;  // stop or length
  int64_t requests_cancelled = 0;
  int64_t requests_failed = 0;
};

using RequestId = int64_t;

class Engine {
 public:
  // Starts the engine thread. `model` and `tokenizer` must outlive the engine.
  Engine(LlamaModel& model, const Tokenizer& tokenizer, EngineOptions options);
  ~Engine();  // shutdown(), then joins
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a group of requests whose events go to `outputs`, tagged with their
  // index in `requests`. Returns their ids (for cancel()).
  std::vector<RequestId> submit(std::vector<EngineRequest> requests, std::shared_ptr<RequestOutputs> outputs);
  void cancel(RequestId id);  // unknown or finished ids are ignored
  void cancel_all();
  // Cancels everything, refuses new requests and stops the thread. Idempotent.
  void shutdown();

  EngineStats stats() const;
  int64_t unfinished() const;  // accepted requests without their last event yet
  const EngineOptions& options() const { return options_; }
  int32_t num_kv_blocks() const { return num_blocks_; }
  int64_t max_model_len() const { return max_model_len_; }

 private:
  struct Sequence;

  void loop();
  void take_inbox();
  void step();
  void end(Sequence& s, RequestEvent last);  // queues the last event, forgets the sequence
  void emit(const std::shared_ptr<RequestOutputs>& outputs, RequestEvent event);
  // Publishes the stats, then delivers the step's events: a client that has
  // its last event sees it counted in stats().
  void publish();

  LlamaModel& model_;
  const Tokenizer& tokenizer_;
  EngineOptions options_;
  int32_t num_blocks_ = 0;
  int64_t max_model_len_ = 0;
  std::vector<TokenId> eos_;

  // Shared with submitting threads, under mutex_.
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::unique_ptr<Sequence>> inbox_;
  std::vector<RequestId> cancels_;
  bool cancel_all_ = false;
  bool stopping_ = false;
  RequestId next_id_ = 0;
  int64_t unfinished_ = 0;
  EngineStats stats_;

  // Owned by the engine thread.
  KvCache cache_;
  Scheduler scheduler_;
  std::unordered_map<RequestId, std::unique_ptr<Sequence>> seqs_;
  EngineStats local_;  // counters the thread keeps, copied into stats_ once per step
  std::vector<std::pair<std::shared_ptr<RequestOutputs>, RequestEvent>> events_;  // of this step
  std::vector<int32_t> order_;  // scratch for prompt logprobs' top alternatives

  std::mutex join_mutex_;
  std::thread thread_;
};

}  // namespace flint
