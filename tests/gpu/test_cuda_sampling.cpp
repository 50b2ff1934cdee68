// Sampling on the GPU (Backend::sample_rows) against the host's
// SequenceSampler, the reference: for the same seed and logits, every
// configuration must give the same token. The draws differ only if a token's
// cumulative weight lies within rounding (~1e-13 relative) of the uniform,
// which random logits never produce; logprobs agree to 1e-4 (an f32 logsumexp
// over 128k terms summed in another order: ~1e-6).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "core/error.h"
#include "gpu/gpu_test_util.h"
#include "runtime/sampling.h"
#include "runtime/step_sampler.h"

namespace flint {
namespace {

using testing::Random;

constexpr float kLogprobTol = 1e-4f;
constexpr float kInf = std::numeric_limits<float>::infinity();

// Host logits [rows, vocab]: bell-shaped values of spread `scale`.
Tensor random_logits(Random& rng, int64_t rows, int64_t vocab, float scale) {
  Tensor t = Tensor::empty(DType::f32, {rows, vocab});
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float a = rng.uniform(-1, 1), b = rng.uniform(-1, 1), c = rng.uniform(-1, 1);
    t.data<float>()[i] = scale * (a + b + c);
  }
  return t;
}

std::span<const float> row_of(const Tensor& t, int64_t r) {
  const auto v = static_cast<size_t>(t.size(1));
  return {t.data<float>() + static_cast<size_t>(r) * v, v};
}

class CudaSampling : public ::testing::Test {
 protected:
  void SetUp() override {
    FLINT_REQUIRE_GPU();
    gpu = make_cuda_backend();
    seed = testing::fresh_seed();
  }

  std::vector<RowSample> on_gpu(const Tensor& host, const std::vector<RowSamplingSpec>& specs,
                                const std::vector<PenalizedToken>& penalties = {}) {
    return gpu->sample_rows(gpu->from_host(host), specs, penalties);
  }

  std::unique_ptr<Backend> gpu;
  uint64_t seed = 0;
};

struct Config {
  std::string name;
  SamplingParams params;
};

std::vector<Config> configs() {
  auto p = [](float t, int32_t k, float top_p, float min_p) {
    SamplingParams s;
    s.temperature = t;
    s.top_k = k;
    s.top_p = top_p;
    s.min_p = min_p;
    return s;
  };
  std::vector<Config> out = {
      {"greedy", p(0, 0, 1, 0)},
      {"plain", p(1, 0, 1, 0)},
      {"hot", p(2.5f, 0, 1, 0)},
      {"cold", p(0.3f, 0, 1, 0)},
      {"top_k_1", p(1, 1, 1, 0)},
      {"top_k_50", p(0.8f, 50, 1, 0)},
      {"top_k_past_vocab", p(1, 1 << 30, 1, 0)},
      {"top_p_0", p(1, 0, 0, 0)},
      {"top_p_0.5", p(1, 0, 0.5f, 0)},
      {"top_p_0.95", p(1.2f, 0, 0.95f, 0)},
      {"min_p_0.1", p(1, 0, 1, 0.1f)},
      {"all_filters", p(0.9f, 40, 0.9f, 0.05f)},
  };
  SamplingParams pen = p(1, 0, 0.9f, 0);
  pen.repetition_penalty = 1.3f;
  pen.frequency_penalty = 0.7f;
  pen.presence_penalty = 0.4f;
  out.push_back({"penalties", pen});
  SamplingParams greedy_pen = p(0, 0, 1, 0);
  greedy_pen.repetition_penalty = 2.0f;
  greedy_pen.presence_penalty = -1.5f;
  out.push_back({"greedy_penalties", greedy_pen});
  SamplingParams freq_only = p(0.7f, 20, 1, 0);
  freq_only.frequency_penalty = 2.0f;
  out.push_back({"frequency_only", freq_only});
  return out;
}

// Every configuration as one row of a batch, for many steps, each sequence
// fed back the token both samplers agreed on; penalties grow as tokens repeat.
void expect_same_tokens_as_host(Backend& gpu, uint64_t seed, int64_t vocab, float scale,
                                int steps) {
  SCOPED_TRACE("seed " + std::to_string(seed) + ", vocab " + std::to_string(vocab));
  Random rng(seed);
  const std::vector<Config> cs = configs();
  std::vector<std::unique_ptr<SequenceSampler>> host, device;
  for (size_t i = 0; i < cs.size(); ++i) {
    SamplingParams params = cs[i].params;
    params.seed = seed + i;
    std::vector<int32_t> prompt;
    for (int j = 0; j < 12; ++j) prompt.push_back(rng.integer(0, static_cast<int32_t>(vocab) - 1));
    host.push_back(std::make_unique<SequenceSampler>(params, prompt, static_cast<int32_t>(vocab)));
    device.push_back(std::make_unique<SequenceSampler>(params, prompt, static_cast<int32_t>(vocab)));
  }
  for (int step = 0; step < steps; ++step) {
    const Tensor logits = random_logits(rng, static_cast<int64_t>(cs.size()), vocab, scale);
    std::vector<RowSamplingSpec> specs;
    std::vector<PenalizedToken> penalties;
    // Rows in reverse order: a spec names its row.
    for (size_t i = cs.size(); i-- > 0;) specs.push_back(device[i]->device_spec(static_cast<int32_t>(i), penalties));
    const std::vector<RowSample> got = gpu.sample_rows(gpu.from_host(logits), specs, penalties);
    ASSERT_EQ(got.size(), cs.size());
    for (size_t s = 0; s < specs.size(); ++s) {
      const auto i = static_cast<size_t>(specs[s].row);
      const SampledToken want = host[i]->sample(row_of(logits, static_cast<int64_t>(i)));
      const SampledToken have = device[i]->device_result(got[s]);
      ASSERT_EQ(have.id, want.id) << cs[i].name << " at step " << step;
      EXPECT_NEAR(have.logprob, want.logprob, kLogprobTol) << cs[i].name << " at step " << step;
      host[i]->accept(want.id);
      device[i]->accept(want.id);
    }
  }
}

RowSamplingSpec spec_for(float temperature, int32_t top_k, float top_p, float min_p, double uniform, int32_t row = 0) {
  RowSamplingSpec s;
  s.row = row;
  s.temperature = temperature;
  s.top_k = top_k;
  s.top_p = top_p;
  s.min_p = min_p;
  s.uniform = uniform;
  return s;
}

TEST_F(CudaSampling, SameTokensAsTheHostOnLlama3SizedRows) {
  expect_same_tokens_as_host(*gpu, seed, 128256, 3.0f, 24);
}

TEST_F(CudaSampling, SameTokensAsTheHostOnSmallAndOddVocabularies) {
  for (int64_t vocab : {2, 7, 1000, 1031, 32000})
    expect_same_tokens_as_host(*gpu, seed + static_cast<uint64_t>(vocab), vocab, 2.0f, 24);
}

TEST_F(CudaSampling, SameTokensAsTheHostOnPeakedRows) {
  // A spread of 12 puts nearly all mass on a few tokens, most weights far below 2^-46.
  expect_same_tokens_as_host(*gpu, seed, 32000, 12.0f, 24);
}

// The first pass splits each row into slices read by separate CTAs (64 in
// cuda_sampling_kernels.cu; whole float4s when vocab % 4 == 0 and the rows are
// 16-byte aligned, ids one by one otherwise) and merges their results. The
// cases below put what the merge must get right (ties, NaN/+inf, -inf runs) at
// every id of small rows, so they hold for any slicing, and at that slicing's
// edges in 128k rows.
constexpr int kSlices = 64;

// Every id of a (small) vocabulary.
std::vector<int32_t> every_id(int32_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(vocab));
  std::iota(ids.begin(), ids.end(), 0);
  return ids;
}

// The ids just before the edges between the 64 slices of a `vocab` row.
std::vector<int32_t> last_ids_of_slices(int32_t vocab) {
  int32_t size = (vocab + kSlices - 1) / kSlices;
  if (vocab % 4 == 0) size = (size + 3) / 4 * 4;
  std::vector<int32_t> out;
  for (int32_t end = size; end < vocab; end += size) out.push_back(end - 1);
  return out;
}

SamplingParams params_of(float temperature, int32_t top_k = 0, float top_p = 1.0f) {
  SamplingParams s;
  s.temperature = temperature;
  s.top_k = top_k;
  s.top_p = top_p;
  return s;
}

// Greedy, plain and filtered draws: what each row's log-normaliser and argmax feed.
std::vector<SamplingParams> edge_params() { return {params_of(0), params_of(1), params_of(0.8f, 40, 0.9f)}; }

// Every row of `logits` drawn with `params` on the GPU, all rows in one call,
// and on the host (a sampler per row, seed + row): the same token, logprobs
// within kLogprobTol. Returns the GPU's answers.
std::vector<RowSample> expect_rows_like_host(Backend& gpu, const Tensor& logits, SamplingParams params, uint64_t seed,
                                             const std::string& what) {
  const auto rows = static_cast<int32_t>(logits.size(0));
  const auto vocab = static_cast<int32_t>(logits.size(1));
  std::vector<std::unique_ptr<SequenceSampler>> host, device;
  std::vector<RowSamplingSpec> specs;
  std::vector<PenalizedToken> penalties;
  for (int32_t r = 0; r < rows; ++r) {
    params.seed = seed + static_cast<uint64_t>(r);
    host.push_back(std::make_unique<SequenceSampler>(params, std::vector<int32_t>{}, vocab));
    device.push_back(std::make_unique<SequenceSampler>(params, std::vector<int32_t>{}, vocab));
    specs.push_back(device.back()->device_spec(r, penalties));
  }
  const std::vector<RowSample> got = gpu.sample_rows(gpu.from_host(logits), specs, penalties);
  EXPECT_EQ(got.size(), specs.size());
  for (int32_t r = 0; r < rows && static_cast<size_t>(r) < got.size(); ++r) {
    const std::string where = what + ", vocab " + std::to_string(vocab) + ", temperature " +
                              std::to_string(params.temperature) + ", row " + std::to_string(r);
    const auto i = static_cast<size_t>(r);
    EXPECT_EQ(got[i].status, RowSampleStatus::ok) << where;
    if (got[i].status != RowSampleStatus::ok) continue;
    const SampledToken want = host[i]->sample(row_of(logits, r));
    EXPECT_EQ(got[i].id, want.id) << where;
    EXPECT_NEAR(got[i].logprob, want.logprob, kLogprobTol) << where;
  }
  return got;
}

TEST_F(CudaSampling, SameTokensAsTheHostOnTinyAndUnalignedVocabularies) {
  // Fewer ids than slices, not a multiple of 4 (ids one by one), a multiple of
  // 4 with empty slices at the end, and Llama 3's vocabulary plus 3.
  for (int64_t vocab : {1, 3, 4, 5, 63, 64, 65, 129, 1001, 4100})
    expect_same_tokens_as_host(*gpu, seed + static_cast<uint64_t>(vocab), vocab, 2.0f, 4);
  expect_same_tokens_as_host(*gpu, seed, 128256 + 3, 3.0f, 4);
}

TEST_F(CudaSampling, ArgmaxTiesAcrossSlicesGoToTheLowestId) {
  // Row k: the max at two ids; every pair of neighbours in small rows, the ids
  // either side of each slice edge and the first and last ids in 128k rows.
  auto tied_rows = [&](int32_t vocab, const std::vector<int32_t>& firsts, const std::vector<int32_t>& seconds) {
    Random rng(seed + static_cast<uint64_t>(vocab));
    Tensor logits = random_logits(rng, std::ssize(firsts), vocab, 2.0f);  // values in [-6, 6]
    for (size_t k = 0; k < firsts.size(); ++k) {
      float* row = logits.data<float>() + k * static_cast<size_t>(vocab);
      row[firsts[k]] = 7.5f;
      row[seconds[k]] = 7.5f;
    }
    for (const SamplingParams& p : edge_params()) {
      const std::vector<RowSample> got = expect_rows_like_host(*gpu, logits, p, seed, "ties");
      if (p.temperature != 0) continue;
      for (size_t k = 0; k < got.size(); ++k)
        EXPECT_EQ(got[k].id, firsts[k]) << "vocab " << vocab << ", ids " << firsts[k] << " and " << seconds[k];
    }
  };
  for (int32_t vocab : {1001, 2052}) {
    std::vector<int32_t> firsts, seconds;
    for (int32_t i = 0; i + 1 < vocab; ++i) {
      firsts.push_back(i);
      seconds.push_back(i + 1);
    }
    firsts.push_back(0);
    seconds.push_back(vocab - 1);
    tied_rows(vocab, firsts, seconds);
  }
  for (int32_t vocab : {128256, 128256 + 3}) {
    std::vector<int32_t> firsts = last_ids_of_slices(vocab), seconds;
    for (int32_t i : firsts) seconds.push_back(i + 1);
    firsts.push_back(0);
    seconds.push_back(vocab - 1);
    tied_rows(vocab, firsts, seconds);
  }
}

TEST_F(CudaSampling, TheFirstNanOrInfIsFoundInAnySlice) {
  constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
  // Rows 2k and 2k + 1: NaN, resp. +inf, at ids[k] and at the last id; the
  // first is reported.
  auto check = [&](int32_t vocab, const std::vector<int32_t>& ids) {
    Tensor logits = Tensor::empty(DType::f32, {2 * std::ssize(ids) + 1, vocab});
    for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = 0.25f * static_cast<float>(i % 7);
    std::vector<RowSamplingSpec> specs;
    for (size_t k = 0; k < ids.size(); ++k) {
      for (int32_t bad = 0; bad < 2; ++bad) {
        const auto r = static_cast<int32_t>(2 * k) + bad;
        float* row = logits.data<float>() + static_cast<size_t>(r) * static_cast<size_t>(vocab);
        row[ids[k]] = row[vocab - 1] = bad == 0 ? kNan : kInf;
        specs.push_back(spec_for(1, 0, 1, 0, 0.5, r));
      }
    }
    // The last row: +inf at id 0 and NaN at the last id, in other slices: NaN is reported first.
    const auto last = static_cast<int32_t>(2 * ids.size());
    float* row = logits.data<float>() + static_cast<size_t>(last) * static_cast<size_t>(vocab);
    row[0] = kInf;
    row[vocab - 1] = kNan;
    specs.push_back(spec_for(0, 0, 1, 0, 0.5, last));
    const std::vector<RowSample> got = on_gpu(logits, specs);
    ASSERT_EQ(got.size(), specs.size());
    for (size_t k = 0; k < ids.size(); ++k) {
      EXPECT_EQ(got[2 * k].status, RowSampleStatus::nan_logit) << "vocab " << vocab << ", id " << ids[k];
      EXPECT_EQ(got[2 * k].id, ids[k]) << "vocab " << vocab;
      EXPECT_EQ(got[2 * k + 1].status, RowSampleStatus::inf_logit) << "vocab " << vocab << ", id " << ids[k];
      EXPECT_EQ(got[2 * k + 1].id, ids[k]) << "vocab " << vocab;
    }
    EXPECT_EQ(got.back().status, RowSampleStatus::nan_logit) << "vocab " << vocab;
    EXPECT_EQ(got.back().id, vocab - 1) << "vocab " << vocab;
  };
  for (int32_t vocab : {1, 3, 1001, 2052}) check(vocab, every_id(vocab));
  for (int32_t vocab : {128256, 128256 + 3}) {
    std::vector<int32_t> ids = last_ids_of_slices(vocab);
    const size_t edges = ids.size();
    for (size_t k = 0; k < edges; ++k) ids.push_back(ids[k] + 1);
    ids.push_back(vocab - 1);
    check(vocab, ids);
  }
}

TEST_F(CudaSampling, OneFiniteLogitInAnySliceIsTheToken) {
  // Row k: -inf but for ids[k] (and a row of -inf only at the end); the token
  // is ids[k] with logprob 0 whatever the temperature and filters.
  auto check = [&](int32_t vocab, const std::vector<int32_t>& ids) {
    Tensor logits = Tensor::empty(DType::f32, {std::ssize(ids) + 1, vocab});
    for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = -kInf;
    for (size_t k = 0; k < ids.size(); ++k) logits.data<float>()[k * static_cast<size_t>(vocab) + ids[k]] = -3.25f;
    for (const SamplingParams& p : edge_params()) {
      std::vector<RowSamplingSpec> specs;
      for (int32_t r = 0; r <= std::ssize(ids); ++r)
        specs.push_back(spec_for(p.temperature, p.top_k, p.top_p, 0, 0.7, r));
      const std::vector<RowSample> got = on_gpu(logits, specs);
      ASSERT_EQ(got.size(), specs.size());
      for (size_t k = 0; k < ids.size(); ++k) {
        EXPECT_EQ(got[k].status, RowSampleStatus::ok) << "vocab " << vocab << ", id " << ids[k];
        EXPECT_EQ(got[k].id, ids[k]) << "vocab " << vocab;
        EXPECT_NEAR(got[k].logprob, 0.0f, kLogprobTol) << "vocab " << vocab << ", id " << ids[k];
      }
      EXPECT_EQ(got.back().status, RowSampleStatus::all_neg_inf) << "vocab " << vocab;
    }
  };
  for (int32_t vocab : {1, 3, 1001, 2052}) check(vocab, every_id(vocab));
  for (int32_t vocab : {128256, 128256 + 3}) {
    std::vector<int32_t> ids = last_ids_of_slices(vocab);
    ids.push_back(0);
    ids.push_back(vocab - 1);
    check(vocab, ids);
  }
}

TEST_F(CudaSampling, SlicesOfOnlyNegInfAddNothing) {
  // -inf over the first, a middle and the last quarter of the row (each holds
  // whole slices), and over all but the first and last ids.
  for (int32_t vocab : {1001, 2052, 128256, 128256 + 3}) {
    Random rng(seed + static_cast<uint64_t>(vocab));
    Tensor logits = random_logits(rng, 4, vocab, 3.0f);
    const int32_t q = vocab / 4;
    const std::pair<int32_t, int32_t> runs[] = {{0, q}, {2 * q, 3 * q}, {vocab - q, vocab}, {1, vocab - 1}};
    for (int r = 0; r < 4; ++r)
      for (int32_t i = runs[r].first; i < runs[r].second; ++i)
        logits.data<float>()[static_cast<size_t>(r) * static_cast<size_t>(vocab) + static_cast<size_t>(i)] = -kInf;
    for (const SamplingParams& p : edge_params()) expect_rows_like_host(*gpu, logits, p, seed, "-inf runs");
  }
}

// A grid of uniforms over one row must split exactly by the probabilities:
// the draw is the inverse CDF in id order.
TEST_F(CudaSampling, DrawIsTheInverseCdfInIdOrder) {
  Tensor logits = Tensor::empty(DType::f32, {1, 6});
  const float p[] = {0.1f, 0.2f, 0.3f, 0.4f};
  for (int i = 0; i < 4; ++i) logits.data<float>()[i] = std::log(p[i]);
  logits.data<float>()[4] = -kInf;
  logits.data<float>()[5] = -kInf;
  constexpr int kDraws = 1000;
  std::vector<RowSamplingSpec> specs;
  for (int i = 0; i < kDraws; ++i) specs.push_back(spec_for(1, 0, 1, 0, (i + 0.5) / kDraws));
  std::vector<int> counts(6, 0);
  for (const RowSample& r : on_gpu(logits, specs)) {
    ASSERT_EQ(r.status, RowSampleStatus::ok);
    ASSERT_GE(r.id, 0);
    ASSERT_LT(r.id, 4);
    ++counts[static_cast<size_t>(r.id)];
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(counts[static_cast<size_t>(i)], p[i] * kDraws, 1) << "token " << i;
  // The uniforms are ordered, so the ids must be too.
  const auto got = on_gpu(logits, specs);
  for (size_t i = 1; i < got.size(); ++i) EXPECT_LE(got[i - 1].id, got[i].id);
}

TEST_F(CudaSampling, TiesGoToTheLowestIds) {
  Tensor flat = Tensor::empty(DType::f32, {1, 1000});
  for (int64_t i = 0; i < 1000; ++i) flat.data<float>()[i] = 0.5f;
  // Greedy: id 0. top-k 3 over equal logits: ids 0..2, a third each.
  EXPECT_EQ(on_gpu(flat, {spec_for(0, 0, 1, 0, 0)})[0].id, 0);
  std::vector<RowSamplingSpec> specs;
  for (int i = 0; i < 30; ++i) specs.push_back(spec_for(1, 3, 1, 0, (i + 0.5) / 30));
  std::vector<int> counts(3, 0);
  for (const RowSample& r : on_gpu(flat, specs)) {
    ASSERT_GE(r.id, 0);
    ASSERT_LT(r.id, 3);
    ++counts[static_cast<size_t>(r.id)];
  }
  EXPECT_EQ(counts, (std::vector<int>{10, 10, 10}));
  // top-p 0.5 over four equal tokens: the mass before the third reaches 0.5,
  // so ids 0 and 1 stay, and top_p = 0 keeps id 0 alone.
  Tensor four = Tensor::empty(DType::f32, {1, 8});
  for (int64_t i = 0; i < 8; ++i) four.data<float>()[i] = i < 4 ? 1.0f : -kInf;
  for (double u : {0.1, 0.4, 0.6, 0.99}) {
    const int32_t id = on_gpu(four, {spec_for(1, 0, 0.5f, 0, u)})[0].id;
    EXPECT_EQ(id, u < 0.5 ? 0 : 1) << "u " << u;
    EXPECT_EQ(on_gpu(four, {spec_for(1, 0, 0.0f, 0, u)})[0].id, 0) << "u " << u;
  }
}

TEST_F(CudaSampling, BadRowsGiveAStatusNotAToken) {
  Tensor logits = Tensor::empty(DType::f32, {4, 300});
  for (int64_t i = 0; i < logits.numel(); ++i) logits.data<float>()[i] = 0.25f * static_cast<float>(i % 7);
  logits.data<float>()[0 * 300 + 257] = std::nanf("");
  logits.data<float>()[1 * 300 + 3] = kInf;
  for (int64_t i = 0; i < 300; ++i) logits.data<float>()[2 * 300 + i] = -kInf;
  std::vector<RowSamplingSpec> specs;
  for (int32_t r = 0; r < 4; ++r) specs.push_back(spec_for(1, 0, 1, 0, 0.5, r));
  const auto got = on_gpu(logits, specs);
  EXPECT_EQ(got[0].status, RowSampleStatus::nan_logit);
  EXPECT_EQ(got[0].id, 257);
  EXPECT_EQ(got[1].status, RowSampleStatus::inf_logit);
  EXPECT_EQ(got[1].id, 3);
  EXPECT_EQ(got[2].status, RowSampleStatus::all_neg_inf);
  EXPECT_EQ(got[3].status, RowSampleStatus::ok);
  SequenceSampler s(SamplingParams{}, {}, 300);
  EXPECT_THROW(s.device_result(got[0]), Error);
  EXPECT_THROW(s.device_result(got[2]), Error);
}

TEST_F(CudaSampling, OnlyTheSampledRowsAreTouched) {
  Random rng(seed);
  const Tensor logits = random_logits(rng, 3, 5000, 2.0f);
  const Tensor dev = gpu->from_host(logits);
  std::vector<PenalizedToken> penalties = {{10, 2, 1}, {4000, 0, 1}};
  RowSamplingSpec spec = spec_for(0.8f, 0, 1, 0, 0.3, 1);
  spec.repetition_penalty = 1.5f;
  spec.frequency_penalty = 0.5f;
  spec.penalties_count = 2;
  gpu->sample_rows(dev, {spec}, penalties);
  const Tensor after = gpu->to_host(dev);
  for (int64_t r : {0, 2})
    EXPECT_EQ(std::memcmp(row_of(after, r).data(), row_of(logits, r).data(), 5000 * sizeof(float)), 0) << "row " << r;
}

TEST_F(CudaSampling, BadArgumentsAreErrors) {
  const Tensor logits = gpu->from_host(Tensor::empty(DType::f32, {2, 100}));
  EXPECT_THROW(gpu->sample_rows(logits, {spec_for(1, 0, 1, 0, 0.5, 2)}, {}), Error);        // row
  EXPECT_THROW(gpu->sample_rows(logits, {spec_for(1, 0, 1.5f, 0, 0.5)}, {}), Error);        // top_p
  EXPECT_THROW(gpu->sample_rows(logits, {spec_for(1, 0, 1, 0, 1.0)}, {}), Error);           // uniform
  RowSamplingSpec s = spec_for(1, 0, 1, 0, 0.5);
  s.penalties_count = 2;
  EXPECT_THROW(gpu->sample_rows(logits, {s}, {{5, 1, 0}}), Error);                          // range
  EXPECT_THROW(gpu->sample_rows(logits, {s}, {{5, 1, 0}, {3, 1, 0}}), Error);               // unsorted
  EXPECT_THROW(gpu->sample_rows(logits, {s}, {{5, 1, 0}, {100, 1, 0}}), Error);             // id
}

// The runtime's path: host rows for top logprobs, the rest on the device.
TEST_F(CudaSampling, StepSamplerMixesHostAndDeviceRows) {
  Random rng(seed);
  const int64_t vocab = 4096;
  const Tensor logits = random_logits(rng, 3, vocab, 2.0f);
  SamplingParams a, b, c;
  a.temperature = 0;
  b.seed = seed;
  b.logprobs = 5;  // needs the whole row: sampled on the host
  c.seed = seed + 1;
  c.top_k = 100;
  SequenceSampler sa(a, {}, vocab), sb(b, {}, vocab), sc(c, {}, vocab);
  SequenceSampler ra(a, {}, vocab), rb(b, {}, vocab), rc(c, {}, vocab);
  const std::vector<SampleTask> tasks = {{&sa, 2}, {&sb, 0}, {&sc, 1}};
  const auto got = sample_step(*gpu, gpu->from_host(logits), tasks);
  ASSERT_EQ(got.size(), 3u);
  for (const auto& o : got) ASSERT_TRUE(o.error.empty()) << o.error;
  EXPECT_EQ(got[0].token.id, ra.sample(row_of(logits, 2)).id);
  const SampledToken want_b = rb.sample(row_of(logits, 0));
  EXPECT_EQ(got[1].token.id, want_b.id);
  EXPECT_EQ(got[1].token.top_logprobs, want_b.top_logprobs);
  EXPECT_EQ(got[2].token.id, rc.sample(row_of(logits, 1)).id);
}

}  // namespace
}  // namespace flint
