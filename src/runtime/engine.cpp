#include "runtime/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <span>

#include "core/error.h"
#include "runtime/step_sampler.h"
#include "runtime/stop_checker.h"

namespace flint {

// ------------------------------------------------------------------ outputs

void RequestOutputs::push(RequestEvent event) {
  {
    std::lock_guard lock(mutex_);
    events_.push_back(std::move(event));
  }
  ready_.notify_one();
}

std::vector<RequestEvent> RequestOutputs::wait() {
  std::unique_lock lock(mutex_);
  ready_.wait(lock, [&] { return !events_.empty(); });
  std::vector<RequestEvent> out;
  out.swap(events_);
  return out;
}

std::vector<RequestEvent> RequestOutputs::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  ready_.wait_for(lock, timeout, [&] { return !events_.empty(); });
  std::vector<RequestEvent> out;
  out.swap(events_);
  return out;
}

// ------------------------------------------------------------------ options

int32_t resolve_num_kv_blocks(const EngineOptions& o, const LlamaConfig& c) {
  FLINT_CHECK(o.block_size >= 1, ErrorContext{.field = "block_size"}, "must be at least 1, got {}", o.block_size);
  if (o.num_kv_blocks > 0) return o.num_kv_blocks;
  FLINT_CHECK(o.num_kv_blocks == 0, ErrorContext{.field = "num_kv_blocks"},
              "must be >= 0 (0 = from the memory budget), got {}", o.num_kv_blocks);
  const auto block_bytes =
      static_cast<uint64_t>(c.kv_bytes_per_token(o.kv_dtype)) * static_cast<uint64_t>(o.block_size);
  const uint64_t fit = o.kv_cache_bytes / block_bytes;
  // More blocks than max_num_seqs full-context sequences can use is waste.
  const int64_t per_seq = (c.max_position_embeddings + o.block_size - 1) / o.block_size;
  const uint64_t useful = static_cast<uint64_t>(std::max(o.max_num_seqs, 1)) * static_cast<uint64_t>(per_seq);
  const uint64_t blocks = std::min({fit, useful, static_cast<uint64_t>(INT32_MAX)});
  FLINT_CHECK(blocks >= 1, ErrorContext{.field = "kv_cache_bytes"},
              "{} bytes do not hold one KV block of {} tokens ({} bytes)", o.kv_cache_bytes, o.block_size, block_bytes);
  return static_cast<int32_t>(blocks);
}

// ------------------------------------------------------------------ engine

struct Engine::Sequence {
  Sequence(const Tokenizer& tokenizer, EngineRequest&& r, int32_t vocab_size)
      : params(std::move(r.params)),
        tokens(std::move(r.prompt)),
        prompt_len(static_cast<int64_t>(tokens.size())),
        sampler(params, tokens, vocab_size),
        decoder(tokenizer),
        stop(params.stop) {
    decoder.skip_prompt(tokens);
  }

  RequestId id = 0;
  size_t tag = 0;
  std::shared_ptr<RequestOutputs> outputs;
  SamplingParams params;
  std::vector<TokenId> tokens;  // prompt, then generated
  int64_t prompt_len;
  int64_t limit = 0;  // finish (length) once tokens.size() reaches this
  SequenceSampler sampler;
  IncrementalDecoder decoder;
  StopChecker stop;
  int32_t prompt_logprobs = -1;
  std::vector<SampledToken> prompt_lp;  // entry i scores prompt token i + 1
  bool prompt_lp_sent = false;
  bool scoring_prompt() const {
    return prompt_logprobs >= 0 && !prompt_lp_sent && static_cast<int64_t>(prompt_lp.size()) + 1 < prompt_len;
  }
};

namespace {

SchedulerOptions scheduler_options(const EngineOptions& o, int32_t num_blocks) {
  SchedulerOptions s;
  s.max_num_seqs = o.max_num_seqs;
  s.max_num_batched_tokens = o.max_num_batched_tokens;
  s.num_blocks = num_blocks;
  s.block_size = o.block_size;
  return s;
}

// The text a decoder and a stop checker still hold when a sequence ends for
// a reason other than a stop string.
std::string flush_text(IncrementalDecoder& decoder, StopChecker& stop) {
  StopChecker::Result tail = stop.push(decoder.finish());
  if (!tail.stopped) tail.emit += stop.flush();
  return std::move(tail.emit);
}

// The logprob of `id` under log_softmax(row) and the `top` most probable
// tokens (lowest id on ties), as SequenceSampler reports sampled tokens.
SampledToken score(std::span<const float> row, int32_t id, int32_t top, std::vector<int32_t>& order) {
  float max = -std::numeric_limits<float>::infinity();
  for (float x : row) max = std::max(max, x);
  double sum = 0;
  for (float x : row) sum += std::exp(static_cast<double>(x - max));
  const double log_z = static_cast<double>(max) + std::log(sum);
  auto logprob = [&](int32_t t) {
    return static_cast<float>(static_cast<double>(row[static_cast<size_t>(t)]) - log_z);
  };
  SampledToken out;
  out.id = id;
  out.logprob = logprob(id);
  if (top > 0) {
    order.resize(row.size());
    std::iota(order.begin(), order.end(), 0);
    auto by_logit = [&](int32_t a, int32_t b) {
      const float la = row[static_cast<size_t>(a)], lb = row[static_cast<size_t>(b)];
      return la > lb || (la == lb && a < b);
    };
    const auto nth = order.begin() + std::min<std::ptrdiff_t>(top, static_cast<std::ptrdiff_t>(order.size()));
    std::partial_sort(order.begin(), nth, order.end(), by_logit);
    for (auto it = order.begin(); it != nth; ++it) out.top_logprobs.emplace_back(*it, logprob(*it));
  }
  return out;
}

}  // namespace

Engine::Engine(LlamaModel& model, const Tokenizer& tokenizer, EngineOptions options)
    : model_(model),
      tokenizer_(tokenizer),
      options_(options),
      num_blocks_(resolve_num_kv_blocks(options, model.config())),
      max_model_len_(model.config().max_position_embeddings),
      scheduler_(scheduler_options(options, num_blocks_)) {
  FLINT_CHECK(options_.max_queued_requests >= 0, ErrorContext{.field = "max_queued_requests"}, "must be >= 0, got {}",
              options_.max_queued_requests);
  eos_ = tokenizer_.eos_ids();
  for (int32_t id : model_.config().eos_token_ids)
    if (std::find(eos_.begin(), eos_.end(), id) == eos_.end()) eos_.push_back(id);
  cache_ = model_.backend().create_kv_cache(model_.kv_cache_shape(num_blocks_, options_.block_size, options_.kv_dtype));
  local_.kv_blocks_total = num_blocks_;
  stats_.kv_blocks_total = num_blocks_;
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  std::lock_guard join_lock(join_mutex_);  // two callers must not both join
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

std::vector<RequestId> Engine::submit(std::vector<EngineRequest> requests, std::shared_ptr<RequestOutputs> outputs) {
  FLINT_CHECK(outputs != nullptr, "submit: no output queue");
  const LlamaConfig& c = model_.config();
  std::vector<std::unique_ptr<Sequence>> made;
  int64_t prompt_tokens = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    EngineRequest& r = requests[i];
    r.params.validate();
    const auto n = static_cast<int64_t>(r.prompt.size());
    FLINT_CHECK(n > 0, ErrorContext{.field = "prompt"}, "the prompt is empty");
    for (TokenId t : r.prompt)
      FLINT_CHECK(t >= 0 && t < c.vocab_size, ErrorContext{.field = "prompt"}, "token id {} is outside [0, {})", t,
                  c.vocab_size);
    FLINT_CHECK(n < max_model_len_, ErrorContext{.field = "prompt"},
                "the prompt has {} tokens; the model's context is {} tokens, which leaves no room to generate", n,
                max_model_len_);
    FLINT_CHECK(n <= scheduler_.capacity_tokens(), ErrorContext{.field = "prompt"},
                "the prompt has {} tokens; the KV cache holds {} tokens", n, scheduler_.capacity_tokens());
    FLINT_CHECK(r.prompt_logprobs >= -1 && r.prompt_logprobs <= 20, ErrorContext{.field = "logprobs"},
                "prompt logprobs: at most 20 alternatives, got {}", r.prompt_logprobs);
    const int32_t prompt_logprobs = r.prompt_logprobs;
    auto s = std::make_unique<Sequence>(tokenizer_, std::move(r), static_cast<int32_t>(c.vocab_size));
    s->prompt_logprobs = prompt_logprobs;
    s->tag = i;
    s->outputs = outputs;
    s->limit = std::min<int64_t>(s->prompt_len + s->params.max_tokens, max_model_len_);
    prompt_tokens += n;
    made.push_back(std::move(s));
  }

  std::vector<RequestId> ids;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw EngineStopped("the engine is shutting down");
    const int64_t limit = static_cast<int64_t>(options_.max_num_seqs) + options_.max_queued_requests;
    if (unfinished_ + static_cast<int64_t>(made.size()) > limit)
      throw EngineBusy(fmt::format("the server is busy: {} requests in flight (limit {})", unfinished_, limit));
    for (auto& s : made) {
      s->id = next_id_++;
      ids.push_back(s->id);
      inbox_.push_back(std::move(s));
    }
    unfinished_ += static_cast<int64_t>(ids.size());
    stats_.prompt_tokens += prompt_tokens;
    stats_.waiting += static_cast<int32_t>(ids.size());
  }
  wake_.notify_one();
  return ids;
}

void Engine::cancel(RequestId id) {
  {
    std::lock_guard lock(mutex_);
    cancels_.push_back(id);
  }
  wake_.notify_one();
}

void Engine::cancel_all() {
  {
    std::lock_guard lock(mutex_);
    cancel_all_ = true;
  }
  wake_.notify_one();
}

EngineStats Engine::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

int64_t Engine::unfinished() const {
  std::lock_guard lock(mutex_);
  return unfinished_;
}

void Engine::end(Sequence& s, RequestEvent last) {
  if (last.finish != FinishReason::none)
    ++local_.requests_finished;
  else if (last.cancelled)
    ++local_.requests_cancelled;
  else
    ++local_.requests_failed;
  scheduler_.remove(s.id);  // frees the blocks now
  last.tag = s.tag;
  {
    std::lock_guard lock(mutex_);
    --unfinished_;
  }
  std::shared_ptr<RequestOutputs> outputs = std::move(s.outputs);
  seqs_.erase(s.id);  // `s` is gone from here on
  emit(outputs, std::move(last));
}

void Engine::emit(const std::shared_ptr<RequestOutputs>& outputs, RequestEvent event) {
  events_.emplace_back(outputs, std::move(event));
}

void Engine::publish() {
  local_.running = scheduler_.num_running();
  local_.waiting = scheduler_.num_waiting();
  local_.kv_blocks_used = scheduler_.used_blocks();
  local_.preemptions = scheduler_.num_preemptions();
  std::unique_lock lock(mutex_);
  const int64_t prompt_tokens = stats_.prompt_tokens;
  const int32_t queued = static_cast<int32_t>(inbox_.size());
  stats_ = local_;
  stats_.prompt_tokens = prompt_tokens;
  stats_.waiting += queued;
  lock.unlock();
  for (auto& [outputs, event] : events_) outputs->push(std::move(event));
  events_.clear();
}

void Engine::take_inbox() {
  std::vector<std::unique_ptr<Sequence>> inbox;
  std::vector<RequestId> cancels;
  bool all = false;
  {
    std::lock_guard lock(mutex_);
    inbox.swap(inbox_);
    cancels.swap(cancels_);
    all = cancel_all_;
    cancel_all_ = false;
  }
  for (auto& s : inbox) {
    const RequestId id = s->id;
    scheduler_.add(id, s->prompt_len, s->prompt_logprobs >= 0 ? kPromptLogprobsChunk : 0);
    seqs_.emplace(id, std::move(s));
  }
  if (all) {
    cancels.clear();
    for (auto& [id, s] : seqs_) cancels.push_back(id);
    std::sort(cancels.begin(), cancels.end());
  }
  for (RequestId id : cancels) {
    auto it = seqs_.find(id);
    if (it == seqs_.end()) continue;  // finished already
    RequestEvent ev;
    ev.cancelled = true;
    end(*it->second, std::move(ev));
  }
}

void Engine::loop() {
  while (true) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] {
        return stopping_ || !inbox_.empty() || !cancels_.empty() || cancel_all_ || scheduler_.has_work();
      });
      if (stopping_) break;
    }
    take_inbox();
    if (scheduler_.has_work()) step();
    publish();
  }
  // Shutting down: every request still here ends as cancelled.
  cancel_all();
  take_inbox();
  publish();
}

void Engine::step() {
  StepPlan plan = scheduler_.schedule();
  for (SeqId id : plan.out_of_blocks) {
    Sequence& s = *seqs_.at(id);
    RequestEvent ev;
    ev.text = flush_text(s.decoder, s.stop);
    ev.finish = FinishReason::length;
    end(s, std::move(ev));
  }
  if (plan.chunks.empty()) return;

  int32_t width = 1;
  for (const ScheduledChunk& c : plan.chunks)
    width = std::max(width, static_cast<int32_t>(scheduler_.block_table(c.seq).size()));
  // Each chunk's rows in the logits: its last token's if it samples, every
  // token's while its prompt is being scored.
  struct Rows {
    Sequence* seq;
    ScheduledChunk chunk;
    int64_t first;
    bool all;
  };
  std::vector<Rows> rows;
  rows.reserve(plan.chunks.size());
  BatchBuilder builder(width);
  std::vector<TokenId> chunk_tokens;
  int64_t num_rows = 0;
  for (const ScheduledChunk& c : plan.chunks) {
    Sequence& s = *seqs_.at(c.seq);
    const auto begin = s.tokens.begin() + c.start;
    chunk_tokens.assign(begin, begin + c.count);
    const bool all = s.scoring_prompt();
    builder.add_sequence(chunk_tokens, static_cast<int32_t>(c.start), scheduler_.block_table(c.seq), c.samples, all);
    rows.push_back({&s, c, num_rows, all});
    num_rows += all ? c.count : (c.samples ? 1 : 0);
  }
  const Batch batch = builder.build();
  ++local_.steps;
  local_.computed_tokens += batch.num_tokens();

  // Prompt scoring reads whole rows on the host; otherwise the logits stay
  // where they are and only sampled ids come back (runtime/step_sampler.h).
  bool host_rows = false;
  for (const Rows& r : rows) host_rows |= r.all;
  // A step that fails loses all its sequences; the engine goes on.
  auto fail_step = [&](const char* what, const std::exception& e) {
    for (const ScheduledChunk& c : plan.chunks) {
      RequestEvent ev;
      ev.error = fmt::format("{}: {}", what, e.what());
      end(*seqs_.at(c.seq), std::move(ev));
    }
  };
  Tensor logits;
  try {
    logits = model_.forward(batch, cache_);
    if (host_rows && (logits.device() != Device::cpu || !logits.is_contiguous()))
      logits = model_.backend().to_host(logits);
  } catch (const std::exception& e) {
    fail_step("the forward pass failed", e);
    return;
  }

  const auto V = static_cast<size_t>(model_.config().vocab_size);
  auto row = [&](int64_t r) { return std::span<const float>(logits.data<float>() + static_cast<size_t>(r) * V, V); };
  std::vector<SampleTask> tasks;
  for (const Rows& r : rows)
    if (r.chunk.samples) tasks.push_back({&r.seq->sampler, r.all ? r.first + r.chunk.count - 1 : r.first});
  std::vector<SampleOutcome> drawn;
  try {
    drawn = sample_step(model_.backend(), logits, tasks);
  } catch (const std::exception& e) {
    fail_step("sampling failed", e);
    return;
  }
  size_t next_task = 0;
  for (const Rows& r : rows) {
    Sequence& s = *r.seq;
    if (r.all) {
      for (int64_t i = 0; i < r.chunk.count; ++i) {
        const int64_t p = r.chunk.start + i;  // this row predicts token p + 1
        if (p + 1 < s.prompt_len && p == static_cast<int64_t>(s.prompt_lp.size()))
          s.prompt_lp.push_back(
              score(row(r.first + i), s.tokens[static_cast<size_t>(p + 1)], s.prompt_logprobs, order_));
      }
    }
    if (!r.chunk.samples) continue;
    RequestEvent ev;
    SampleOutcome& outcome = drawn[next_task++];
    if (!outcome.error.empty()) {
      ev.error = fmt::format("sampling failed: {}", outcome.error);
      end(s, std::move(ev));
      continue;
    }
    SampledToken tok = std::move(outcome.token);
    if (s.prompt_logprobs >= 0 && !s.prompt_lp_sent) {
      ev.prompt_logprobs = std::move(s.prompt_lp);
      s.prompt_lp_sent = true;
    }
    s.sampler.accept(tok.id);
    s.tokens.push_back(tok.id);
    scheduler_.append_token(s.id);
    ++local_.generated_tokens;
    const bool is_eos = !s.params.ignore_eos && std::find(eos_.begin(), eos_.end(), tok.id) != eos_.end();
    const bool is_stop_id = std::find(s.params.stop_token_ids.begin(), s.params.stop_token_ids.end(), tok.id) !=
                            s.params.stop_token_ids.end();
    ev.token = std::move(tok);
    if (is_eos || is_stop_id) {
      ev.text = flush_text(s.decoder, s.stop);
      ev.finish = FinishReason::stop;
    } else {
      StopChecker::Result text = s.stop.push(s.decoder.push(ev.token->id));
      ev.text = std::move(text.emit);
      if (text.stopped) {
        ev.finish = FinishReason::stop;
      } else if (static_cast<int64_t>(s.tokens.size()) >= s.limit) {
        ev.text += flush_text(s.decoder, s.stop);
        ev.finish = FinishReason::length;
      }
    }
    if (ev.finish != FinishReason::none) {
      end(s, std::move(ev));
    } else {
      ev.tag = s.tag;
      emit(s.outputs, std::move(ev));
    }
  }
}

}  // namespace flint
