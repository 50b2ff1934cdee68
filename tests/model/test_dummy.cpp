// Dummy models: real shapes, deterministic non-zero values, memory plans.
#include <gtest/gtest.h>

#include <cmath>

#include "core/dummy_values.h"
#include "model/memory_plan.h"
#include "model/weight_source.h"

namespace flint {
namespace {

TEST(Dummy, ShapesAreTheRealModels) {
  const LlamaConfig c = dummy_config("llama-3.1-8b");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.num_parameters(), 8030261248);
  EXPECT_EQ(dummy_config("llama-3.2-1b").num_parameters(), 1235814400);
  EXPECT_EQ(dummy_config("llama-3.2-3b").num_parameters(), 3212749824);
  EXPECT_EQ(dummy_config("llama-3.1-70b").num_parameters(), 70553706496);
  const LlamaConfig tiny = dummy_config("tiny");
  EXPECT_EQ(tiny.vocab_size, 128256);
  EXPECT_EQ(tiny.hidden_size, 256);
  EXPECT_EQ(tiny.intermediate_size, 512);
  EXPECT_EQ(tiny.num_hidden_layers, 2);
  EXPECT_EQ(tiny.num_attention_heads, 8);
  EXPECT_EQ(tiny.num_key_value_heads, 2);
  EXPECT_EQ(tiny.rope_theta, 500000.0);
}

TEST(Dummy, UnknownShapeListsTheValidOnes) {
  try {
    dummy_config("llama-9");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tiny, llama-3.2-1b"), std::string::npos) << e.what();
  }
}

TEST(Dummy, WeightsAreDeterministicNonZeroAndSeeded) {
  const LlamaConfig c = dummy_config("tiny");
  auto a = make_dummy_weights(c, DType::bf16, 0);
  auto b = make_dummy_weights(c, DType::bf16, 0);
  auto other = make_dummy_weights(c, DType::bf16, 1);
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  const Tensor ta = a->load(name), tb = b->load(name), tc = other->load(name);
  ASSERT_EQ(ta.shape(), (Shape{256, 512}));
  ASSERT_EQ(0, std::memcmp(ta.raw(), tb.raw(), ta.nbytes()));
  EXPECT_NE(0, std::memcmp(ta.raw(), tc.raw(), ta.nbytes()));
  double sum = 0, sum2 = 0;
  int zeros = 0;
  for (int64_t i = 0; i < ta.numel(); ++i) {
    const double v = ta.item_f32(i);
    sum += v;
    sum2 += v * v;
    zeros += v == 0.0;
  }
  const double n = static_cast<double>(ta.numel());
  EXPECT_NEAR(sum / n, 0.0, 1e-3);
  EXPECT_NEAR(std::sqrt(sum2 / n), 0.04 / std::sqrt(3.0), 1e-3);  // uniform on [-0.04, 0.04)
  EXPECT_LT(zeros, 10);
  const Tensor norm = a->load("model.norm.weight");
  for (int64_t i = 0; i < norm.numel(); ++i) EXPECT_NEAR(norm.item_f32(i), 1.0, 0.041);
}

TEST(Dummy, ValuesAreThePureFunction) {
  const uint64_t key = dummy_tensor_key(3, "model.embed_tokens.weight");
  auto w = make_dummy_weights(dummy_config("tiny"), DType::f32, 3);
  const Tensor t = w->load("model.embed_tokens.weight");
  for (uint64_t i : {0ull, 1ull, 12345ull, 32833535ull})
    EXPECT_EQ(t.data<float>()[i], dummy_weight_value(key, i, false));
}

TEST(MemoryPlan, Llama8bFigures) {
  const LlamaConfig c = dummy_config("llama-3.1-8b");
  auto w = make_dummy_weights(c, DType::bf16, 0);
  const MemoryPlan p = plan_memory(c, w->headers(), {.kv_dtype = DType::bf16, .max_seq_len = 8192, .max_batch = 4});
  EXPECT_EQ(p.num_parameters, 8030261248);
  EXPECT_EQ(p.weight_bytes, 2 * 8030261248ull);
  EXPECT_EQ(p.weight_bytes_by_dtype.at(DType::bf16), p.weight_bytes);
  // 32 layers x 8 KV heads x 128 x 2 (K and V) x 2 bytes = 131072 bytes per token.
  EXPECT_EQ(p.kv_bytes_per_token, 131072u);
  EXPECT_EQ(p.kv_bytes, 131072ull * 8192 * 4);
  // Every weight but the embedding table, of which one row: ~15.0 GB per step.
  const uint64_t embed = 128256ull * 4096 * 2;
  EXPECT_EQ(p.decode_bytes_per_step, p.weight_bytes - embed + 4096 * 2);
  EXPECT_NEAR(static_cast<double>(p.decode_bytes_per_step) / 1e9, 15.01, 0.01);
  EXPECT_EQ(p.total_bytes, p.weight_bytes + p.kv_bytes + p.activation_bytes);
}

TEST(MemoryPlan, TiedEmbeddingsAreReadWhole) {
  const LlamaConfig c = dummy_config("llama-3.2-1b");
  auto w = make_dummy_weights(c, DType::bf16, 0);
  const MemoryPlan p = plan_memory(c, w->headers(), {});
  EXPECT_EQ(p.decode_bytes_per_step, p.weight_bytes);  // the table is the lm_head
  EXPECT_NEAR(static_cast<double>(p.decode_bytes_per_step) / 1e9, 2.47, 0.01);
}

TEST(MemoryPlan, RejectsNonPositiveLimits) {
  const LlamaConfig c = dummy_config("tiny");
  auto w = make_dummy_weights(c, DType::bf16, 0);
  EXPECT_THROW(plan_memory(c, w->headers(), {.max_seq_len = 0}), Error);
  EXPECT_THROW(plan_memory(c, w->headers(), {.max_batch = -1}), Error);
}

TEST(FormatBytes, Units) {
  EXPECT_EQ(format_bytes(312), "312 B");
  EXPECT_EQ(format_bytes(15010000000ull), "15.01 GB");
  EXPECT_EQ(format_bytes(1500), "1.50 kB");
}

}  // namespace
}  // namespace flint
