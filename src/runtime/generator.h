// runtime/generator.h — offline generation: a list of prompts in, tokens out.
//
// Contract:
// - All requests run together as one batch: every step packs the decode token
//   of each running sequence and prefill chunks of the others (up to
//   max_batched_tokens), so prefill, chunked prefill and decode mix freely.
// - The KV pool is sized to hold every request's prompt + max_tokens at once
//   (offline generation never preempts; the serving scheduler does).
// - Each request stops at its max_tokens, an EOS id (unless ignore_eos), one of
//   its stop ids, or a stop string (not included in the text), or when the
//   sequence reaches the model's context length.
// - on_text receives UTF-8-complete text deltas per request as they are made.
// - With overlap_steps, where the backend samples on its device, each step is
//   queued before the previous step's tokens reach the host: its decode
//   tokens are the ones still being drawn (Batch::token_from_sample), and the
//   host's bookkeeping runs while the device computes. A sequence that stops
//   on a token (EOS, stop id or string) then has one more row computed and
//   discarded. The results are those without overlap, bit for bit on the CPU;
//   on CUDA that extra row can move the other rows' logits in the last bits
//   (kernel choice and split-KV follow the batch size), as any change of
//   batch composition can.
// - Stats time each step from the previous step's tokens reaching the host to
//   its own (the first from the start of run()), so that they sum to the
//   wall-clock time.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/llama.h"
#include "runtime/sampling.h"
#include "tokenizer/tokenizer.h"

namespace flint {

enum class FinishReason { none, stop, length };
std::string_view finish_reason_name(FinishReason r);  // "stop", "length"

struct GenerationRequest {
  std::vector<TokenId> prompt;
  SamplingParams params;
};

struct GenerationResult {
  std::vector<TokenId> tokens;          // generated ids (a matched stop id included, EOS included)
  std::vector<SampledToken> samples;    // one per generated token (logprobs)
  std::string text;                     // detokenized, stop string removed
  FinishReason finish = FinishReason::none;
};

struct GeneratorOptions {
  int32_t block_size = 16;
  int32_t max_batched_tokens = 2048;
  DType kv_dtype = DType::f32;  // the CPU reference keeps K/V in f32
  bool overlap_steps = true;    // queue a step before the last one's tokens reach the host (see above)
};

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  double prefill_seconds = 0;   // steps that processed prompt tokens
  double decode_seconds = 0;    // steps of decode tokens only
  double first_token_seconds = 0;
  int64_t steps = 0;
};

using TextCallback = std::function<void(size_t request, std::string_view delta)>;

class Generator {
 public:
  Generator(LlamaModel& model, const Tokenizer& tokenizer, GeneratorOptions options = {});
  std::vector<GenerationResult> run(const std::vector<GenerationRequest>& requests, const TextCallback& on_text = {});
  const GenerationStats& stats() const { return stats_; }

 private:
  LlamaModel& model_;
  const Tokenizer& tokenizer_;
  GeneratorOptions options_;
  GenerationStats stats_;
};

}  // namespace flint
