// The whole model on the GPU: the golden fixtures (tests/golden, logits from
// Hugging Face transformers in f32) run by the CUDA backend, and random dummy
// models against the CPU backend.
//
// Tolerance: the fixtures' f32 weights are rounded to bf16 and every
// activation is bf16 (HF's own bf16 runs differ from its f32 ones by about
// 1e-2 on such models), so: relative error < 2e-2 over all logits and the
// same top-1 token in at least 99% of rows. A wrong rotation, mask or scale
// gives errors of order 1.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "backends/cpu/cpu_backend.h"
#include "backends/cuda/cuda_backend.h"
#include "eval/logits_eval.h"
#include "gpu/gpu_test_util.h"
#include "io/safetensors.h"
#include "model/llama.h"
#include "model/weight_source.h"
#include "golden/golden_fixtures.h"
#include "support/test_support.h"

namespace flint {
namespace {

namespace fs = std::filesystem;

constexpr double kRelTol = 2e-2;
constexpr double kTop1 = 0.99;

using testing::GoldenReference;
using Reference = GoldenReference;
fs::path fixtures_dir() { return testing::golden_fixtures_dir(); }
std::vector<std::string> variants() { return testing::golden_variants(); }
Reference load_reference(const fs::path& dir) { return testing::load_golden_reference(dir); }

// Rows [begin, begin + n) of a host [T, V] tensor, as its own tensor.
Tensor rows(const Tensor& t, int64_t begin, int64_t n) { return t.slice(0, begin, begin + n).contiguous_copy(); }

// The CUDA attention kernels take head_dim 64 or 128 (backends/cuda/cuda_attention.h).
bool gpu_runs_head_dim(int64_t d) { return d == 64 || d == 128; }

class CudaGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    FLINT_REQUIRE_GPU();
    source = open_model(dir().string());
    if (!gpu_runs_head_dim(source.config.head_dim))
      GTEST_SKIP() << GetParam() << " has head_dim " << source.config.head_dim
                   << "; the CUDA attention kernels take 64 or 128";
    ref = load_reference(dir());
    backend = make_cuda_backend();
    model = std::make_unique<LlamaModel>(source, *backend);
  }
  fs::path dir() const { return fixtures_dir() / GetParam(); }

  ModelSource source;
  Reference ref;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
};

TEST_P(CudaGolden, LogitsMatchTransformersInEveryMode) {
  for (const char* mode : {"prefill", "decode", "chunked:5", "chunked:16"}) {
    const Tensor got = run_sequence_logits(*model, ref.ids, parse_eval_mode(mode), DType::bf16);
    const LogitsDiff d = compare_logits(got, ref.logits);
    EXPECT_LT(d.relative_error, kRelTol) << GetParam() << " " << mode;
    EXPECT_GE(d.top1_agreement, kTop1) << GetParam() << " " << mode;
  }
}

// A step that mixes a decode token, a whole prompt and a chunk continuing a
// cached prefix gives each sequence what it gets alone (the rows of one
// prefill of the same prefix; every sequence is a prefix of the input) and
// what transformers gives.
TEST_P(CudaGolden, MixedBatchEqualsSeparateRuns) {
  const std::vector<TokenId>& ids = ref.ids;
  ASSERT_GE(ids.size(), 33u);
  const Tensor alone = run_sequence_logits(
      *model, std::vector<TokenId>(ids.begin(), ids.begin() + 33), parse_eval_mode("prefill"), DType::bf16);

  const Tensor got = testing::run_mixed_batch(*model, ids, DType::bf16);
  ASSERT_EQ(got.size(0), testing::kMixedBatchRows);

  struct Part {
    const char* what;
    int64_t got_row, ref_row, n;
  };
  for (const Part& p : {Part{"decode token", 0, 20, 1}, Part{"whole prompt", 1, 32, 1}, Part{"chunk", 2, 17, 9}}) {
    const Tensor g = rows(got, p.got_row, p.n);
    const LogitsDiff vs_alone = compare_logits(g, rows(alone, p.ref_row, p.n));
    const LogitsDiff vs_hf = compare_logits(g, rows(ref.logits, p.ref_row, p.n));
    EXPECT_LT(vs_alone.relative_error, kRelTol) << GetParam() << " " << p.what;
    EXPECT_LT(vs_hf.relative_error, kRelTol) << GetParam() << " " << p.what;
    EXPECT_EQ(vs_alone.top1_agreement, 1.0) << GetParam() << " " << p.what;
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, CudaGolden, ::testing::ValuesIn(variants()),
                         [](const auto& param_info) { return param_info.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaGolden);

// Random dummy models of shapes the kernels take (head_dim 64 and 128, GQA
// 1, 4 and 8), CPU (f32 everything) against CUDA (bf16): the golden fixtures'
// tolerance, in every mode.
struct DummyShape {
  const char* name;
  int64_t hidden, ffn, heads, kv_heads, head_dim;
};

class CudaDummyModel : public ::testing::TestWithParam<DummyShape> {};

TEST_P(CudaDummyModel, MatchesTheCpu) {
  FLINT_REQUIRE_GPU();
  const DummyShape& s = GetParam();
  LlamaConfig c = dummy_config("tiny");
  c.vocab_size = 1000;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.ffn;
  c.num_hidden_layers = 2;
  c.num_attention_heads = s.heads;
  c.num_key_value_heads = s.kv_heads;
  c.head_dim = s.head_dim;
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};
  c.validate();
  ModelSource source;
  source.origin = std::string("dummy:") + s.name;
  source.config = c;
  source.weights = make_dummy_weights(c, DType::bf16, testing::fresh_seed());
  source.is_dummy = true;

  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend();
  LlamaModel cpu_model(source, *cpu), gpu_model(source, *gpu);
  testing::Random rng(testing::fresh_seed());
  std::vector<TokenId> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(rng.integer(0, static_cast<int32_t>(c.vocab_size) - 1));
  const Tensor expected = run_sequence_logits(cpu_model, ids, parse_eval_mode("prefill"), DType::f32);
  for (const char* mode : {"prefill", "decode", "chunked:7"}) {
    const LogitsDiff d = compare_logits(run_sequence_logits(gpu_model, ids, parse_eval_mode(mode), DType::bf16),
                                        expected);
    EXPECT_LT(d.relative_error, kRelTol) << s.name << " " << mode;
    EXPECT_GE(d.top1_agreement, 0.9) << s.name << " " << mode;  // random weights: near-ties are common
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaDummyModel,
                         ::testing::Values(DummyShape{"d64_mha", 256, 512, 4, 4, 64},
                                           DummyShape{"d64_gqa4", 512, 1024, 8, 2, 64},
                                           DummyShape{"d128_gqa8", 1024, 2816, 8, 1, 128}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace flint
