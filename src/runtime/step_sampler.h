// runtime/step_sampler.h — the next token of every sampling sequence of a
// step, drawn where the logits are.
//
// Contract:
// - One outcome per task, in order: the token, or the error sample() threw
//   for that sequence (bad logits fail that sequence only).
// - Logits on a backend that samples on its device (samples_on_device(), the
//   logits on backend.device()): one sample_rows() call for every task that
//   does not need the whole row (top logprobs), so only ids and logprobs
//   cross; rows that do need it are copied alone. Otherwise the logits are
//   copied to the host once and each task's SequenceSampler::sample() runs on
//   its row.
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

// sample_step() in two halves (Backend::sample_rows_async), so that the next
// step can be queued before this one's tokens reach the host: possible when
// the logits are on a device that samples there and no task needs its whole
// row. The draw of task i is spec i, which the next batch's
// token_from_sample names; collect_sample_step() waits for the outcomes, with
// the same tasks.
bool can_sample_async(const Backend& backend, const Tensor& logits, std::span<const SampleTask> tasks);
void sample_step_async(Backend& backend, const Tensor& logits, std::span<const SampleTask> tasks);
std::vector<SampleOutcome> collect_sample_step(Backend& backend, std::span<const SampleTask> tasks);

}  // namespace flint
