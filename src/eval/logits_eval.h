// eval/logits_eval.h — logits of a whole token sequence, and how far two sets
// of logits are apart. The yardstick of `flint eval compare` and the golden tests.
//
// Contract: run_sequence_logits() runs one sequence through the model in the
// given mode and returns f32 [T, V] host logits, row t predicting token t+1:
//   prefill     all T tokens in one step;
//   decode      one token per step through the KV cache;
//   chunked:N   steps of N tokens (chunked prefill over the cache).
// The three modes compute the same function; their differences are rounding.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace flint {

struct EvalMode {
  enum class Kind { prefill, decode, chunked } kind = Kind::prefill;
  int32_t chunk = 0;  // tokens per step for chunked
};
EvalMode parse_eval_mode(const std::string& text);  // "prefill" | "decode" | "chunked:N"
std::string eval_mode_name(const EvalMode& mode);

// `kv_dtype`: the cache dtype (f32 for the CPU reference).
Tensor run_sequence_logits(LlamaModel& model, const std::vector<TokenId>& ids, const EvalMode& mode,
                           DType kv_dtype);

struct LogitsDiff {
  double relative_error = 0;  // ||got - ref||_2 / ||ref||_2 over all elements
  double max_abs_error = 0;
  double top1_agreement = 0;  // fraction of rows whose argmax agrees
  int64_t rows = 0;
};
LogitsDiff compare_logits(const Tensor& got, const Tensor& ref);  // both f32 [T, V] host

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;
  int64_t scored_tokens = 0;
  int64_t windows = 0;
  double seconds = 0;
};
// Strided evaluation: for k = 0, 1, ... while kN + N + 1 <= T, feed
// t[kN, kN+N) from position 0 and score targets t[kN+1, kN+N+1).
PerplexityResult perplexity(LlamaModel& model, const std::vector<TokenId>& tokens, int32_t window, DType kv_dtype);

}  // namespace flint
