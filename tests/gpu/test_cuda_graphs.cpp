// Decode steps as CUDA graphs (docs/CUDA.md): the same schedule of steps run
// by three CUDA backends on one dummy model, graphs off, eager (padded to the
// buckets, op by op) and on (padded, captured, replayed).
//
// - eager vs on: bit for bit, every step: a replay does exactly the recorded
//   work on the new step's arrays (fixed addresses, nothing stale).
// - off vs on: bit for bit where the step is already a bucket with a
//   power-of-two block table (no padding); otherwise padding may change the
//   split-KV partition or the kernel choice, so within the golden tolerance.
// The schedule crosses block boundaries, changes bucket (3 -> 4, 17 -> 24)
// and comes back to a bucket already recorded.
#include <gtest/gtest.h>

#include <cstring>

#include "backends/cuda/cuda_backend.h"
#include "gpu/gpu_test_util.h"
#include "model/llama.h"
#include "model/weight_source.h"
#include "support/test_support.h"

namespace flint {
namespace {

constexpr int32_t kBlock = 16;
constexpr int32_t kMaxBlocks = 8;  // a power of two: no widening
constexpr int32_t kBlocksPerSeq = 4;

struct Entry {
  int32_t seq;
  std::vector<int32_t> tokens;
  int32_t cached;
};
using Step = std::vector<Entry>;

struct World {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<LlamaModel> model;
  KvCache cache;
};

World make_world(const ModelSource& source, CudaGraphMode mode) {
  World w;
  CudaBackendOptions o;
  o.graphs = mode;
  w.backend = make_cuda_backend(o);
  w.model = std::make_unique<LlamaModel>(source, *w.backend);
  w.cache = w.backend->create_kv_cache(w.model->kv_cache_shape(20 * kBlocksPerSeq, kBlock, DType::bf16));
  return w;
}

Tensor run(World& w, const Step& step) {
  BatchBuilder b(kMaxBlocks);
  for (const Entry& e : step) {
    std::vector<int32_t> blocks;
    // Sequence s owns blocks [s * 4, s * 4 + 4), in reverse, so tables are not the identity.
    for (int32_t i = kBlocksPerSeq - 1; i >= 0; --i) blocks.push_back(e.seq * kBlocksPerSeq + i);
    b.add_sequence(e.tokens, e.cached, blocks);
  }
  return w.backend->to_host(w.model->forward(b.build(), w.cache));
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST(CudaGraphs, ReplayEqualsEagerRuns) {
  FLINT_REQUIRE_GPU();
  const uint64_t seed = testing::fresh_seed();
  const ModelSource source = testing::small_dummy_model(seed, "dummy:graphs");
  const LlamaConfig& c = source.config;

  // The schedule, on the host.
  testing::Random rng(seed);
  auto token = [&] { return rng.integer(3, static_cast<int32_t>(c.vocab_size) - 1); };
  std::vector<int32_t> len(20, 0);
  std::vector<Step> steps;
  auto prefill = [&](int32_t first, int32_t count) {
    Step s;
    for (int32_t q = first; q < first + count; ++q) {
      const int32_t n = 10 + (q * 7) % 21;  // 10..30 tokens
      std::vector<int32_t> t;
      for (int32_t i = 0; i < n; ++i) t.push_back(token());
      s.push_back({q, t, 0});
      len[static_cast<size_t>(q)] = n;
    }
    steps.push_back(s);
  };
  auto decode = [&](int32_t first, int32_t count, int32_t times) {
    for (int32_t k = 0; k < times; ++k) {
      Step s;
      for (int32_t q = first; q < first + count; ++q) {
        s.push_back({q, {token()}, len[static_cast<size_t>(q)]});
        ++len[static_cast<size_t>(q)];
      }
      steps.push_back(s);
    }
  };
  prefill(0, 3);
  decode(0, 3, 7);    // bucket 4 (padded); sequence 0 crosses from block 0 into block 1
  prefill(3, 1);
  decode(0, 4, 3);    // bucket 4, no padding
  prefill(4, 13);
  decode(0, 17, 4);   // bucket 24 (padded), above the GEMV's 16 rows: cuBLASLt inside the graph
  decode(0, 3, 3);    // back to a recorded shape, with new lengths
  decode(5, 1, 2);    // bucket 1

  World off = make_world(source, CudaGraphMode::off);
  World eager = make_world(source, CudaGraphMode::eager);
  World on = make_world(source, CudaGraphMode::on);
  for (size_t i = 0; i < steps.size(); ++i) {
    const Tensor a = run(off, steps[i]), b = run(eager, steps[i]), g = run(on, steps[i]);
    const auto S = static_cast<int64_t>(steps[i].size());
    const bool is_decode = static_cast<int64_t>(g.size(0)) == S && steps[i].front().tokens.size() == 1;
    ASSERT_EQ(g.size(0), a.size(0)) << "step " << i;
    EXPECT_TRUE(bitwise_equal(g, b)) << "step " << i << " (" << S << " sequences), seed " << seed;
    if (!is_decode || S == 4 || S == 1) {
      EXPECT_TRUE(bitwise_equal(g, a)) << "step " << i << " (" << S << " sequences), seed " << seed;
    } else {
      const LogitsDiff d = compare_logits(g, a);
      EXPECT_LT(d.relative_error, 2e-2) << "step " << i << ", seed " << seed;
      EXPECT_GE(d.top1_agreement, 0.9) << "step " << i << ", seed " << seed;
    }
  }
}

}  // namespace
}  // namespace flint
