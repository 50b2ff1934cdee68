// runtime/step_sampler.h — the next token of every sampling sequence of a
// step, drawn where the logits are.
//
// Contract:
// - One outcome per task, in order: the token, or the error sample() threw
//   for that sequence (bad logits fail that sequence only).
// - Host logits: each task's SequenceSampler::sample() on its row. Device
//   logits on a backend that samples on its device: one sample_rows() call for
//   every task that does not need the whole row (top logprobs), so only ids
//   and logprobs cross; rows that do need it are copied alone. Otherwise the
//   logits are copied to the host once.
// - Tokens are not accepted here: the caller decides what it appends.
// - The logits' sampled rows may be overwritten (device penalties).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/backend.h"
#include "runtime/sampling.h"

namespace flint {

struct SampleTask {
  SequenceSampler* sampler = nullptr;
  int64_t row = 0;  // in the logits
};

struct SampleOutcome {
  SampledToken token;
  std::string error;  // non-empty: sampling failed, `token` is meaningless
};

// logits: f32 [R, V] on the host or on `backend`'s device.
std::vector<SampleOutcome> sample_step(Backend& backend, const Tensor& logits, std::span<const SampleTask> tasks);

}  // namespace flint
