// The Generator's overlapped steps (GeneratorOptions::overlap_steps), on the
// CPU: a backend that forwards every op to the CPU backend but "samples on its
// device" (greedy with penalties, on the host, kept until the next step reads
// it through Batch::token_from_sample) lets the Generator queue each step
// before the last one's tokens are taken. The results must equal the plain CPU
// backend's, which samples on the host one step at a time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/backends.h"
#include "core/error.h"
#include "runtime/generator.h"
#include "runtime/small_model.h"

namespace flint {
namespace {

// Forwards every op to the CPU backend; draws greedy tokens (penalties
// applied as ops/sampling.h orders them) when asked, and hands the drawn ids
// to the next step's embedding as a device backend would.
class DrawingBackend final : public Backend {
 public:
  DrawingBackend() : inner_(make_backend(Device::cpu)) {}

  int draws_fed = 0;       // batch rows whose id came from a draw
  int collects = 0;        // collect_samples() calls
  int overlapped = 0;      // steps queued while a draw was not yet collected

  Device device() const override { return inner_->device(); }
  std::string name() const override { return "drawing-cpu"; }
  DType activation_dtype() const override { return inner_->activation_dtype(); }
  Tensor empty(DType dtype, Shape shape) override { return inner_->empty(dtype, std::move(shape)); }
  Tensor prepare_weight(const Tensor& host, DType compute_dtype) override {
    return inner_->prepare_weight(host, compute_dtype);
  }
  KvCache create_kv_cache(const KvCacheShape& shape) override { return inner_->create_kv_cache(shape); }
  Tensor to_host(const Tensor& t) override { return inner_->to_host(t); }
  Tensor from_host(const Tensor& t) override { return inner_->from_host(t); }
  void synchronize() override { inner_->synchronize(); }

  void begin_step(const Batch& batch, const KvCache& cache) override {
    if (pending_) ++overlapped;
    Batch fed = batch;
    for (size_t t = 0; t < batch.token_from_sample.size(); ++t) {
      const int32_t from = batch.token_from_sample[t];
      if (from < 0) continue;
      FLINT_CHECK(static_cast<size_t>(from) < drawn_.size(), "row {} reads draw {} of {}", t, from, drawn_.size());
      fed.token_ids[t] = drawn_[static_cast<size_t>(from)].id;
      ++draws_fed;
    }
    fed.token_from_sample.clear();
    inner_->begin_step(fed, cache);
  }
  void embedding(const Tensor& table, Tensor& out) override { inner_->embedding(table, out); }
  void rms_norm(const Tensor& x, const Tensor& w, float eps, Tensor& out) override { inner_->rms_norm(x, w, eps, out); }
  void linear(const Tensor& x, const Linear& w, Tensor& out) override { inner_->linear(x, w, out); }
  void linear_add(const Tensor& x, const Linear& w, Tensor& residual, Tensor& scratch) override {
    inner_->linear_add(x, w, residual, scratch);
  }
  void rope_and_cache(Tensor& qkv, const RopeTables& rope, const AttentionParams& p, KvCache& cache,
                      int32_t layer) override {
    inner_->rope_and_cache(qkv, rope, p, cache, layer);
  }
  void attention(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer,
                 Tensor& out) override {
    inner_->attention(qkv, p, cache, layer, out);
  }
  void swiglu(const Tensor& gate_up, Tensor& out) override { inner_->swiglu(gate_up, out); }
  void gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) override {
    inner_->gather_rows(x, rows, out);
  }

  bool samples_on_device() const override { return true; }
  void sample_rows_async(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                         const std::vector<PenalizedToken>& penalties) override {
    check_sampling_args(logits, specs, penalties);
    drawn_.clear();
    for (const RowSamplingSpec& spec : specs) drawn_.push_back(draw_greedy(logits, spec, penalties));
    pending_ = true;
  }
  std::vector<RowSample> collect_samples() override {
    FLINT_CHECK(pending_, "collect_samples: nothing pending");
    pending_ = false;
    ++collects;
    return drawn_;
  }

 private:
  static RowSample draw_greedy(const Tensor& logits, const RowSamplingSpec& spec,
                               const std::vector<PenalizedToken>& penalties) {
    FLINT_CHECK(spec.temperature < kGreedyTemperature, "this test backend draws greedy tokens only");
    const auto V = static_cast<size_t>(logits.size(1));
    const float* raw = logits.data<float>() + static_cast<size_t>(spec.row) * V;
    std::vector<float> x(raw, raw + V);
    for (int32_t j = 0; j < spec.penalties_count; ++j) {
      const PenalizedToken& p = penalties[static_cast<size_t>(spec.penalties_begin + j)];
      float& v = x[static_cast<size_t>(p.id)];
      if (p.seen > 0) v = v > 0 ? v / spec.repetition_penalty : v * spec.repetition_penalty;
      if (p.generated > 0) v -= spec.frequency_penalty * static_cast<float>(p.generated) + spec.presence_penalty;
    }
    const auto best = static_cast<int32_t>(std::max_element(x.begin(), x.end()) - x.begin());  // first on ties
    const float max = *std::max_element(raw, raw + V);
    double sum = 0;
    for (size_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(raw[i] - max));
    RowSample out;
    out.id = best;
    out.logprob = static_cast<float>(static_cast<double>(raw[best]) - (static_cast<double>(max) + std::log(sum)));
    return out;
  }

  std::unique_ptr<Backend> inner_;
  std::vector<RowSample> drawn_;
  bool pending_ = false;
};

struct World {
  explicit World(std::unique_ptr<Backend> b) : backend(std::move(b)) {
    ModelSource source;
    source.origin = "test:small";
    source.config = testing::small_llama_config(/*tie_word_embeddings=*/false);
    source.weights = make_dummy_weights(source.config, DType::f32, 11);
    source.is_dummy = true;
    model = std::make_unique<LlamaModel>(source, *backend);
    tokenizer = make_byte_tokenizer(512, 1, {2});
  }
  std::vector<GenerationResult> run(const std::vector<GenerationRequest>& requests, bool overlap,
                                    int32_t max_batched_tokens = 2048) {
    GeneratorOptions o;
    o.overlap_steps = overlap;
    o.max_batched_tokens = max_batched_tokens;
    Generator gen(*model, *tokenizer, o);
    auto out = gen.run(requests);
    stats = gen.stats();
    return out;
  }
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tokenizer;
  GenerationStats stats;
};

GenerationRequest greedy(uint32_t seed, int len, int32_t max_tokens) {
  GenerationRequest r;
  for (int i = 0; i < len; ++i) r.prompt.push_back(static_cast<int32_t>(3 + (seed * 131 + i * 37) % 500));
  r.params.temperature = 0;
  r.params.max_tokens = max_tokens;
  r.params.ignore_eos = true;
  return r;
}

void expect_same(const std::vector<GenerationResult>& got, const std::vector<GenerationResult>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "request " << i;
    EXPECT_EQ(got[i].text, want[i].text) << "request " << i;
    EXPECT_EQ(got[i].finish, want[i].finish) << "request " << i;
    ASSERT_EQ(got[i].samples.size(), want[i].samples.size()) << "request " << i;
    for (size_t t = 0; t < got[i].samples.size(); ++t)
      EXPECT_NEAR(got[i].samples[t].logprob, want[i].samples[t].logprob, 1e-5) << "request " << i << " token " << t;
  }
}

// Requests of mixed prompt lengths and limits, some stopping on a token id or
// a stop string that greedy decoding reaches mid-way, so that the overlapped
// step after the stop computes a row for nothing; a small token budget mixes
// prefill chunks with decode tokens.
std::vector<GenerationRequest> mixed_requests(const std::vector<GenerationResult>& free_run) {
  std::vector<GenerationRequest> reqs;
  for (uint32_t i = 0; i < 6; ++i) reqs.push_back(greedy(i, 5 + 23 * static_cast<int>(i), 9 + 3 * static_cast<int>(i)));
  if (free_run.empty()) return reqs;
  reqs[1].params.stop_token_ids = {free_run[1].tokens.at(4)};
  reqs[2].params.stop = {free_run[2].text.substr(3, 2)};
  reqs[3].params.repetition_penalty = 1.3f;
  reqs[3].params.frequency_penalty = 0.5f;
  reqs[4].params.max_tokens = 1;
  return reqs;
}

TEST(GeneratorOverlap, EqualsStepByStepHostSampling) {
  World host(make_backend(Device::cpu));
  const auto free_run = host.run(mixed_requests({}), false);
  const auto reqs = mixed_requests(free_run);
  const auto want = host.run(reqs, true);  // the CPU samples on the host: no overlap whatever the option
  ASSERT_LT(want[1].tokens.size(), free_run[1].tokens.size());  // the stops do stop early
  ASSERT_LT(want[2].tokens.size(), free_run[2].tokens.size());
  EXPECT_EQ(want[1].finish, FinishReason::stop);

  for (int32_t budget : {2048, 16}) {
    SCOPED_TRACE(budget);
    auto* drawing = new DrawingBackend;
    World dev{std::unique_ptr<Backend>(drawing)};
    expect_same(dev.run(reqs, /*overlap=*/true, budget), want);
    EXPECT_GT(drawing->draws_fed, 0);
    EXPECT_GT(drawing->overlapped, 0);
    const int fed = drawing->draws_fed;
    expect_same(dev.run(reqs, /*overlap=*/false, budget), want);
    EXPECT_EQ(drawing->draws_fed, fed);  // without overlap every id comes from the host
  }
}

// A request that wants top logprobs needs its whole row on the host: those
// steps run one at a time, and the result is still the host's.
TEST(GeneratorOverlap, TopLogprobsFallBackToWaiting) {
  World host(make_backend(Device::cpu));
  std::vector<GenerationRequest> reqs = {greedy(1, 12, 6), greedy(2, 7, 6)};
  reqs[0].params.logprobs = 3;
  const auto want = host.run(reqs, true);
  auto* drawing = new DrawingBackend;
  World dev{std::unique_ptr<Backend>(drawing)};
  const auto got = dev.run(reqs, true);
  expect_same(got, want);
  EXPECT_EQ(drawing->overlapped, 0);
  ASSERT_EQ(got[0].samples.size(), 6u);
  EXPECT_EQ(got[0].samples[0].top_logprobs, want[0].samples[0].top_logprobs);
}

// Step times run from one step's tokens to the next: they add up to no more
// than the run, and every step is counted.
TEST(GeneratorOverlap, StatsCoverEveryStep) {
  auto* drawing = new DrawingBackend;
  World dev{std::unique_ptr<Backend>(drawing)};
  const auto got = dev.run({greedy(5, 20, 8)}, true);
  ASSERT_EQ(got[0].tokens.size(), 8u);
  EXPECT_EQ(dev.stats.steps, 8);  // one prefill, seven decode steps
  EXPECT_EQ(dev.stats.generated_tokens, 8);
  EXPECT_GT(dev.stats.prefill_seconds, 0);
  EXPECT_GT(dev.stats.decode_seconds, 0);
  EXPECT_LE(dev.stats.first_token_seconds, dev.stats.prefill_seconds + dev.stats.decode_seconds);
  EXPECT_EQ(drawing->collects, 8);
}

// A backend that does not sample on its device refuses a batch that reads a draw.
TEST(GeneratorOverlap, CpuBackendRefusesTokensFromADraw) {
  World host(make_backend(Device::cpu));
  KvCache cache = host.backend->create_kv_cache(host.model->kv_cache_shape(4, 16, DType::f32));
  BatchBuilder b(1);
  b.add_sampled_token(0, 0, {0});
  const Batch batch = b.build();
  EXPECT_THROW(host.backend->begin_step(batch, cache), Error);
  EXPECT_THROW(host.backend->sample_rows_async(host.backend->empty(DType::f32, {1, 512}), {}, {}), Error);
  EXPECT_THROW(host.backend->collect_samples(), Error);
}

}  // namespace
}  // namespace flint
