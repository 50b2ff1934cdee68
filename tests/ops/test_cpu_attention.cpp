// rope_and_cache and attention of the CPU backend against a double-precision
// reference, over two steps: first the cached prefixes of some sequences, then
// one mixed batch (decode tokens, a prefill chunk, whole prompts) whose block
// tables are shuffled so that no sequence's blocks are contiguous.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "op_test_util.h"

namespace flint {
namespace {

using testing::gamma_f32;
using testing::kF32Unit;
using testing::Random;

struct AttnCase {
  int hq, hkv, d, block_size;
  DType cache;
};

struct SeqSpec {
  int cached;  // tokens written by the first step
  int fresh;   // tokens of the mixed second step
  std::vector<int32_t> blocks;
  std::vector<std::vector<float>> rows;  // [cached + fresh][width] q, k, v before rope
};

std::vector<float> inv_freq_of(int d) {
  std::vector<float> f(static_cast<size_t>(d / 2));
  for (int i = 0; i < d / 2; ++i) f[static_cast<size_t>(i)] = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * i / d));
  return f;
}

// HF: angle = inv_freq (f32) * position (f32), rounded to f32; x * cos + rotate_half(x) * sin.
void rotate_reference(const float* x, int d, int32_t pos, const std::vector<float>& inv_freq, double* out) {
  for (int i = 0; i < d / 2; ++i) {
    const float angle = static_cast<float>(pos) * inv_freq[static_cast<size_t>(i)];
    const double c = std::cos(static_cast<double>(angle)), s = std::sin(static_cast<double>(angle));
    out[i] = static_cast<double>(x[i]) * c - static_cast<double>(x[i + d / 2]) * s;
    out[i + d / 2] = static_cast<double>(x[i + d / 2]) * c + static_cast<double>(x[i]) * s;
  }
}

std::vector<double> widen(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = t.item_f32(i);
  return out;
}

class AttentionRun {
 public:
  AttentionRun(const AttnCase& c, uint64_t seed, std::vector<std::pair<int, int>> seqs)
      : c_(c), rng_(seed), backend_(make_cpu_backend()), inv_freq_(inv_freq_of(c.d)) {
    width_ = (c.hq + 2 * c.hkv) * c.d;
    int total_blocks = 0;
    for (auto [cached, fresh] : seqs) {
      SeqSpec s;
      s.cached = cached;
      s.fresh = fresh;
      const int nb = (cached + fresh + c.block_size - 1) / c.block_size;
      s.blocks.resize(static_cast<size_t>(nb));
      total_blocks += nb;
      max_blocks_ = std::max(max_blocks_, nb);
      for (int p = 0; p < cached + fresh; ++p) {
        std::vector<float> row(static_cast<size_t>(width_));
        for (float& v : row) v = rng_.uniform();
        s.rows.push_back(std::move(row));
      }
      seqs_.push_back(std::move(s));
    }
    std::vector<int32_t> ids(static_cast<size_t>(total_blocks + 3));  // three blocks nobody uses
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng_.gen());
    size_t next = 0;
    for (SeqSpec& s : seqs_)
      for (int32_t& b : s.blocks) b = ids[next++];
    KvCacheShape shape;
    shape.num_layers = 2;  // layer 1 is the one under test; layer 0 must stay untouched
    shape.num_blocks = static_cast<int32_t>(ids.size());
    shape.block_size = c.block_size;
    shape.kv_heads = c.hkv;
    shape.head_dim = c.d;
    shape.dtype = c.cache;
    cache_ = backend_->create_kv_cache(shape);
    Tensor f = Tensor::empty(DType::f32, {c.d / 2});
    std::copy(inv_freq_.begin(), inv_freq_.end(), f.data<float>());
    rope_.inv_freq = backend_->from_host(f);
    params_.num_heads = c.hq;
    params_.kv_heads = c.hkv;
    params_.head_dim = c.d;
    params_.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.d)));
  }

  // Runs step 1 (the cached prefixes, as prompts) or step 2 (the mixed batch)
  // and checks rope, the cache and attention.
  void step(bool first) {
    BatchBuilder bb(max_blocks_);
    std::vector<std::pair<size_t, int>> tokens;  // (sequence, position) in batch order
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const SeqSpec& q = seqs_[s];
      const int begin = first ? 0 : q.cached, end = first ? q.cached : q.cached + q.fresh;
      if (begin == end) continue;
      bb.add_sequence(std::vector<int32_t>(static_cast<size_t>(end - begin), 1), begin, q.blocks);
      for (int p = begin; p < end; ++p) tokens.emplace_back(s, p);
    }
    const Batch batch = bb.build();
    backend_->begin_step(batch, cache_);
    const auto T = static_cast<int64_t>(tokens.size());
    Tensor qkv = backend_->empty(DType::f32, {T, width_});
    for (int64_t t = 0; t < T; ++t) {
      const auto [s, p] = tokens[static_cast<size_t>(t)];
      std::copy_n(seqs_[s].rows[static_cast<size_t>(p)].data(), width_, qkv.data<float>() + t * width_);
    }
    backend_->rope_and_cache(qkv, rope_, params_, cache_, 1);
    check_rope(qkv, tokens);
    check_cache(qkv, tokens);
    Tensor out = backend_->empty(DType::f32, {T, static_cast<int64_t>(c_.hq) * c_.d});
    backend_->attention(qkv, params_, cache_, 1, out);
    check_attention(qkv, out, tokens);
    for (const Tensor* t : {&cache_.k[0], &cache_.v[0]})
      for (int64_t i = 0; i < t->numel(); ++i) ASSERT_EQ(t->item_f32(i), 0.0f) << "layer 0 was written";
  }

 private:
  size_t cache_index(const SeqSpec& s, int pos, int kvh) const {
    const auto block = static_cast<size_t>(s.blocks[static_cast<size_t>(pos / c_.block_size)]);
    return ((block * static_cast<size_t>(c_.hkv) + static_cast<size_t>(kvh)) * static_cast<size_t>(c_.block_size) +
            static_cast<size_t>(pos % c_.block_size)) *
           static_cast<size_t>(c_.d);
  }

  // The kernel rounds cos and sin (values <= 1), two products and a sum:
  // within 4 ulp of |x_i| + |x_{i + d/2}|. v passes through untouched.
  void check_rope(const Tensor& qkv, const std::vector<std::pair<size_t, int>>& tokens) {
    std::vector<double> ref(static_cast<size_t>(c_.d));
    for (size_t t = 0; t < tokens.size(); ++t) {
      const auto [s, p] = tokens[t];
      const std::vector<float>& raw = seqs_[s].rows[static_cast<size_t>(p)];
      const float* got = qkv.data<float>() + static_cast<int64_t>(t) * width_;
      for (int h = 0; h < c_.hq + c_.hkv; ++h) {
        const float* x = raw.data() + h * c_.d;
        rotate_reference(x, c_.d, p, inv_freq_, ref.data());
        for (int i = 0; i < c_.d; ++i) {
          const int pair = i < c_.d / 2 ? i + c_.d / 2 : i - c_.d / 2;
          const double tol = 4 * kF32Unit * (std::fabs(x[i]) + std::fabs(x[pair]));
          ASSERT_NEAR(got[h * c_.d + i], ref[static_cast<size_t>(i)], tol)
              << "token " << t << " (position " << p << ") head " << h << " element " << i;
        }
      }
      for (int i = (c_.hq + c_.hkv) * c_.d; i < width_; ++i)
        ASSERT_EQ(got[i], raw[static_cast<size_t>(i)]) << "v changed at token " << t;
    }
  }

  // The step's k and v sit at block_tables[s][pos / bs], row pos % bs, rounded
  // to the cache dtype (round to nearest even).
  void check_cache(const Tensor& qkv, const std::vector<std::pair<size_t, int>>& tokens) {
    const Tensor& kc = cache_.k[1];
    const Tensor& vc = cache_.v[1];
    for (size_t t = 0; t < tokens.size(); ++t) {
      const auto [s, p] = tokens[t];
      const float* row = qkv.data<float>() + static_cast<int64_t>(t) * width_;
      for (int h = 0; h < c_.hkv; ++h) {
        const size_t at = cache_index(seqs_[s], p, h);
        for (int i = 0; i < c_.d; ++i) {
          const auto e = static_cast<int64_t>(at) + i;
          ASSERT_EQ(kc.item_f32(e), round_to_cache(row[(c_.hq + h) * c_.d + i]))
              << "k of token " << t << " head " << h << " element " << i;
          ASSERT_EQ(vc.item_f32(e), round_to_cache(row[(c_.hq + c_.hkv + h) * c_.d + i]))
              << "v of token " << t << " head " << h << " element " << i;
        }
      }
    }
  }

  float round_to_cache(float x) const {
    if (c_.cache == DType::bf16) return bf16_bits_to_f32(f32_to_bf16_bits(x));
    if (c_.cache == DType::f16) return f16_bits_to_f32(f32_to_f16_bits(x));
    return x;
  }

  // Reference softmax(q k^T * scale) v in double from the cached k, v and the
  // rotated q. Bound: f32 scores are within e_s = gamma_{d+2} * scale *
  // sum|q k| each; a weight's relative error is then at most 2 e_s plus the
  // exp's few ulp, and the weighted sum over n keys adds gamma_{n+2}; the
  // normalisation shares the same errors, so twice that, times max |v|.
  void check_attention(const Tensor& qkv, const Tensor& out, const std::vector<std::pair<size_t, int>>& tokens) {
    const std::vector<double> kc = widen(cache_.k[1]), vc = widen(cache_.v[1]);
    const int group = c_.hq / c_.hkv, d = c_.d;
    const double scale = params_.scale;
    for (size_t t = 0; t < tokens.size(); ++t) {
      const auto [s, p] = tokens[t];
      for (int h = 0; h < c_.hq; ++h) {
        const int kvh = h / group;
        const float* q = qkv.data<float>() + static_cast<int64_t>(t) * width_ + h * d;
        std::vector<double> score(static_cast<size_t>(p + 1));
        double mx = -1e300, max_mag = 0, max_v = 0;
        for (int j = 0; j <= p; ++j) {
          const size_t at = cache_index(seqs_[s], j, kvh);
          double dot = 0, mag = 0;
          for (int i = 0; i < d; ++i) {
            dot += q[i] * kc[at + static_cast<size_t>(i)];
            mag += std::fabs(q[i] * kc[at + static_cast<size_t>(i)]);
            max_v = std::max(max_v, std::fabs(vc[at + static_cast<size_t>(i)]));
          }
          score[static_cast<size_t>(j)] = dot * scale;
          mx = std::max(mx, dot * scale);
          max_mag = std::max(max_mag, mag);
        }
        double denom = 0;
        for (double& x : score) denom += (x = std::exp(x - mx));
        const double e_s = gamma_f32(d + 2) * scale * max_mag;
        const double tol = 2 * (4 * e_s + 8 * kF32Unit + gamma_f32(p + 3)) * max_v;
        for (int i = 0; i < d; ++i) {
          double ref = 0;
          for (int j = 0; j <= p; ++j)
            ref += score[static_cast<size_t>(j)] * vc[cache_index(seqs_[s], j, kvh) + static_cast<size_t>(i)];
          ref /= denom;
          ASSERT_NEAR(out.data<float>()[static_cast<int64_t>(t) * c_.hq * d + h * d + i], ref, tol)
              << "token " << t << " (position " << p << ") head " << h << " element " << i;
        }
      }
    }
  }

  AttnCase c_;
  Random rng_;
  std::unique_ptr<Backend> backend_;
  std::vector<float> inv_freq_;
  std::vector<SeqSpec> seqs_;
  int width_ = 0, max_blocks_ = 0;
  KvCache cache_;
  RopeTables rope_;
  AttentionParams params_;
};

TEST(CpuAttention, MixedBatchMatchesReference) {
  // (Hq, Hkv, head_dim, block size, cache dtype): MHA, GQA 4 and 8, MQA;
  // head_dim 16/64/128 and 12 (not a multiple of 8: the portable kernel runs
  // even on AVX2); odd block sizes; f32, bf16 and f16 caches.
  const std::vector<AttnCase> cases = {{4, 4, 16, 16, DType::f32},  {8, 2, 64, 16, DType::bf16},
                                       {4, 1, 128, 5, DType::f16},  {4, 2, 12, 7, DType::f32},
                                       {16, 2, 64, 16, DType::f32}, {3, 3, 64, 1, DType::bf16}};
  // (cached, fresh): a decode token, a prefill chunk, a whole prompt, a decode
  // token deep in its context, and a one-token prompt.
  const std::vector<std::pair<int, int>> seqs = {{37, 1}, {20, 9}, {0, 23}, {130, 1}, {0, 1}};
  uint64_t seed = 5000;
  for (const AttnCase& c : cases) {
    for (cpu::Isa isa : testing::available_isas()) {
      testing::IsaScope scope(isa);
      SCOPED_TRACE(::testing::Message() << "Hq=" << c.hq << " Hkv=" << c.hkv << " D=" << c.d << " bs=" << c.block_size
                                        << " cache=" << dtype_name(c.cache) << " isa=" << testing::isa_name(isa)
                                        << " seed=" << seed + 1);
      AttentionRun run(c, ++seed, seqs);
      run.step(true);
      if (::testing::Test::HasFatalFailure()) return;
      run.step(false);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(CpuAttention, LongPromptSpansManyTiles) {
  // 150 tokens with GQA 4: ten 16-token query tiles, the last one partial,
  // each walking up to 38 blocks of 4 keys.
  uint64_t seed = 6000;
  for (cpu::Isa isa : testing::available_isas()) {
    testing::IsaScope scope(isa);
    AttentionRun run({8, 2, 32, 4, DType::f32}, ++seed, {{0, 150}});
    run.step(false);
  }
}

TEST(CpuAttention, RopeAngleIsAnF32Product) {
  // At position 70001 an angle computed in double differs from HF's f32
  // product by up to half an ulp of ~7e4 (0.004 rad), far outside the bound.
  const int d = 8;
  auto backend = make_cpu_backend();
  KvCacheShape shape;
  shape.num_layers = 1;
  shape.num_blocks = 18;
  shape.block_size = 4096;
  shape.kv_heads = 1;
  shape.head_dim = d;
  shape.dtype = DType::f32;
  KvCache cache = backend->create_kv_cache(shape);
  BatchBuilder bb(18);
  std::vector<int32_t> blocks(18);
  std::iota(blocks.begin(), blocks.end(), 0);
  bb.add_sequence({1}, 70001, blocks);
  backend->begin_step(bb.build(), cache);
  Random rng(7000);
  Tensor qkv = rng.tensor(DType::f32, {1, 3 * d});
  const Tensor raw = qkv.contiguous_copy();
  const std::vector<float> inv_freq = inv_freq_of(d);
  Tensor f = Tensor::empty(DType::f32, {d / 2});
  std::copy(inv_freq.begin(), inv_freq.end(), f.data<float>());
  AttentionParams p;
  p.num_heads = 1;
  p.kv_heads = 1;
  p.head_dim = d;
  p.scale = 0.5f;
  backend->rope_and_cache(qkv, RopeTables{f}, p, cache, 0);
  double ref[d];
  for (int h = 0; h < 2; ++h) {
    rotate_reference(raw.data<float>() + h * d, d, 70001, inv_freq, ref);
    for (int i = 0; i < d; ++i) EXPECT_NEAR(qkv.data<float>()[h * d + i], ref[i], 1e-6) << "head " << h << " " << i;
  }
}

TEST(CpuAttention, RejectsMismatchedArguments) {
  auto backend = make_cpu_backend();
  KvCacheShape shape;
  shape.num_layers = 1;
  shape.num_blocks = 2;
  shape.block_size = 4;
  shape.kv_heads = 2;
  shape.head_dim = 8;
  shape.dtype = DType::f32;
  KvCache cache = backend->create_kv_cache(shape);
  BatchBuilder bb(2);
  bb.add_sequence({1, 2, 3}, 0, {1});
  backend->begin_step(bb.build(), cache);
  AttentionParams p;
  p.num_heads = 4;
  p.kv_heads = 2;
  p.head_dim = 8;
  p.scale = 0.35f;
  RopeTables rope{Tensor::empty(DType::f32, {4})};
  Tensor qkv = Tensor::empty(DType::f32, {3, 64});
  EXPECT_NO_THROW(backend->rope_and_cache(qkv, rope, p, cache, 0));
  EXPECT_THROW(backend->rope_and_cache(qkv, rope, p, cache, 1), Error);  // no layer 1
  Tensor qkv_bad = Tensor::empty(DType::f32, {2, 64});
  EXPECT_THROW(backend->rope_and_cache(qkv_bad, rope, p, cache, 0), Error);
  p.kv_heads = 3;
  EXPECT_THROW(backend->rope_and_cache(qkv, rope, p, cache, 0), Error);
  p.kv_heads = 1;
  p.num_heads = 4;
  Tensor out = Tensor::empty(DType::f32, {3, 32});
  EXPECT_THROW(backend->attention(qkv, p, cache, 0, out), Error);  // the cache holds 2 kv heads
}

}  // namespace
}  // namespace flint
