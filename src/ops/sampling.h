// ops/sampling.h — drawing tokens from logits rows where the logits live, so
// that only ids and logprobs leave the device (Backend::sample_rows).
//
// Contract (the semantics of runtime/sampling.h's SequenceSampler, which fills
// these specs and is the reference the device samplers are tested against):
// - For each spec, on logits row `row` (f32 [R, V]):
//   1. a NaN or +inf logit, or a row of -inf only, gives a status, no token;
//   2. log_z = logsumexp(raw row); logprob = raw[id] - log_z;
//   3. penalties on the listed tokens, in vLLM's order: repetition (x > 0 ?
//      x / r : x * r) for `seen` tokens, then x -= frequency * generated +
//      presence for tokens with generated > 0;
//   4. temperature < kGreedyTemperature: the argmax, lowest id on ties;
//   5. otherwise v = x / temperature, and the candidates are the finite v: top-k
//      keeps the k largest (by v, then lowest id); weights w = exp(v - max v);
//      top-p keeps, in that order, every token whose predecessors hold less
//      than top_p of the candidates' mass (so at least one); min-p keeps
//      w >= min_p; the draw walks the survivors in id order and takes the first
//      whose cumulative weight exceeds uniform * (their total).
// - The listed penalties are sorted by id, unique, ids in [0, V), and hold only
//   tokens with seen or generated > 0. A backend may modify the logits rows it
//   samples from (they are the step's scratch); other rows are left alone.
#pragma once

#include <cstdint>

namespace flint {

// vLLM's _SAMPLING_EPS: dividing by a smaller temperature only risks overflow
// for a distribution that is greedy in all but name.
inline constexpr float kGreedyTemperature = 1e-5f;

struct PenalizedToken {
  int32_t id = 0;
  int32_t generated = 0;  // times generated so far (frequency/presence penalties)
  int32_t seen = 0;       // 1: in prompt or output (repetition penalty)
};

struct RowSamplingSpec {
  int32_t row = 0;  // logits row
  float temperature = 1.0f;
  int32_t top_k = 0;  // <= 0 or >= V: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  double uniform = 0;            // in [0, 1): the draw (unused when greedy)
  int32_t penalties_begin = 0;   // this row's tokens in the penalty list
  int32_t penalties_count = 0;
};

enum class RowSampleStatus : int32_t {
  ok = 0,
  nan_logit = 1,      // `id` holds a token id with a NaN logit
  inf_logit = 2,      // `id` holds a token id with a +inf logit
  all_neg_inf = 3,    // every raw logit is -inf
  none_left = 4,      // every logit is -inf after penalties and temperature
};

struct RowSample {
  int32_t id = -1;
  float logprob = 0;
  RowSampleStatus status = RowSampleStatus::ok;
};

}  // namespace flint
