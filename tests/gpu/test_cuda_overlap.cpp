// Steps queued before the last step's tokens reach the host (Backend::
// sample_rows_async, Batch::token_from_sample) on the CUDA backend:
// - a step that reads its ids from the last draw computes the same logits,
//   bit for bit, as the step given those ids by the host, graphs on and off;
// - the Generator's results with overlap equal its results without, bit for
//   bit (same kernels, same inputs), greedy and seeded sampling; with stops,
//   the stopping sequences' tokens are the same;
// - a failed draw's row does not read outside the embedding table, and a row
//   naming a draw that was not made is an error.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cuda/cuda_backend.h"
#include "gpu/gpu_test_util.h"
#include "model/llama.h"
#include "model/weight_source.h"
#include "runtime/generator.h"
#include "support/test_support.h"

namespace flint {
namespace {

ModelSource small_source(uint64_t seed) { return testing::small_dummy_model(seed, "dummy:overlap"); }

class CudaOverlap : public ::testing::TestWithParam<CudaGraphMode> {};

TEST_P(CudaOverlap, StepFromADrawEqualsStepFromHostIds) {
  FLINT_REQUIRE_GPU();
  const uint64_t seed = testing::fresh_seed();
  const ModelSource source = small_source(seed);
  CudaBackendOptions o;
  o.graphs = GetParam();
  auto gpu = make_cuda_backend(o);
  LlamaModel model(source, *gpu);
  KvCache cache = gpu->create_kv_cache(model.kv_cache_shape(32, 16, DType::bf16));
  testing::Random rng(seed);

  // Three sequences prefilled; their greedy draws then feed a decode step,
  // which is compared with the same step given the drawn ids by the host.
  BatchBuilder prefill(4);
  std::vector<std::vector<int32_t>> blocks = {{0, 1}, {5, 6}, {9, 10}};
  std::vector<int32_t> lens = {7, 19, 12};
  for (size_t s = 0; s < 3; ++s) {
    std::vector<int32_t> t;
    for (int32_t i = 0; i < lens[s]; ++i) t.push_back(rng.integer(3, 999));
    prefill.add_sequence(t, 0, blocks[s]);
  }
  const Tensor logits = model.forward(prefill.build(), cache);
  std::vector<RowSamplingSpec> specs(3);
  for (int32_t r = 0; r < 3; ++r) {
    specs[static_cast<size_t>(r)].row = r;
    specs[static_cast<size_t>(r)].temperature = 0;
  }
  gpu->sample_rows_async(logits, specs, {});

  // Twice through the decode bucket, so that with graphs on a replay reads the draw.
  for (int round = 0; round < 2; ++round) {
    BatchBuilder from_draw(4);
    for (size_t s = 0; s < 3; ++s)
      from_draw.add_sampled_token(static_cast<int32_t>(2 - s), lens[s], blocks[s]);  // draws in reverse order
    const Tensor a = gpu->to_host(model.forward(from_draw.build(), cache));
    const std::vector<RowSample> drawn = gpu->collect_samples();
    ASSERT_EQ(drawn.size(), 3u);
    BatchBuilder from_host(4);
    for (size_t s = 0; s < 3; ++s) {
      ASSERT_EQ(drawn[2 - s].status, RowSampleStatus::ok);
      from_host.add_sequence({drawn[2 - s].id}, lens[s], blocks[s]);
    }
    const Batch host_step = from_host.build();
    const Tensor b = gpu->to_host(model.forward(host_step, cache));
    EXPECT_TRUE(testing::same_bits(a, b)) << "round " << round << ", seed " << seed;
    // The next round draws again from these logits, at the next position.
    const Tensor next = model.forward(host_step, cache);  // same step again: same K/V, same logits
    gpu->sample_rows_async(next, specs, {});
    for (int32_t& len : lens) ++len;
  }
  (void)gpu->collect_samples();
}

TEST_P(CudaOverlap, FailedDrawsAndMissingDraws) {
  FLINT_REQUIRE_GPU();
  const ModelSource source = small_source(testing::fresh_seed());
  CudaBackendOptions o;
  o.graphs = GetParam();
  auto gpu = make_cuda_backend(o);
  LlamaModel model(source, *gpu);
  KvCache cache = gpu->create_kv_cache(model.kv_cache_shape(8, 16, DType::bf16));

  // A NaN logits row: the draw fails; the step that reads it still runs
  // (row 0 stands in) and the host sees the failure.
  Tensor host = Tensor::empty(DType::f32, {1, 1000});
  for (int64_t i = 0; i < 1000; ++i) host.data<float>()[i] = static_cast<float>(i % 7);
  host.data<float>()[321] = NAN;
  RowSamplingSpec spec;
  spec.temperature = 0;
  gpu->sample_rows_async(gpu->from_host(host), {spec}, {});
  BatchBuilder b(2);
  b.add_sampled_token(0, 0, {3});
  const Tensor logits = gpu->to_host(model.forward(b.build(), cache));
  for (int64_t i = 0; i < logits.numel(); ++i) ASSERT_TRUE(std::isfinite(logits.data<float>()[i])) << i;
  const std::vector<RowSample> drawn = gpu->collect_samples();
  ASSERT_EQ(drawn.size(), 1u);
  EXPECT_EQ(drawn[0].status, RowSampleStatus::nan_logit);
  EXPECT_THROW(gpu->collect_samples(), Error);  // nothing pending any more

  BatchBuilder missing(2);
  missing.add_sampled_token(1, 0, {3});  // the last draw made one
  EXPECT_THROW(model.forward(missing.build(), cache), Error);
}

INSTANTIATE_TEST_SUITE_P(Graphs, CudaOverlap, ::testing::Values(CudaGraphMode::off, CudaGraphMode::on),
                         [](const ::testing::TestParamInfo<CudaGraphMode>& p) { return std::string(cuda_graph_mode_name(p.param)); });

// The Generator with and without overlap: the same steps on the same kernels,
// so the same tokens and logprobs, bit for bit, while every sequence ends by
// length (known a step ahead). A sequence that stops on a token makes the
// overlapped run compute one row more in the next step, which may move the
// others' logits in the last bits (the split-KV partition follows the batch):
// the stopping sequences' own tokens are still the same.
TEST(CudaOverlapGenerator, SameResultsAsWaitingForEachStep) {
  FLINT_REQUIRE_GPU();
  const uint64_t seed = testing::fresh_seed();
  const ModelSource source = small_source(seed);
  auto tokenizer = make_byte_tokenizer(1000, 1, {2});
  testing::Random rng(seed);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 7; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 5 + 13 * i; ++t) r.prompt.push_back(rng.integer(3, 999));
    r.params.max_tokens = 6 + 5 * i;
    r.params.temperature = i % 2 == 0 ? 0.0f : 0.9f;
    r.params.top_k = i == 3 ? 40 : 0;
    r.params.top_p = i == 5 ? 0.8f : 1.0f;
    r.params.repetition_penalty = i == 2 ? 1.2f : 1.0f;
    r.params.seed = 100 + i;
    r.params.ignore_eos = true;
    reqs.push_back(std::move(r));
  }
  auto run = [&](bool overlap) {
    auto gpu = make_cuda_backend();
    LlamaModel model(source, *gpu);
    GeneratorOptions o;
    o.kv_dtype = DType::bf16;
    o.overlap_steps = overlap;
    Generator gen(model, *tokenizer, o);
    return gen.run(reqs);
  };
  const auto want = run(false);
  const auto got = run(true);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "request " << i << ", seed " << seed;
    EXPECT_EQ(got[i].finish, FinishReason::length) << "request " << i;
    ASSERT_EQ(got[i].samples.size(), want[i].samples.size());
    for (size_t t = 0; t < got[i].samples.size(); ++t)
      EXPECT_EQ(got[i].samples[t].logprob, want[i].samples[t].logprob) << "request " << i << " token " << t;
  }

  reqs[1].params.stop_token_ids = {want[1].tokens.at(3)};
  reqs[4].params.stop_token_ids = {want[4].tokens.at(7)};
  const auto want_stops = run(false);
  const auto got_stops = run(true);
  for (size_t i : {1u, 4u}) {
    EXPECT_EQ(want_stops[i].finish, FinishReason::stop) << "request " << i;
    EXPECT_EQ(got_stops[i].finish, FinishReason::stop) << "request " << i;
    EXPECT_EQ(got_stops[i].tokens, want_stops[i].tokens) << "request " << i << ", seed " << seed;
  }
  EXPECT_LE(got_stops[1].tokens.size(), 4u);
}

}  // namespace
}  // namespace flint
