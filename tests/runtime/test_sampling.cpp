#include "runtime/sampling.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"

namespace flint {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams seeded(uint64_t seed = 7) {
  SamplingParams p;
  p.seed = seed;
  return p;
}

SamplingParams greedy_params() {
  SamplingParams p;
  p.temperature = 0;
  return p;
}

// softmax in double, the reference the statistical tests compare against.
std::vector<double> softmax(const std::vector<float>& logits, double temperature = 1) {
  double max = -kInf;
  for (float x : logits) max = std::max(max, x / temperature);
  std::vector<double> p;
  double sum = 0;
  for (float x : logits) sum += p.emplace_back(std::exp(x / temperature - max));
  for (double& x : p) x /= sum;
  return p;
}

std::vector<double> frequencies(SequenceSampler& s, const std::vector<float>& logits, int draws) {
  std::vector<double> f(logits.size(), 0);
  for (int i = 0; i < draws; ++i) f[static_cast<size_t>(s.sample(logits).id)] += 1.0 / draws;
  return f;
}

// Each frequency of `draws` independent draws has standard deviation
// sqrt(p(1-p)/draws); 5 of those make a false failure practically impossible
// (and the seed is fixed anyway) while still catching a wrong distribution.
void expect_distribution(const std::vector<double>& got, const std::vector<double>& want, int draws) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const double sigma = std::sqrt(want[i] * (1 - want[i]) / draws);
    EXPECT_NEAR(got[i], want[i], 5 * sigma + 1e-12) << "token " << i;
  }
}

std::vector<int32_t> kept(const std::vector<float>& processed) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < processed.size(); ++i)
    if (processed[i] != -kInf) ids.push_back(static_cast<int32_t>(i));
  return ids;
}

std::vector<float> random_logits(size_t n, uint64_t seed, float scale = 3) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(n);
  // Bits -> float by hand: the test data must not depend on the library.
  for (float& x : v) x = scale * (static_cast<float>(rng() >> 40) / static_cast<float>(1 << 24) * 2 - 1);
  return v;
}

// ---------------------------------------------------------------- validate

TEST(SamplingParams, DefaultsAndEdgeValuesAreValid) {
  EXPECT_NO_THROW(SamplingParams{}.validate());
  SamplingParams p;
  p.temperature = 0;
  p.top_p = 0;  // documented: keep only the most probable token
  p.top_k = -1;
  p.min_p = 1;
  p.presence_penalty = -2;
  p.frequency_penalty = 2;
  p.logprobs = 20;
  p.max_tokens = 1;
  p.stop = {"x"};
  p.stop_token_ids = {0};
  EXPECT_NO_THROW(p.validate());
}

TEST(SamplingParams, RejectsEachBadValueNamingTheField) {
  const struct {
    void (*set)(SamplingParams&);
    const char* field;
  } cases[] = {
      {[](SamplingParams& p) { p.max_tokens = 0; }, "max_tokens"},
      {[](SamplingParams& p) { p.max_tokens = -5; }, "max_tokens"},
      {[](SamplingParams& p) { p.temperature = -0.1f; }, "temperature"},
      {[](SamplingParams& p) { p.temperature = std::numeric_limits<float>::quiet_NaN(); }, "temperature"},
      {[](SamplingParams& p) { p.temperature = kInf; }, "temperature"},
      {[](SamplingParams& p) { p.top_k = -2; }, "top_k"},
      {[](SamplingParams& p) { p.top_p = -0.01f; }, "top_p"},
      {[](SamplingParams& p) { p.top_p = 1.01f; }, "top_p"},
      {[](SamplingParams& p) { p.top_p = std::numeric_limits<float>::quiet_NaN(); }, "top_p"},
      {[](SamplingParams& p) { p.min_p = -0.5f; }, "min_p"},
      {[](SamplingParams& p) { p.min_p = 1.5f; }, "min_p"},
      {[](SamplingParams& p) { p.repetition_penalty = 0; }, "repetition_penalty"},
      {[](SamplingParams& p) { p.repetition_penalty = -1; }, "repetition_penalty"},
      {[](SamplingParams& p) { p.repetition_penalty = kInf; }, "repetition_penalty"},
      {[](SamplingParams& p) { p.presence_penalty = 2.5f; }, "presence_penalty"},
      {[](SamplingParams& p) { p.presence_penalty = std::numeric_limits<float>::quiet_NaN(); }, "presence_penalty"},
      {[](SamplingParams& p) { p.frequency_penalty = -2.5f; }, "frequency_penalty"},
      {[](SamplingParams& p) { p.logprobs = -1; }, "logprobs"},
      {[](SamplingParams& p) { p.logprobs = 21; }, "logprobs"},
      {[](SamplingParams& p) { p.stop = {"ok", ""}; }, "stop"},
      {[](SamplingParams& p) { p.stop_token_ids = {3, -1}; }, "stop_token_ids"},
  };
  for (const auto& c : cases) {
    SamplingParams p;
    c.set(p);
    try {
      p.validate();
      ADD_FAILURE() << "accepted a bad " << c.field;
    } catch (const Error& e) {
      EXPECT_EQ(e.context().field, c.field) << e.what();
    }
    // The sampler validates too: a bad request never reaches the logits.
    EXPECT_THROW(SequenceSampler(p, {}, 4), Error) << c.field;
  }
}

TEST(SequenceSampler, RejectsBadConstructionAndAcceptedIds) {
  EXPECT_THROW(SequenceSampler(SamplingParams{}, {}, 0), Error);
  try {
    SequenceSampler(SamplingParams{}, {0, 4}, 4);
    ADD_FAILURE() << "accepted a prompt id outside the vocabulary";
  } catch (const Error& e) {
    EXPECT_EQ(e.context().field, "prompt");
  }
  SequenceSampler s(SamplingParams{}, {}, 4);
  EXPECT_THROW(s.accept(4), Error);
  EXPECT_THROW(s.accept(-1), Error);
}

// ---------------------------------------------------------------- greedy

TEST(SequenceSampler, GreedyPicksTheArgmaxLowestIdOnTies) {
  SequenceSampler s(greedy_params(), {}, 5);
  EXPECT_EQ(s.sample(std::vector<float>{0.1f, 3.0f, -1.0f, 2.9f, 0.0f}).id, 1);
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, 5.0f, 5.0f, -kInf, 5.0f}).id, 1);
  EXPECT_EQ(s.sample(std::vector<float>{-kInf, -kInf, -kInf, -kInf, -3.0f}).id, 4);
}

TEST(SequenceSampler, GreedyUsesNoRandomness) {
  const std::vector<float> logits = random_logits(100, 1);
  const auto argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  for (float t : {0.0f, 1e-6f}) {
    SamplingParams a = greedy_params(), b = greedy_params();
    a.temperature = b.temperature = t;
    a.seed = 1;
    b.seed = 2;
    SequenceSampler sa(a, {}, 100), sb(b, {}, 100);
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(sa.sample(logits).id, argmax);
      EXPECT_EQ(sb.sample(logits).id, argmax);
    }
  }
}

TEST(SequenceSampler, TopKOneIsGreedy) {
  SamplingParams p = seeded();
  p.top_k = 1;
  p.temperature = 5;  // a flat distribution: top-k alone must decide
  SequenceSampler s(p, {}, 300);
  for (uint64_t row = 0; row < 50; ++row) {
    const std::vector<float> logits = random_logits(300, row);
    const auto argmax = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(s.sample(logits).id, argmax) << "row " << row;
  }
}

// ---------------------------------------------------------------- temperature

TEST(SequenceSampler, TemperatureScalesTheLogits) {
  const std::vector<float> logits = {1.0f, 0.0f, -1.0f};
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p = seeded(42);
    p.temperature = t;
    SequenceSampler s(p, {}, 3);
    const std::vector<float> processed = s.processed_logits(logits);
    for (size_t i = 0; i < logits.size(); ++i) EXPECT_FLOAT_EQ(processed[i], logits[i] / t);
    constexpr int kDraws = 20000;
    expect_distribution(frequencies(s, logits, kDraws), softmax(logits, t), kDraws);
  }
}

TEST(SequenceSampler, LowerTemperatureSharpens) {
  const std::vector<float> logits = {1.0f, 0.0f};
  SamplingParams cold = seeded(3), hot = seeded(3);
  cold.temperature = 0.5f;  // p0 = e^2 / (e^2 + 1) ~ 0.881
  hot.temperature = 2.0f;   // p0 = e^0.5 / (e^0.5 + 1) ~ 0.622
  SequenceSampler c(cold, {}, 2), h(hot, {}, 2);
  const double fc = frequencies(c, logits, 20000)[0];
  const double fh = frequencies(h, logits, 20000)[0];
  EXPECT_NEAR(fc, 0.8808, 0.012);  // 5 sigma: sqrt(0.88 * 0.12 / 20000) ~ 0.0023
  EXPECT_NEAR(fh, 0.6225, 0.018);  // 5 sigma: sqrt(0.62 * 0.38 / 20000) ~ 0.0034
}

// ---------------------------------------------------------------- top-k

TEST(SequenceSampler, TopKKeepsTheKMostProbable) {
  SamplingParams p = seeded();
  p.top_k = 2;
  SequenceSampler s(p, {}, 5);
  EXPECT_EQ(kept(s.processed_logits(std::vector<float>{0.5f, 2.0f, 1.0f, 2.0f, -1.0f})),
            (std::vector<int32_t>{1, 3}));
  // A tie at the boundary keeps the lower id.
  EXPECT_EQ(kept(s.processed_logits(std::vector<float>{1.0f, 3.0f, 1.0f, 1.0f, 0.0f})),
            (std::vector<int32_t>{0, 1}));
  constexpr int kDraws = 20000;
  const std::vector<float> logits = {0.0f, 1.0f, 0.5f, -3.0f, 0.2f};
  std::vector<float> top2 = {-kInf, 1.0f, 0.5f, -kInf, -kInf};  // renormalised over the survivors
  expect_distribution(frequencies(s, logits, kDraws), softmax(top2), kDraws);
}

TEST(SequenceSampler, TopKAtOrAboveTheVocabularyIsANoOp) {
  const std::vector<float> logits = random_logits(10, 5);
  for (int32_t k : {10, 11, 1000, 0, -1}) {
    SamplingParams p = seeded();
    p.top_k = k;
    SequenceSampler s(p, {}, 10);
    EXPECT_EQ(s.processed_logits(logits), logits) << "k = " << k;
  }
}

// ---------------------------------------------------------------- top-p

TEST(SequenceSampler, TopPOneKeepsEverything) {
  SamplingParams p = seeded();
  p.top_p = 1;
  SequenceSampler s(p, {}, 4);
  const std::vector<float> logits = {10.0f, 0.0f, -20.0f, -80.0f};  // tiny but non-zero tails
  EXPECT_EQ(s.processed_logits(logits), logits);
}

TEST(SequenceSampler, SmallTopPKeepsOnlyTheTop) {
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f, 2.0f};
  for (float top_p : {0.0f, 1e-6f, 0.1f}) {
    SamplingParams p = seeded();
    p.top_p = top_p;
    SequenceSampler s(p, {}, 4);
    // ids 1 and 3 tie for the top: the lower id is the one kept.
    EXPECT_EQ(kept(s.processed_logits(logits)), (std::vector<int32_t>{1})) << "top_p = " << top_p;
    for (int i = 0; i < 20; ++i) EXPECT_EQ(s.sample(logits).id, 1);
  }
}

TEST(SequenceSampler, TopPBoundaryWhenTheMassIsExactlyP) {
  // Four equal logits: every probability is exactly 0.25 in binary floating
  // point, so the cumulative mass hits 0.5 exactly after two tokens.
  const std::vector<float> logits(4, 0.0f);
  SamplingParams p = seeded();
  p.top_p = 0.5f;
  SequenceSampler exact(p, {}, 4);
  EXPECT_EQ(kept(exact.processed_logits(logits)), (std::vector<int32_t>{0, 1}));
  p.top_p = std::nextafter(0.5f, 1.0f);  // just above: the third token is needed
  SequenceSampler above(p, {}, 4);
  EXPECT_EQ(kept(above.processed_logits(logits)), (std::vector<int32_t>{0, 1, 2}));
  p.top_p = 0.75f;
  SequenceSampler three(p, {}, 4);
  EXPECT_EQ(kept(three.processed_logits(logits)), (std::vector<int32_t>{0, 1, 2}));
}

// The reference: sort everything, keep while the mass before a token is < p.
std::vector<int32_t> naive_top_p(const std::vector<float>& logits, float top_p) {
  const std::vector<double> probs = softmax(logits);
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  std::vector<int32_t> out;
  double mass = 0;
  for (int32_t id : order) {
    if (!out.empty() && mass >= top_p) break;
    out.push_back(id);
    mass += probs[static_cast<size_t>(id)];
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(SequenceSampler, TopPMatchesAFullSortOnLargeVocabularies) {
  // Nuclei from 1 to thousands of tokens exercise the growing partial sort.
  for (float top_p : {0.05f, 0.3f, 0.7f, 0.9f, 0.99f}) {
    for (float scale : {1.0f, 8.0f}) {
      const std::vector<float> logits = random_logits(5000, 11, scale);
      SamplingParams p = seeded();
      p.top_p = top_p;
      SequenceSampler s(p, {}, 5000);
      const std::vector<int32_t> got = kept(s.processed_logits(logits));
      const std::vector<int32_t> want = naive_top_p(logits, top_p);
      // Summation order differs, so a token that sits on the boundary within
      // rounding could go either way; random data does not put one there.
      EXPECT_EQ(got, want) << "top_p " << top_p << " scale " << scale;
    }
  }
}

TEST(SequenceSampler, TopPAppliesToTheTopKRenormalisedDistribution) {
  // After top-k = 2 the survivors have 0.5 each; top_p = 0.5 then keeps one.
  SamplingParams p = seeded();
  p.top_k = 2;
  p.top_p = 0.5f;
  SequenceSampler s(p, {}, 4);
  EXPECT_EQ(kept(s.processed_logits(std::vector<float>{1.0f, 1.0f, 0.9f, 0.9f})), (std::vector<int32_t>{0}));
}

// ---------------------------------------------------------------- min-p

TEST(SequenceSampler, MinPKeepsTokensWithinAFactorOfTheTop) {
  // Relative probabilities 1, e^-1 (0.37), e^-2 (0.14), e^-3 (0.05).
  const std::vector<float> logits = {-2.0f, 0.0f, -3.0f, -1.0f};
  const struct {
    float min_p;
    std::vector<int32_t> kept;
  } cases[] = {
      {0.0f, {0, 1, 2, 3}},
      {0.1f, {0, 1, 3}},
      {0.2f, {1, 3}},
      {0.5f, {1}},
      {1.0f, {1}},
  };
  for (const auto& c : cases) {
    SamplingParams p = seeded();
    p.min_p = c.min_p;
    SequenceSampler s(p, {}, 4);
    EXPECT_EQ(kept(s.processed_logits(logits)), c.kept) << "min_p " << c.min_p;
  }
  SamplingParams p = seeded();
  p.min_p = 1.0f;  // ties with the top survive
  SequenceSampler s(p, {}, 3);
  EXPECT_EQ(kept(s.processed_logits(std::vector<float>{2.0f, 1.0f, 2.0f})), (std::vector<int32_t>{0, 2}));
}

TEST(SequenceSampler, MinPSeesTheTemperatureScaledLogits) {
  // e^-1 = 0.37 survives min_p 0.3 at temperature 1; at temperature 0.5 the
  // ratio becomes e^-2 = 0.14 and the token goes.
  const std::vector<float> logits = {0.0f, -1.0f};
  SamplingParams p = seeded();
  p.min_p = 0.3f;
  SequenceSampler warm(p, {}, 2);
  EXPECT_EQ(kept(warm.processed_logits(logits)).size(), 2u);
  p.temperature = 0.5f;
  SequenceSampler cold(p, {}, 2);
  EXPECT_EQ(kept(cold.processed_logits(logits)), (std::vector<int32_t>{0}));
}

// ---------------------------------------------------------------- penalties

TEST(SequenceSampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  SamplingParams p = seeded();
  p.repetition_penalty = 2.0f;
  SequenceSampler s(p, /*prompt=*/{1, 2, 2}, 5);
  const std::vector<float> logits = {1.0f, 2.0f, -2.0f, 3.0f, 0.0f};
  EXPECT_EQ(s.processed_logits(logits), (std::vector<float>{1.0f, 1.0f, -4.0f, 3.0f, 0.0f}));
  s.accept(3);  // generated tokens count too, once however often they occur
  s.accept(3);
  s.accept(4);
  EXPECT_EQ(s.processed_logits(logits), (std::vector<float>{1.0f, 1.0f, -4.0f, 1.5f, 0.0f}));
}

TEST(SequenceSampler, FrequencyAndPresencePenaltiesCountGeneratedTokensOnly) {
  SamplingParams p = seeded();
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  SequenceSampler s(p, /*prompt=*/{0, 1, 2, 3}, 4);
  const std::vector<float> logits = {1.0f, 2.0f, -2.0f, 3.0f};
  EXPECT_EQ(s.processed_logits(logits), logits);  // the prompt does not count
  s.accept(0);
  s.accept(0);
  s.accept(2);
  // logit - frequency * count - presence
  EXPECT_EQ(s.processed_logits(logits), (std::vector<float>{1.0f - 1.0f - 0.25f, 2.0f, -2.0f - 0.5f - 0.25f, 3.0f}));
}

TEST(SequenceSampler, NegativePenaltiesEncourageRepeats) {
  SamplingParams p = seeded();
  p.frequency_penalty = -1.0f;
  p.presence_penalty = -2.0f;
  SequenceSampler s(p, {}, 3);
  s.accept(2);
  EXPECT_EQ(s.processed_logits(std::vector<float>{0.0f, 0.0f, 0.0f}), (std::vector<float>{0.0f, 0.0f, 3.0f}));
}

TEST(SequenceSampler, PenaltiesComeBeforeTemperatureAndApplyToGreedy) {
  SamplingParams p = seeded();
  p.repetition_penalty = 2.0f;
  p.presence_penalty = 1.0f;
  p.temperature = 0.5f;
  SequenceSampler s(p, {0}, 3);
  s.accept(1);
  // id 0: 4 / 2 = 2; id 1: (2 / 2) - 1 = 0; then / 0.5.
  EXPECT_EQ(s.processed_logits(std::vector<float>{4.0f, 2.0f, 1.0f}), (std::vector<float>{4.0f, 0.0f, 2.0f}));

  SamplingParams g = greedy_params();
  g.repetition_penalty = 4.0f;
  SequenceSampler greedy(g, {0}, 3);
  EXPECT_EQ(greedy.sample(std::vector<float>{4.0f, 2.0f, 1.0f}).id, 1);  // 4 / 4 = 1 < 2
}

// ---------------------------------------------------------------- seeds

TEST(SequenceSampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  const std::vector<float> logits(100, 0.0f);
  auto run = [&](uint64_t seed) {
    SequenceSampler s(seeded(seed), {}, 100);
    std::vector<int32_t> ids;
    for (int i = 0; i < 50; ++i) ids.push_back(s.sample(logits).id);
    return ids;
  };
  EXPECT_EQ(run(1), run(1));
  EXPECT_NE(run(1), run(2));  // 50 uniform draws from 100 tokens: equal by chance with p ~ 1e-100
}

TEST(SequenceSampler, TheDrawIsSpecifiedBitForBit) {
  // Uniform over 8 tokens: the draw is token floor(8 u) with u made from the
  // top 53 bits of mt19937_64, whose output the C++ standard fixes. This pins
  // the mapping from seed to tokens on every platform.
  SequenceSampler s(seeded(1234), {}, 8);
  std::mt19937_64 rng(1234);
  for (int i = 0; i < 100; ++i) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    EXPECT_EQ(s.sample(std::vector<float>(8, 0.0f)).id, static_cast<int32_t>(u * 8));
  }
}

TEST(SequenceSampler, WithoutASeedEachSamplerSeedsItself) {
  SequenceSampler a(SamplingParams{}, {}, 4), b(SamplingParams{}, {}, 4);
  EXPECT_NE(a.seed(), b.seed());  // 64 random bits each
  SamplingParams p = seeded(99);
  EXPECT_EQ(SequenceSampler(p, {}, 4).seed(), 99u);
}

// ---------------------------------------------------------------- bad logits

TEST(SequenceSampler, AllButOneMinusInfinityPicksThatOne) {
  const std::vector<float> logits = {-kInf, -kInf, 0.5f, -kInf};
  for (float t : {0.0f, 1.0f, 100.0f}) {
    SamplingParams p = seeded();
    p.temperature = t;
    p.top_p = 0.5f;
    p.min_p = 0.5f;
    SequenceSampler s(p, {}, 4);
    for (int i = 0; i < 10; ++i) {
      const SampledToken tok = s.sample(logits);
      EXPECT_EQ(tok.id, 2);
      EXPECT_FLOAT_EQ(tok.logprob, 0.0f);
    }
  }
}

TEST(SequenceSampler, BadLogitsAreErrors) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (float t : {0.0f, 1.0f}) {
    SamplingParams p = seeded();
    p.temperature = t;
    SequenceSampler s(p, {}, 3);
    try {
      s.sample(std::vector<float>{0.0f, nan, 1.0f});
      ADD_FAILURE() << "accepted NaN";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("logits contain NaN"), std::string::npos) << e.what();
    }
    EXPECT_THROW(s.sample(std::vector<float>{0.0f, kInf, 1.0f}), Error);
    EXPECT_THROW(s.sample(std::vector<float>(3, -kInf)), Error);
    EXPECT_THROW(s.sample(std::vector<float>(4, 0.0f)), Error);  // wrong size
    EXPECT_THROW(s.processed_logits(std::vector<float>{nan, 0.0f, 0.0f}), Error);
  }
}

// ---------------------------------------------------------------- logprobs

TEST(SequenceSampler, LogprobsAreOfTheRawDistribution) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, -kInf};
  const std::vector<double> probs = softmax(logits);
  SamplingParams p = seeded();
  p.logprobs = 3;
  p.temperature = 0.7f;
  p.top_k = 4;
  p.repetition_penalty = 1.5f;
  p.presence_penalty = 0.5f;
  SequenceSampler s(p, {1}, 6);
  for (int i = 0; i < 50; ++i) {
    const SampledToken tok = s.sample(logits);
    EXPECT_NEAR(tok.logprob, std::log(probs[static_cast<size_t>(tok.id)]), 1e-5);
    ASSERT_EQ(tok.top_logprobs.size(), 3u);
    // Most probable first, lower id first on ties.
    const std::vector<int32_t> ids = {tok.top_logprobs[0].first, tok.top_logprobs[1].first,
                                      tok.top_logprobs[2].first};
    EXPECT_EQ(ids, (std::vector<int32_t>{1, 3, 4}));
    for (const auto& [id, lp] : tok.top_logprobs) EXPECT_NEAR(lp, std::log(probs[static_cast<size_t>(id)]), 1e-5);
    s.accept(tok.id);
  }
}

TEST(SequenceSampler, LogprobsCountIsCappedByTheVocabulary) {
  SamplingParams p = greedy_params();
  p.logprobs = 20;
  SequenceSampler s(p, {}, 3);
  const SampledToken tok = s.sample(std::vector<float>{0.0f, 1.0f, -kInf});
  ASSERT_EQ(tok.top_logprobs.size(), 3u);
  EXPECT_EQ(tok.top_logprobs[2].first, 2);
  EXPECT_EQ(tok.top_logprobs[2].second, -kInf);

  SequenceSampler none(greedy_params(), {}, 3);
  EXPECT_TRUE(none.sample(std::vector<float>{0.0f, 1.0f, 2.0f}).top_logprobs.empty());
}

TEST(SequenceSampler, LargeVocabularyWithAllFilters) {
  // Llama 3's vocabulary; the draw must come from the top-k set.
  constexpr int32_t kVocab = 128256;
  const std::vector<float> logits = random_logits(kVocab, 17, 10);
  SamplingParams p = seeded();
  p.top_k = 50;
  p.top_p = 0.9f;
  p.min_p = 0.05f;
  p.logprobs = 5;
  SequenceSampler s(p, {1, 2, 3}, kVocab);
  std::vector<float> sorted = logits;
  std::nth_element(sorted.begin(), sorted.begin() + 49, sorted.end(), std::greater<>());
  const float kth = sorted[49];
  for (int i = 0; i < 20; ++i) {
    const SampledToken tok = s.sample(logits);
    EXPECT_GE(logits[static_cast<size_t>(tok.id)], kth);
    EXPECT_EQ(tok.top_logprobs.size(), 5u);
    s.accept(tok.id);
  }
}

}  // namespace
}  // namespace flint
