// runtime/sampling.h — per-request sampling parameters and the sampler that
// turns one row of logits into the next token.
//
// Contract:
// - SamplingParams::validate() throws flint::Error naming the offending field
//   (ErrorContext::field is the parameter's name) for every value outside the
//   ranges documented on the fields. Samplers assume validated params.
// - SequenceSampler belongs to one sequence; it is not thread-safe. sample()
//   reads the logits and the sequence's history and consumes at most one RNG
//   draw; accept() records the token that was actually appended (the caller
//   may append a token other than the sampled one, e.g. a forced token).
// - Logits are processed in vLLM's order: repetition, frequency and presence
//   penalties -> temperature -> top-k -> top-p -> min-p -> draw. A temperature
//   below 1e-5 (vLLM's epsilon) means greedy: the argmax of the penalised
//   logits, lowest id on ties, no RNG use, top-k/top-p/min-p irrelevant.
// - Reproducible: the RNG is std::mt19937_64 (fully specified by the C++
//   standard) and uniform doubles are built from its bits, so one seed gives the
//   same tokens with any standard library (up to libm rounding of exp()).
//   Without a seed the sampler seeds itself from std::random_device.
// - SampledToken::logprob and top_logprobs are log-probabilities under the
//   model's raw distribution (log_softmax of the unprocessed logits), as vLLM
//   returns by default — not of the penalised/truncated distribution drawn from.
// - The same draw runs on a device (ops/sampling.h, Backend::sample_rows):
//   device_spec() gives the row's parameters, penalised tokens and the uniform
//   it consumes from this sampler's RNG, device_result() reads the answer. One
//   seed gives the same tokens either way, except where a token's cumulative
//   weight lies within rounding (~1e-13) of the draw.
// - Bad logits are errors, not garbage: a NaN or +inf logit, a row of the wrong
//   size, or a row where every logit is -inf throws flint::Error.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ops/sampling.h"

namespace flint {

struct SamplingParams {
  int32_t max_tokens = 16;          // >= 1; OpenAI's default for completions
  float temperature = 1.0f;         // >= 0, finite; < 1e-5 means greedy
  int32_t top_k = 0;                // 0 or -1: off; k >= vocab: no-op
  // In [0, 1]. Keeps the smallest set of most probable tokens whose mass
  // reaches top_p (a token whose predecessors already reach it is dropped), and
  // always at least one token: top_p = 0 keeps only the most probable token
  // (lowest id on ties), as llama.cpp and HF's min_tokens_to_keep = 1 do.
  // vLLM rejects 0; OpenAI accepts it, so Flint gives it that limit meaning.
  float top_p = 1.0f;
  float min_p = 0.0f;               // in [0, 1]; keeps p >= min_p * p_max
  float repetition_penalty = 1.0f;  // > 0; over prompt + generated tokens
  float presence_penalty = 0.0f;    // in [-2, 2]; over generated tokens only
  float frequency_penalty = 0.0f;   // in [-2, 2]; over generated tokens only
  std::optional<uint64_t> seed;     // none: seeded from std::random_device
  std::vector<std::string> stop;    // non-empty strings; not part of the text
  std::vector<int32_t> stop_token_ids;  // >= 0; the matched id is kept in tokens
  bool ignore_eos = false;
  int32_t logprobs = 0;             // in [0, 20]: how many top_logprobs to return

  void validate() const;
};

struct SampledToken {
  int32_t id = -1;
  float logprob = 0;  // of id under log_softmax(raw logits)
  // The `logprobs` most probable tokens of the raw distribution, most probable
  // first (lowest id on ties); the sampled token is listed only if among them.
  std::vector<std::pair<int32_t, float>> top_logprobs;
};

class SequenceSampler {
 public:
  // `prompt` feeds the repetition penalty; ids must lie in [0, vocab_size).
  SequenceSampler(const SamplingParams& params, const std::vector<int32_t>& prompt, int32_t vocab_size);

  SampledToken sample(std::span<const float> logits);  // logits: [vocab_size]
  void accept(int32_t id);

  // Sampling on a device: the spec of this sequence's draw from logits row
  // `row`, its penalised tokens appended to `penalties` (the spec's range
  // points into it). Consumes the RNG draw sample() would.
  RowSamplingSpec device_spec(int32_t row, std::vector<PenalizedToken>& penalties);
  // The device's answer to that spec as sample() would give it; throws
  // flint::Error for the bad-logits cases sample() throws on.
  SampledToken device_result(const RowSample& sample) const;
  // Whether sample() needs the whole row on the host (top logprobs).
  bool needs_host_row() const { return params_.logprobs > 0; }

  // The logits sample() would draw from, for tests and debugging: penalised
  // and divided by the temperature, with the tokens that top-k, top-p and
  // min-p remove set to -inf. Greedy samplers return the penalised logits.
  std::vector<float> processed_logits(std::span<const float> logits) const;

  uint64_t seed() const { return seed_; }
  int32_t vocab_size() const { return vocab_size_; }

 private:
  struct Candidate {
    int32_t id;
    float logit;   // processed
    float weight;  // exp(logit - largest processed logit), in [0, 1]
  };

  float check_logits(std::span<const float> logits) const;  // returns the largest logit
  bool penalties_active() const;
  void apply_penalties(std::vector<float>& logits) const;
  bool greedy() const;
  // Fills `out` with the tokens that survive top-k/top-p/min-p, either in id
  // order or most probable first. `raw_weights` (exp(raw logit - raw max)) are
  // reused as the weights when processing left the logits unchanged.
  void candidates(const std::vector<float>& penalised, std::span<const float> raw_weights,
                  std::vector<Candidate>& out) const;
  int32_t draw(const std::vector<Candidate>& candidates);
  double uniform();  // [0, 1), 53 random bits

  SamplingParams params_;
  int32_t vocab_size_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::unordered_set<int32_t> seen_;                // prompt + generated; only if repetition_penalty != 1
  std::unordered_map<int32_t, int32_t> generated_;  // id -> times generated
  // Scratch reused across sample() calls to avoid a vocab-sized allocation per token.
  std::vector<float> penalised_;
  std::vector<float> raw_weights_;
  std::vector<Candidate> candidates_;
  std::vector<int32_t> order_;
};

}  // namespace flint
