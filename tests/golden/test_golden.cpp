// Golden tests: the CPU engine against Hugging Face transformers.
//
// Fixtures (tests/golden/fixtures/<variant>/, made by make_golden.py on a
// machine with transformers) hold tiny random-weight float32 checkpoints, the
// logits transformers computes for a 48-token input and its greedy tokens.
// Tolerance: both sides compute in float32 (HF on its CPU), so the only
// difference is summation order: rel err ~1e-6 in practice; 1e-4 leaves room
// for the different reduction orders of BLAS vs our kernels, and is still two
// orders of magnitude below what any wrong rotation, scaling or mask gives.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/backends.h"
#include "eval/logits_eval.h"
#include "io/safetensors.h"
#include "runtime/generator.h"
#include "golden/golden_fixtures.h"
#include "support/test_support.h"

namespace flint {
namespace {

namespace fs = std::filesystem;

using testing::GoldenReference;
using Reference = GoldenReference;
fs::path fixtures_dir() { return testing::golden_fixtures_dir(); }
std::vector<std::string> variants() { return testing::golden_variants(); }
Reference load_reference(const fs::path& dir) { return testing::load_golden_reference(dir); }

class Golden : public ::testing::TestWithParam<std::string> {
 protected:
  fs::path dir() const { return fixtures_dir() / GetParam(); }
};

TEST_P(Golden, LogitsMatchTransformersInEveryMode) {
  const Reference ref = load_reference(dir());
  const ModelSource source = open_model(dir().string());
  auto backend = make_backend(Device::cpu);
  LlamaModel model(source, *backend);
  for (const char* mode : {"prefill", "decode", "chunked:5", "chunked:16"}) {
    const Tensor got = run_sequence_logits(model, ref.ids, parse_eval_mode(mode), DType::f32);
    const LogitsDiff d = compare_logits(got, ref.logits);
    EXPECT_LT(d.relative_error, 1e-4) << GetParam() << " " << mode;
    EXPECT_EQ(d.top1_agreement, 1.0) << GetParam() << " " << mode;
  }
}

TEST_P(Golden, GreedyGenerationMatchesTransformers) {
  std::ifstream in(dir() / "greedy.json");
  const nlohmann::json g = nlohmann::json::parse(in);
  const auto prompt = g["prompt_ids"].get<std::vector<TokenId>>();
  const auto expected = g["generated_ids"].get<std::vector<TokenId>>();
  const ModelSource source = open_model(dir().string());
  auto backend = make_backend(Device::cpu);
  LlamaModel model(source, *backend);
  auto tokenizer = make_byte_tokenizer(static_cast<int32_t>(source.config.vocab_size), 1, {});
  GenerationRequest req;
  req.prompt = prompt;
  req.params.temperature = 0;
  req.params.max_tokens = static_cast<int32_t>(expected.size());
  req.params.ignore_eos = true;
  Generator gen(model, *tokenizer);
  const auto results = gen.run({req});
  EXPECT_EQ(results[0].tokens, expected) << GetParam();
}

// A step that mixes a whole prompt, a chunk continuing a cached prefix and
// single decode tokens gives each sequence the logits it gets alone.
TEST_P(Golden, MixedBatchEqualsSeparateRuns) {
  const Reference ref = load_reference(dir());
  const ModelSource source = open_model(dir().string());
  auto backend = make_backend(Device::cpu);
  LlamaModel model(source, *backend);
  const int32_t V = static_cast<int32_t>(source.config.vocab_size);
  const Tensor got = testing::run_mixed_batch(model, ref.ids, DType::f32);
  ASSERT_EQ(got.size(0), testing::kMixedBatchRows);
  // Every sequence is a prefix of the same input, so the reference rows apply.
  auto row_diff = [&](int64_t got_row, int64_t ref_row) {
    double d2 = 0, r2 = 0;
    for (int32_t j = 0; j < V; ++j) {
      const double d = got.data<float>()[got_row * V + j] - ref.logits.data<float>()[ref_row * V + j];
      d2 += d * d;
      r2 += static_cast<double>(ref.logits.data<float>()[ref_row * V + j]) * ref.logits.data<float>()[ref_row * V + j];
    }
    return std::sqrt(d2 / r2);
  };
  for (int64_t r = 0; r < testing::kMixedBatchRows; ++r)
    EXPECT_LT(row_diff(r, testing::mixed_batch_reference_row(r)), 1e-4) << "row " << r;
}

// The CPU backend sums every row in one order whatever shares its step, so
// the mixed step's logits equal, bit for bit, those of one whole-prompt
// prefill (where the linear layers take the GEMM path, 33 rows, against the
// GEMV for the mixed step's 11).
TEST_P(Golden, MixedBatchIsBitIdenticalToOnePrefill) {
  const Reference ref = load_reference(dir());
  const ModelSource source = open_model(dir().string());
  auto backend = make_backend(Device::cpu);
  LlamaModel model(source, *backend);
  const int64_t V = source.config.vocab_size;
  const Tensor mixed = testing::run_mixed_batch(model, ref.ids, DType::f32);
  KvCache cache = model.backend().create_kv_cache(model.kv_cache_shape(16, 16, DType::f32));
  BatchBuilder whole(4);
  whole.add_sequence(std::vector<TokenId>(ref.ids.begin(), ref.ids.begin() + 33), 0, {3, 8, 1}, false, true);
  const Tensor alone = model.backend().to_host(model.forward(whole.build(), cache));
  ASSERT_EQ(alone.size(0), 33);
  for (int64_t r = 0; r < testing::kMixedBatchRows; ++r) {
    const float* got = mixed.data<float>() + r * V;
    const float* want = alone.data<float>() + testing::mixed_batch_reference_row(r) * V;
    EXPECT_EQ(std::memcmp(got, want, static_cast<size_t>(V) * sizeof(float)), 0) << "row " << r;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, Golden, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Golden);

TEST(GoldenFixtures, Present) {
  // The five variants of make_golden.py; a missing one is a missing test.
  EXPECT_EQ(variants(), (std::vector<std::string>{"bias_linear", "codellama", "llama2", "llama31", "llama32"}));
}

}  // namespace
}  // namespace flint
