#include "runtime/generator.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>

#include "core/error.h"
#include "runtime/kv_blocks.h"
#include "runtime/step_sampler.h"
#include "runtime/stop_checker.h"

namespace flint {

std::string_view finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::stop: return "stop";
    case FinishReason::length: return "length";
    case FinishReason::none: break;
  }
  return "none";
}

namespace {

struct Sequence {
  size_t index;
  std::vector<TokenId> tokens;  // prompt, then generated
  int64_t prompt_len;
  int64_t cached = 0;           // tokens whose K/V are in the cache
  int64_t limit;                // stop once tokens.size() reaches this
  std::unique_ptr<SequenceSampler> sampler;
  std::unique_ptr<IncrementalDecoder> decoder;
  std::unique_ptr<StopChecker> stop;
  int32_t drawing = -1;         // >= 0: its next token is that draw of the pending step, not yet collected
  GenerationResult result;
  bool done() const { return result.finish != FinishReason::none; }
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

Generator::Generator(LlamaModel& model, const Tokenizer& tokenizer, GeneratorOptions options)
    : model_(model), tokenizer_(tokenizer), options_(options) {
  FLINT_CHECK(options_.max_batched_tokens > 0, ErrorContext{.field = "max_batched_tokens"}, "must be positive");
}

std::vector<GenerationResult> Generator::run(const std::vector<GenerationRequest>& requests,
                                             const TextCallback& on_text) {
  const LlamaConfig& c = model_.config();
  stats_ = {};
  std::vector<Sequence> seqs;
  int64_t total_blocks = 0;
  int64_t longest = 0;
  const int32_t B = options_.block_size;
  for (size_t i = 0; i < requests.size(); ++i) {
    const GenerationRequest& r = requests[i];
    r.params.validate();
    FLINT_CHECK(!r.prompt.empty(), ErrorContext{.field = "prompt"}, "request {} has an empty prompt", i);
    FLINT_CHECK(static_cast<int64_t>(r.prompt.size()) < c.max_position_embeddings, ErrorContext{.field = "prompt"},
                "request {}: prompt of {} tokens does not fit the context of {}", i, r.prompt.size(),
                c.max_position_embeddings);
    for (TokenId t : r.prompt)
      FLINT_CHECK(t >= 0 && t < c.vocab_size, ErrorContext{.field = "prompt"}, "token id {} outside [0, {})", t,
                  c.vocab_size);
    Sequence s;
    s.index = i;
    s.tokens = r.prompt;
    s.prompt_len = static_cast<int64_t>(r.prompt.size());
    s.limit = std::min<int64_t>(s.prompt_len + r.params.max_tokens, c.max_position_embeddings);
    s.sampler = std::make_unique<SequenceSampler>(r.params, r.prompt, static_cast<int32_t>(c.vocab_size));
    s.decoder = std::make_unique<IncrementalDecoder>(tokenizer_);
    s.decoder->skip_prompt(r.prompt);
    s.stop = std::make_unique<StopChecker>(r.params.stop);
    total_blocks += (s.limit + B - 1) / B;
    longest = std::max(longest, s.limit);
    stats_.prompt_tokens += s.prompt_len;
    seqs.push_back(std::move(s));
  }
  if (seqs.empty()) return {};

  Backend& backend = model_.backend();
  KvCache cache = backend.create_kv_cache(
      model_.kv_cache_shape(static_cast<int32_t>(total_blocks), B, options_.kv_dtype));
  KvBlockManager blocks(static_cast<int32_t>(total_blocks), B);
  const int32_t table_width = static_cast<int32_t>((longest + B - 1) / B);

  std::vector<TokenId> eos = tokenizer_.eos_ids();
  for (int32_t id : c.eos_token_ids)
    if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);

  auto emit = [&](Sequence& s, const std::string& text) {
    if (text.empty()) return;
    s.result.text += text;
    if (on_text) on_text(s.index, text);
  };
  // Ends a sequence; unless a stop string ended it, flushes the bytes the
  // decoder and the stop checker still hold.
  auto finish = [&](Sequence& s, FinishReason why, bool by_stop_string = false) {
    if (!by_stop_string) {
      const StopChecker::Result tail = s.stop->push(s.decoder->finish());
      emit(s, tail.emit);
      if (!tail.stopped) emit(s, s.stop->flush());
    }
    s.result.finish = why;
    blocks.release(static_cast<int64_t>(s.index));
  };

  // Each step's time runs from the previous step's tokens reaching the host to
  // its own.
  const auto start = Clock::now();
  auto last_arrival = start;
  auto account = [&](bool prefill) {
    const auto now = Clock::now();
    (prefill ? stats_.prefill_seconds : stats_.decode_seconds) += std::chrono::duration<double>(now - last_arrival).count();
    last_arrival = now;
    ++stats_.steps;
  };
  // Appends a sampled token and applies the stop conditions.
  auto take = [&](Sequence& s, const SampleOutcome& drawn) {
    s.drawing = -1;
    FLINT_CHECK(drawn.error.empty(), "request {}: {}", s.index, drawn.error);
    const SampledToken& tok = drawn.token;
    if (stats_.generated_tokens == 0) stats_.first_token_seconds = seconds_since(start);
    s.sampler->accept(tok.id);
    s.tokens.push_back(tok.id);
    s.result.tokens.push_back(tok.id);
    s.result.samples.push_back(tok);
    ++stats_.generated_tokens;
    const SamplingParams& p = requests[s.index].params;
    const bool is_eos = !p.ignore_eos && std::find(eos.begin(), eos.end(), tok.id) != eos.end();
    const bool is_stop_id =
        std::find(p.stop_token_ids.begin(), p.stop_token_ids.end(), tok.id) != p.stop_token_ids.end();
    if (is_eos || is_stop_id) {
      finish(s, FinishReason::stop);
      return;
    }
    const StopChecker::Result text = s.stop->push(s.decoder->push(tok.id));
    emit(s, text.emit);
    if (text.stopped) {
      finish(s, FinishReason::stop, /*by_stop_string=*/true);
    } else if (static_cast<int64_t>(s.tokens.size()) >= s.limit) {
      finish(s, FinishReason::length);
    }
  };

  // The step whose draws are queued on the device, not yet collected.
  struct Pending {
    std::vector<Sequence*> seqs;
    std::vector<SampleTask> tasks;
    bool prefill = false;
  };
  std::optional<Pending> pending;

  while (true) {
    // Decode tokens first (one per running sequence), then prefill chunks.
    BatchBuilder builder(table_width);
    std::vector<Sequence*> sampling;
    int64_t budget = options_.max_batched_tokens;
    bool any_prefill = false;
    for (int pass = 0; pass < 2; ++pass) {
      for (Sequence& s : seqs) {
        if (s.done()) continue;
        const bool decoding = s.cached >= s.prompt_len;
        if (decoding != (pass == 0) || budget <= 0) continue;
        const auto seq_id = static_cast<int64_t>(s.index);
        if (s.drawing >= 0) {
          // Its next token is still being drawn: it is this step's input,
          // unless it is the sequence's last.
          if (static_cast<int64_t>(s.tokens.size()) + 1 >= s.limit) continue;
          --budget;
          FLINT_ASSERT(blocks.ensure(seq_id, s.cached + 1));
          builder.add_sampled_token(s.drawing, static_cast<int32_t>(s.cached), blocks.blocks(seq_id));
          sampling.push_back(&s);
          s.cached += 1;
          continue;
        }
        const int64_t pending_tokens = static_cast<int64_t>(s.tokens.size()) - s.cached;
        const int64_t n = std::min(pending_tokens, budget);
        budget -= n;
        FLINT_ASSERT(blocks.ensure(seq_id, s.cached + n));  // the pool holds every sequence's limit
        std::vector<TokenId> chunk(s.tokens.begin() + s.cached, s.tokens.begin() + s.cached + n);
        const bool samples = s.cached + n == static_cast<int64_t>(s.tokens.size());
        builder.add_sequence(chunk, static_cast<int32_t>(s.cached), blocks.blocks(seq_id), samples);
        if (samples) sampling.push_back(&s);
        any_prefill |= !decoding;
        s.cached += n;
      }
    }
    Batch batch = builder.build();
    const bool have_step = batch.num_tokens() > 0;
    if (!have_step && !pending) break;

    // Queued first, so that the device computes while the host takes the
    // pending step's tokens.
    Tensor logits;
    if (have_step) logits = model_.forward(batch, cache);
    if (pending) {
      const std::vector<SampleOutcome> drawn = collect_sample_step(backend, pending->tasks);
      account(pending->prefill);
      for (size_t r = 0; r < pending->seqs.size(); ++r) take(*pending->seqs[r], drawn[r]);
      pending.reset();
    }
    if (!have_step) continue;

    // A sequence that stopped on the token just taken computed its row for nothing.
    Pending step;
    step.prefill = any_prefill;
    for (size_t r = 0; r < sampling.size(); ++r) {
      if (sampling[r]->done()) continue;
      step.seqs.push_back(sampling[r]);
      step.tasks.push_back({sampling[r]->sampler.get(), static_cast<int64_t>(r)});
    }
    if (options_.overlap_steps && can_sample_async(backend, logits, step.tasks)) {
      sample_step_async(backend, logits, step.tasks);
      for (size_t r = 0; r < step.seqs.size(); ++r) step.seqs[r]->drawing = static_cast<int32_t>(r);
      pending = std::move(step);
    } else {
      const std::vector<SampleOutcome> drawn = sample_step(backend, logits, step.tasks);
      account(step.prefill);
      for (size_t r = 0; r < step.seqs.size(); ++r) take(*step.seqs[r], drawn[r]);
    }
  }

  std::vector<GenerationResult> out;
  for (Sequence& s : seqs) out.push_back(std::move(s.result));
  return out;
}

}  // namespace flint
