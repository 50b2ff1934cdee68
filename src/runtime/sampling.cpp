#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace flint {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr int32_t kMaxLogprobs = 20;

// A strict total order (logit, then id) so that nth_element/sort give the same
// result with every standard library: reproducibility across platforms.
constexpr auto more_probable = [](const auto& a, const auto& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
};

// Unnormalised probability relative to the largest logit, in (0, 1].
float weight(float logit, float max_logit) { return std::exp(logit - max_logit); }

uint64_t random_seed() {
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ static_cast<uint64_t>(device());
}

}  // namespace

void SamplingParams::validate() const {
  auto field = [](const char* name) { return ErrorContext{.field = name}; };
  FLINT_CHECK(max_tokens >= 1, field("max_tokens"), "must be at least 1, got {}", max_tokens);
  FLINT_CHECK(std::isfinite(temperature) && temperature >= 0, field("temperature"),
              "must be a finite number >= 0 (0 = greedy), got {}", temperature);
  FLINT_CHECK(top_k >= -1, field("top_k"), "must be a positive count, or 0 or -1 to disable, got {}", top_k);
  // Written so that NaN fails every range check.
  FLINT_CHECK(top_p >= 0 && top_p <= 1, field("top_p"), "must be in [0, 1], got {}", top_p);
  FLINT_CHECK(min_p >= 0 && min_p <= 1, field("min_p"), "must be in [0, 1], got {}", min_p);
  FLINT_CHECK(std::isfinite(repetition_penalty) && repetition_penalty > 0, field("repetition_penalty"),
              "must be a finite number > 0 (1 = off), got {}", repetition_penalty);
  FLINT_CHECK(presence_penalty >= -2 && presence_penalty <= 2, field("presence_penalty"),
              "must be in [-2, 2], got {}", presence_penalty);
  FLINT_CHECK(frequency_penalty >= -2 && frequency_penalty <= 2, field("frequency_penalty"),
              "must be in [-2, 2], got {}", frequency_penalty);
  FLINT_CHECK(logprobs >= 0 && logprobs <= kMaxLogprobs, field("logprobs"), "must be in [0, {}], got {}",
              kMaxLogprobs, logprobs);
  for (size_t i = 0; i < stop.size(); ++i)
    FLINT_CHECK(!stop[i].empty(), field("stop"), "stop string {} is empty", i);
  for (int32_t id : stop_token_ids)
    FLINT_CHECK(id >= 0, field("stop_token_ids"), "token ids are >= 0, got {}", id);
}

SequenceSampler::SequenceSampler(const SamplingParams& params, const std::vector<int32_t>& prompt,
                                 int32_t vocab_size)
    : params_(params), vocab_size_(vocab_size) {
  params_.validate();
  FLINT_CHECK(vocab_size > 0, ErrorContext{.field = "vocab_size"}, "must be positive, got {}", vocab_size);
  for (int32_t id : prompt)
    FLINT_CHECK(id >= 0 && id < vocab_size, ErrorContext{.field = "prompt"}, "token id {} outside [0, {})", id,
                vocab_size);
  if (params_.repetition_penalty != 1.0f) seen_.insert(prompt.begin(), prompt.end());
  seed_ = params_.seed ? *params_.seed : random_seed();
  rng_.seed(seed_);
}

float SequenceSampler::check_logits(std::span<const float> logits) const {
  FLINT_CHECK(logits.size() == static_cast<size_t>(vocab_size_), "expected {} logits (the vocabulary), got {}",
              vocab_size_, logits.size());
  float max = kNegInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float x = logits[i];
    // NaN and +inf make softmax undefined; they mean the forward pass broke.
    FLINT_CHECK(!std::isnan(x), "logits contain NaN (token id {})", i);
    FLINT_CHECK(x != std::numeric_limits<float>::infinity(), "logits contain +inf (token id {})", i);
    max = std::max(max, x);
  }
  FLINT_CHECK(max != kNegInf, "every logit is -inf: no token can be sampled");
  return max;
}

bool SequenceSampler::penalties_active() const {
  return params_.repetition_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
         params_.presence_penalty != 0.0f;
}

void SequenceSampler::apply_penalties(std::vector<float>& logits) const {
  // HF/vLLM repetition penalty: shrink the magnitude of positive logits, grow
  // that of negative ones, so a seen token always becomes less likely.
  const float rep = params_.repetition_penalty;
  if (rep != 1.0f) {
    for (int32_t id : seen_) {
      float& x = logits[static_cast<size_t>(id)];
      x = x > 0 ? x / rep : x * rep;
    }
  }
  // OpenAI/vLLM: subtracted per generated token; the prompt does not count.
  const float freq = params_.frequency_penalty;
  const float presence = params_.presence_penalty;
  if (freq != 0.0f || presence != 0.0f) {
    for (const auto& [id, count] : generated_) {
      float& x = logits[static_cast<size_t>(id)];
      x -= freq * static_cast<float>(count);
      x -= presence;
    }
  }
}

bool SequenceSampler::greedy() const { return params_.temperature < kGreedyTemperature; }

void SequenceSampler::candidates(const std::vector<float>& penalised, std::span<const float> raw_weights,
                                 std::vector<Candidate>& out) const {
  out.clear();
  const float t = params_.temperature;
  const size_t k = params_.top_k > 0 ? static_cast<size_t>(params_.top_k) : penalised.size();
  // `out` is either most probable first (`sorted`) or in id order; both are
  // library-independent, which keeps the draw reproducible.
  bool sorted = false;
  if (k < penalised.size()) {
    // One pass with a k-heap whose front is the least probable survivor: most
    // tokens lose one comparison against it, so this is ~O(V), with no
    // vocab-sized candidate list.
    for (size_t i = 0; i < penalised.size(); ++i) {
      const Candidate c{static_cast<int32_t>(i), penalised[i] / t, 0};
      if (c.logit == kNegInf) continue;
      if (out.size() < k) {
        out.push_back(c);
        std::push_heap(out.begin(), out.end(), more_probable);
      } else if (more_probable(c, out.front())) {
        std::pop_heap(out.begin(), out.end(), more_probable);
        out.back() = c;
        std::push_heap(out.begin(), out.end(), more_probable);
      }
    }
    std::sort(out.begin(), out.end(), more_probable);
    sorted = true;
  } else {
    out.reserve(penalised.size());
    for (size_t i = 0; i < penalised.size(); ++i) {
      const float x = penalised[i] / t;
      if (x != kNegInf) out.push_back({static_cast<int32_t>(i), x, 0});
    }
  }
  FLINT_CHECK(!out.empty(), "every logit is -inf after penalties and temperature: no token can be sampled");

  // Every later step keeps the most probable token, so weights relative to
  // the current maximum stay valid to the end.
  if (t == 1.0f && !penalties_active() && !raw_weights.empty()) {
    for (Candidate& c : out) c.weight = raw_weights[static_cast<size_t>(c.id)];
  } else {
    float max = kNegInf;
    for (const Candidate& c : out) max = std::max(max, c.logit);
    for (Candidate& c : out) c.weight = weight(c.logit, max);
  }

  if (params_.top_p < 1.0f) {
    double total = 0;
    for (const Candidate& c : out) total += c.weight;
    const double target = static_cast<double>(params_.top_p) * total;
    // The nucleus is usually a small head of the vocabulary: sort a growing
    // head (64, 128, ...) instead of the whole row, falling back to a full sort
    // only for flat distributions.
    size_t sorted_end = sorted ? out.size() : 0;
    size_t keep = out.size();
    double mass = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      if (i == sorted_end) {
        const size_t grow = std::min(out.size(), std::max<size_t>(64, 2 * sorted_end));
        const auto first = out.begin() + static_cast<std::ptrdiff_t>(sorted_end);
        const auto last = out.begin() + static_cast<std::ptrdiff_t>(grow);
        if (last != out.end()) std::nth_element(first, last, out.end(), more_probable);
        std::sort(first, last, more_probable);
        sorted_end = grow;
      }
      // vLLM/HF drop a token when the tokens before it already hold top_p of
      // the mass; the first token is always kept.
      if (i > 0 && mass >= target) {
        keep = i;
        break;
      }
      mass += out[i].weight;
    }
    out.resize(keep);
  }

  if (params_.min_p > 0.0f) {
    // p / p_max == weight: no normalisation needed. remove_if keeps the
    // survivors' order.
    const float min_p = params_.min_p;
    out.erase(std::remove_if(out.begin(), out.end(), [&](const Candidate& c) { return c.weight < min_p; }),
              out.end());
  }
}

int32_t SequenceSampler::draw(const std::vector<Candidate>& candidates) {
  double total = 0;
  for (const Candidate& c : candidates) total += c.weight;
  const double u = uniform() * total;
  double mass = 0;
  int32_t last_positive = candidates.front().id;
  for (const Candidate& c : candidates) {
    if (c.weight <= 0) continue;  // underflowed: never drawn
    mass += c.weight;
    last_positive = c.id;
    if (mass > u) return c.id;
  }
  return last_positive;  // u rounded up to total
}

double SequenceSampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

SampledToken SequenceSampler::sample(std::span<const float> logits) {
  const float raw_max = check_logits(logits);
  // One exp() per token of the row: the normaliser of the raw logprobs, and
  // the draw's weights when nothing changes the logits.
  raw_weights_.resize(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += raw_weights_[i] = weight(logits[i], raw_max);
  penalised_.assign(logits.begin(), logits.end());
  apply_penalties(penalised_);

  SampledToken out;
  if (greedy()) {
    size_t best = 0;
    for (size_t i = 1; i < penalised_.size(); ++i)
      if (penalised_[i] > penalised_[best]) best = i;  // strict: lowest id wins ties
    out.id = static_cast<int32_t>(best);
  } else {
    candidates(penalised_, raw_weights_, candidates_);
    // The draw walks ids upwards, as the device samplers do.
    auto by_id = [](const Candidate& a, const Candidate& b) { return a.id < b.id; };
    if (!std::is_sorted(candidates_.begin(), candidates_.end(), by_id))
      std::sort(candidates_.begin(), candidates_.end(), by_id);
    out.id = draw(candidates_);
  }

  const double log_z = static_cast<double>(raw_max) + std::log(sum);
  auto logprob = [&](int32_t id) {
    return static_cast<float>(static_cast<double>(logits[static_cast<size_t>(id)]) - log_z);
  };
  out.logprob = logprob(out.id);

  if (params_.logprobs > 0) {
    const size_t n = std::min(static_cast<size_t>(params_.logprobs), logits.size());
    order_.resize(logits.size());
    std::iota(order_.begin(), order_.end(), 0);
    auto by_logit = [&](int32_t a, int32_t b) {
      const float la = logits[static_cast<size_t>(a)];
      const float lb = logits[static_cast<size_t>(b)];
      return la > lb || (la == lb && a < b);
    };
    const auto nth = order_.begin() + static_cast<std::ptrdiff_t>(n);
    if (nth != order_.end()) std::nth_element(order_.begin(), nth, order_.end(), by_logit);
    std::sort(order_.begin(), nth, by_logit);
    out.top_logprobs.reserve(n);
    for (auto it = order_.begin(); it != nth; ++it) out.top_logprobs.emplace_back(*it, logprob(*it));
  }
  return out;
}

void SequenceSampler::accept(int32_t id) {
  FLINT_CHECK(id >= 0 && id < vocab_size_, "accepted token id {} outside [0, {})", id, vocab_size_);
  ++generated_[id];
  if (params_.repetition_penalty != 1.0f) seen_.insert(id);
}

RowSamplingSpec SequenceSampler::device_spec(int32_t row, std::vector<PenalizedToken>& penalties) {
  RowSamplingSpec spec;
  spec.row = row;
  spec.temperature = params_.temperature;
  spec.top_k = params_.top_k;
  spec.top_p = params_.top_p;
  spec.min_p = params_.min_p;
  spec.repetition_penalty = params_.repetition_penalty;
  spec.presence_penalty = params_.presence_penalty;
  spec.frequency_penalty = params_.frequency_penalty;
  spec.uniform = greedy() ? 0.0 : uniform();
  spec.penalties_begin = static_cast<int32_t>(penalties.size());
  if (penalties_active()) {
    const size_t first = penalties.size();
    // seen_ is filled only when the repetition penalty is on.
    for (int32_t id : seen_) {
      const auto it = generated_.find(id);
      penalties.push_back({id, it == generated_.end() ? 0 : it->second, 1});
    }
    for (const auto& [id, count] : generated_)
      if (!seen_.contains(id)) penalties.push_back({id, count, 0});
    std::sort(penalties.begin() + static_cast<std::ptrdiff_t>(first), penalties.end(),
              [](const PenalizedToken& a, const PenalizedToken& b) { return a.id < b.id; });
  }
  spec.penalties_count = static_cast<int32_t>(penalties.size()) - spec.penalties_begin;
  return spec;
}

SampledToken SequenceSampler::device_result(const RowSample& r) const {
  switch (r.status) {
    case RowSampleStatus::ok: break;
    case RowSampleStatus::nan_logit: fail("logits contain NaN (token id {})", r.id);
    case RowSampleStatus::inf_logit: fail("logits contain +inf (token id {})", r.id);
    case RowSampleStatus::all_neg_inf: fail("every logit is -inf: no token can be sampled");
    case RowSampleStatus::none_left:
      fail("every logit is -inf after penalties and temperature: no token can be sampled");
  }
  FLINT_CHECK(r.id >= 0 && r.id < vocab_size_, "the device sampled token id {} outside [0, {})", r.id, vocab_size_);
  SampledToken out;
  out.id = r.id;
  out.logprob = r.logprob;
  return out;
}

std::vector<float> SequenceSampler::processed_logits(std::span<const float> logits) const {
  check_logits(logits);
  std::vector<float> penalised(logits.begin(), logits.end());
  apply_penalties(penalised);
  if (greedy()) return penalised;
  std::vector<Candidate> kept;
  candidates(penalised, {}, kept);
  std::vector<float> out(logits.size(), kNegInf);
  for (const Candidate& c : kept) out[static_cast<size_t>(c.id)] = c.logit;
  return out;
}

}  // namespace flint
