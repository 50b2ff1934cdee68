// The CUDA attention launchers (cuda_attention.h) against the CPU backend's
// rope_and_cache and attention, driven directly with cudaMalloc'd buffers.
//
// Each case builds one step: sequences with `cached` tokens already in the
// cache (random K/V written straight into it) and `fresh` tokens in this step,
// block tables shuffled so no sequence's blocks are contiguous, and wider than
// needed (-1 entries). Every cache row that no position owns holds NaN bytes,
// so a kernel that reads past a context (or forgets to zero-fill) shows NaN;
// outputs and the split-KV workspace are poisoned the same way before the
// launch, so an element left unwritten shows too.
//
// Checks:
//  - rope_and_cache: q and k rotated as the CPU rotates them (within one
//    rounding of the element type: both compute the same f32 value), v left
//    alone, and the whole cache equal to the CPU's (same rows written, the same
//    values, NaN rows untouched).
//  - attention: on identical inputs (the GPU's rotated q and its cache, copied
//    to the CPU), per (token, q head) ||gpu - cpu|| / ||cpu|| within 1e-2 for
//    bf16 and 2e-3 for f16. The error is P's rounding to the element type in
//    the P V product plus the output rounding: about 2u relative (u = 2^-8
//    bf16, 2^-11 f16), so the bounds leave a 3-5x margin.
// Values are fresh per run (random seed, printed on failure).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "backends/backends.h"
#include "backends/cuda/cuda_attention.h"
#include "core/dtype.h"
#include "core/error.h"
#include "gpu/gpu_test_util.h"
#include "ops/batch.h"

namespace flint {
namespace {

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) cuda_ok(cudaMalloc(&p_, bytes_), "cudaMalloc");
  }
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr; }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  void* get() const { return p_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }
  void upload(const void* src, size_t n) { cuda_ok(cudaMemcpy(p_, src, n, cudaMemcpyHostToDevice), "upload"); }
  void download(void* dst, size_t n) const { cuda_ok(cudaMemcpy(dst, p_, n, cudaMemcpyDeviceToHost), "download"); }
  void poison() { cuda_ok(cudaMemset(p_, 0xFF, bytes_), "cudaMemset"); }  // NaN in bf16, f16 and f32

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

template <typename T>
DeviceBuffer upload_vector(const std::vector<T>& v) {
  DeviceBuffer b(std::max<size_t>(v.size(), 1) * sizeof(T));
  if (!v.empty()) b.upload(v.data(), v.size() * sizeof(T));
  return b;
}

struct HeadShape {
  int hq, hkv, d, bs;
  DType dtype;
};

std::string describe(const HeadShape& s) {
  std::ostringstream o;
  o << "Hq=" << s.hq << " Hkv=" << s.hkv << " D=" << s.d << " block_size=" << s.bs << " " << dtype_name(s.dtype);
  return o.str();
}

struct SeqSpec {
  int cached;  // positions already in the cache
  int fresh;   // tokens of this step
};

// Rounds like a store to `t` would (inputs are exactly representable, so the
// GPU and the CPU start from identical values).
float round_to(DType t, float x) {
  uint16_t bits = 0;
  store_from_f32(t, &bits, 0, x);
  return load_as_f32(t, &bits, 0);
}

double unit_roundoff(DType t) { return t == DType::bf16 ? 1.0 / 256 : 1.0 / 2048; }

class AttentionCase {
 public:
  AttentionCase(const HeadShape& shape, std::vector<SeqSpec> seqs, uint64_t seed)
      : s_(shape), seqs_(std::move(seqs)), rng_(seed) {
    width_ = (s_.hq + 2 * s_.hkv) * s_.d;
    int total_blocks = 0, max_blocks = 1;
    std::vector<int> blocks_of;
    for (const SeqSpec& q : seqs_) {
      const int nb = (q.cached + q.fresh + s_.bs - 1) / s_.bs;
      blocks_of.push_back(nb);
      total_blocks += nb;
      max_blocks = std::max(max_blocks, nb);
    }
    num_blocks_ = total_blocks + 3;  // three blocks nobody owns
    std::vector<int32_t> ids(static_cast<size_t>(num_blocks_));
    std::iota(ids.begin(), ids.end(), 0);
    std::shuffle(ids.begin(), ids.end(), rng_);
    BatchBuilder bb(max_blocks + 2);  // wider than needed: -1 entries at each row's end
    size_t next = 0;
    for (size_t i = 0; i < seqs_.size(); ++i) {
      std::vector<int32_t> blocks(ids.begin() + static_cast<long>(next),
                                  ids.begin() + static_cast<long>(next) + blocks_of[i]);
      next += static_cast<size_t>(blocks_of[i]);
      tables_.push_back(blocks);
      bb.add_sequence(std::vector<int32_t>(static_cast<size_t>(seqs_[i].fresh), 1), seqs_[i].cached, blocks);
    }
    batch_ = bb.build();
    for (int32_t q = 0; q < batch_.num_seqs(); ++q)
      for (int32_t t = batch_.query_starts[static_cast<size_t>(q)]; t < batch_.query_starts[static_cast<size_t>(q) + 1];
           ++t)
        token_seq_.push_back(q);

    // Cache: NaN everywhere, random K/V at the cached positions.
    cache_elems_ = static_cast<size_t>(num_blocks_) * s_.hkv * s_.bs * s_.d;
    k_init_.assign(cache_elems_, 0xFFFF);
    v_init_.assign(cache_elems_, 0xFFFF);
    for (size_t i = 0; i < seqs_.size(); ++i)
      for (int p = 0; p < seqs_[i].cached; ++p)
        for (int h = 0; h < s_.hkv; ++h)
          for (int e = 0; e < s_.d; ++e) {
            const size_t at = cache_index(i, p, h) + static_cast<size_t>(e);
            store_from_f32(s_.dtype, k_init_.data(), at, uniform(-1, 1));
            store_from_f32(s_.dtype, v_init_.data(), at, uniform(-1, 1));
          }
    // qkv: q wider than k so that the softmax is neither flat nor one-hot.
    const int T = batch_.num_tokens();
    qkv_in_.resize(static_cast<size_t>(T) * width_);
    for (int t = 0; t < T; ++t)
      for (int i = 0; i < width_; ++i) {
        const float range = i < s_.hq * s_.d ? 3.0f : 1.0f;
        qkv_in_[static_cast<size_t>(t) * width_ + i] = round_to(s_.dtype, uniform(-range, range));
      }
    inv_freq_.resize(static_cast<size_t>(s_.d / 2));
    for (int i = 0; i < s_.d / 2; ++i)
      inv_freq_[static_cast<size_t>(i)] = static_cast<float>(std::pow(500000.0, -2.0 * i / s_.d));
  }

  // Runs both launchers and checks them; returns after the first failure.
  void run() {
    const int T = batch_.num_tokens();
    const size_t qkv_elems = static_cast<size_t>(T) * width_;
    const size_t out_elems = static_cast<size_t>(T) * s_.hq * s_.d;
    // Device inputs.
    std::vector<uint16_t> qkv_bits(qkv_elems);
    for (size_t i = 0; i < qkv_elems; ++i) store_from_f32(s_.dtype, qkv_bits.data(), i, qkv_in_[i]);
    DeviceBuffer qkv = upload_vector(qkv_bits), kc = upload_vector(k_init_), vc = upload_vector(v_init_);
    DeviceBuffer positions = upload_vector(batch_.positions), token_seq = upload_vector(token_seq_);
    DeviceBuffer starts = upload_vector(batch_.query_starts), ctx = upload_vector(batch_.context_lens);
    DeviceBuffer tables = upload_vector(batch_.block_tables), inv_freq = upload_vector(inv_freq_);
    cuda::StepArrays step;
    step.positions = positions.as<int32_t>();
    step.token_seq = token_seq.as<int32_t>();
    step.query_starts = starts.as<int32_t>();
    step.context_lens = ctx.as<int32_t>();
    step.block_tables = tables.as<int32_t>();
    step.num_tokens = T;
    step.num_seqs = batch_.num_seqs();
    step.max_query_len = batch_.max_query_len();
    step.max_blocks_per_seq = batch_.max_blocks_per_seq;
    cuda::AttentionShape shape;
    shape.num_heads = s_.hq;
    shape.kv_heads = s_.hkv;
    shape.head_dim = s_.d;
    shape.block_size = s_.bs;
    shape.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s_.d)));

    cuda::launch_rope_and_cache(qkv.get(), s_.dtype, inv_freq.as<float>(), step, shape, kc.get(), vc.get(), nullptr);
    cuda_ok(cudaDeviceSynchronize(), "rope_and_cache");
    std::vector<uint16_t> gpu_qkv(qkv_elems), gpu_k(cache_elems_), gpu_v(cache_elems_);
    qkv.download(gpu_qkv.data(), qkv_elems * 2);
    kc.download(gpu_k.data(), cache_elems_ * 2);
    vc.download(gpu_v.data(), cache_elems_ * 2);

    // The CPU's rope_and_cache on the same inputs and cache.
    std::unique_ptr<Backend> cpu = make_backend(Device::cpu);
    KvCacheShape cs;
    cs.num_layers = 1;
    cs.num_blocks = num_blocks_;
    cs.block_size = s_.bs;
    cs.kv_heads = s_.hkv;
    cs.head_dim = s_.d;
    cs.dtype = s_.dtype;
    KvCache cache = cpu->create_kv_cache(cs);
    std::memcpy(cache.k[0].raw(), k_init_.data(), cache_elems_ * 2);
    std::memcpy(cache.v[0].raw(), v_init_.data(), cache_elems_ * 2);
    cpu->begin_step(batch_, cache);
    Tensor f = Tensor::empty(DType::f32, {s_.d / 2});
    std::copy(inv_freq_.begin(), inv_freq_.end(), f.data<float>());
    const RopeTables rope{f};
    AttentionParams params;
    params.num_heads = s_.hq;
    params.kv_heads = s_.hkv;
    params.head_dim = s_.d;
    params.scale = shape.scale;
    Tensor cpu_qkv = Tensor::empty(DType::f32, {T, width_});
    std::copy(qkv_in_.begin(), qkv_in_.end(), cpu_qkv.data<float>());
    cpu->rope_and_cache(cpu_qkv, rope, params, cache, 0);
    check_rope(gpu_qkv, cpu_qkv.data<float>());
    if (::testing::Test::HasFatalFailure()) return;
    check_cache("k", gpu_k, cache.k[0]);
    if (::testing::Test::HasFatalFailure()) return;
    check_cache("v", gpu_v, cache.v[0]);
    if (::testing::Test::HasFatalFailure()) return;

    // Attention, on the GPU's rotated q and cache for both.
    const size_t ws_bytes = cuda::attention_workspace_bytes(step, shape);
    DeviceBuffer ws(std::max<size_t>(ws_bytes, 16));
    ws.poison();
    const size_t guard = 4096;  // bytes past the output that must stay untouched
    DeviceBuffer out(out_elems * 2 + guard);
    out.poison();
    cuda::launch_attention(qkv.get(), s_.dtype, step, shape, kc.get(), vc.get(), out.get(), ws.get(), ws_bytes,
                           nullptr);
    cuda_ok(cudaDeviceSynchronize(), "attention");
    std::vector<uint16_t> gpu_out(out_elems + guard / 2);
    out.download(gpu_out.data(), out_elems * 2 + guard);
    for (size_t i = out_elems; i < gpu_out.size(); ++i)
      ASSERT_EQ(gpu_out[i], 0xFFFF) << "attention wrote past its output, element " << i << " of " << out_elems;

    Tensor ref_qkv = Tensor::empty(DType::f32, {T, width_});
    for (size_t i = 0; i < qkv_elems; ++i) ref_qkv.data<float>()[i] = load_as_f32(s_.dtype, gpu_qkv.data(), i);
    std::memcpy(cache.k[0].raw(), gpu_k.data(), cache_elems_ * 2);
    std::memcpy(cache.v[0].raw(), gpu_v.data(), cache_elems_ * 2);
    Tensor ref_out = Tensor::empty(DType::f32, {T, static_cast<int64_t>(s_.hq) * s_.d});
    cpu->attention(ref_qkv, params, cache, 0, ref_out);
    check_attention(gpu_out, ref_out.data<float>(), ws_bytes);
  }

 private:
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(rng_); }

  size_t cache_index(size_t seq, int pos, int kvh) const {
    const auto block = static_cast<size_t>(tables_[seq][static_cast<size_t>(pos / s_.bs)]);
    return ((block * static_cast<size_t>(s_.hkv) + static_cast<size_t>(kvh)) * static_cast<size_t>(s_.bs) +
            static_cast<size_t>(pos % s_.bs)) *
           static_cast<size_t>(s_.d);
  }

  std::string where(int t) const {
    std::ostringstream o;
    o << "token " << t << " (sequence " << token_seq_[static_cast<size_t>(t)] << ", position "
      << batch_.positions[static_cast<size_t>(t)] << ")";
    return o.str();
  }

  void check_rope(const std::vector<uint16_t>& gpu, const float* cpu) {
    const int T = batch_.num_tokens(), d = s_.d;
    const double u = unit_roundoff(s_.dtype);
    for (int t = 0; t < T; ++t) {
      const float* in = qkv_in_.data() + static_cast<size_t>(t) * width_;
      for (int i = 0; i < width_; ++i) {
        const size_t at = static_cast<size_t>(t) * width_ + i;
        const double g = load_as_f32(s_.dtype, gpu.data(), at), c = cpu[at];
        if (i >= (s_.hq + s_.hkv) * d) {
          ASSERT_EQ(g, in[i]) << "v changed: " << where(t) << " element " << i;
          continue;
        }
        // Both compute the same f32 value and then round once; allow the
        // neighbouring value too, in case a cos/sin differs in its last bit.
        const int h = i / d, e = i % d, pair = e < d / 2 ? e + d / 2 : e - d / 2;
        // Below the smallest normal, rounding error is absolute: up to half the
        // subnormal spacing (2^-24 in f16, 2^-133 in bf16).
        const double subnormal_step = s_.dtype == DType::f16 ? std::ldexp(1.0, -24) : std::ldexp(1.0, -133);
        const double tol = 2 * u * std::fabs(c) + subnormal_step +
                           1e-6 * (std::fabs(in[i]) + std::fabs(in[h * d + pair]));
        ASSERT_NEAR(g, c, tol) << "rotated " << (h < s_.hq ? "q" : "k") << " head " << (h < s_.hq ? h : h - s_.hq)
                               << " element " << e << ", " << where(t) << ", input " << in[i];
      }
    }
  }

  void check_cache(const char* name, const std::vector<uint16_t>& gpu, const Tensor& cpu) {
    const double u = unit_roundoff(s_.dtype);
    for (size_t i = 0; i < cache_elems_; ++i) {
      const float g = load_as_f32(s_.dtype, gpu.data(), i), c = cpu.item_f32(static_cast<int64_t>(i));
      const size_t row = i / static_cast<size_t>(s_.d);
      const size_t pos_in_block = row % static_cast<size_t>(s_.bs), head = row / s_.bs % s_.hkv,
                   block = row / s_.bs / s_.hkv;
      if (std::isnan(c)) {
        ASSERT_TRUE(std::isnan(g)) << name << " cache written where the CPU wrote nothing: block " << block << " head "
                                   << head << " row " << pos_in_block << " element " << i % s_.d;
        continue;
      }
      ASSERT_NEAR(g, c, 2 * u * std::fabs(c) + 1e-30) << name << " cache: block " << block << " head " << head
                                                      << " row " << pos_in_block << " element " << i % s_.d;
    }
  }

  void check_attention(const std::vector<uint16_t>& gpu, const float* ref, size_t ws_bytes) {
    const int T = batch_.num_tokens(), d = s_.d;
    const double bound = s_.dtype == DType::bf16 ? 1e-2 : 2e-3;
    double worst = 0;
    for (int t = 0; t < T; ++t) {
      for (int h = 0; h < s_.hq; ++h) {
        const size_t base = (static_cast<size_t>(t) * s_.hq + h) * d;
        double diff2 = 0, ref2 = 0, max_diff = -1;
        int worst_e = 0;
        for (int e = 0; e < d; ++e) {
          const double g = load_as_f32(s_.dtype, gpu.data(), base + e), r = ref[base + e];
          const double dd = std::isnan(g) ? INFINITY : g - r;
          diff2 += dd * dd;
          ref2 += r * r;
          if (!(std::fabs(dd) <= max_diff)) {
            max_diff = std::fabs(dd);
            worst_e = e;
          }
        }
        const double rel = std::sqrt(diff2) / std::max(std::sqrt(ref2), 1e-30);
        worst = std::max(worst, rel);
        ASSERT_LE(rel, bound) << "attention output of " << where(t) << " q head " << h << " (kv head "
                              << h / (s_.hq / s_.hkv) << "): ||gpu - cpu|| / ||cpu|| = " << rel
                              << "; largest at element " << worst_e << ": gpu "
                              << load_as_f32(s_.dtype, gpu.data(), base + worst_e) << ", cpu " << ref[base + worst_e]
                              << "; ||cpu|| = " << std::sqrt(ref2)
                              << (ws_bytes > 0 ? " (split-KV path)" : " (single pass)");
      }
    }
    std::printf("  %s, %d tokens, %d sequences: worst relative error %.2e%s\n", describe(s_).c_str(), T,
                batch_.num_seqs(), worst, ws_bytes > 0 ? " (split-KV)" : "");
  }

  HeadShape s_;
  std::vector<SeqSpec> seqs_;
  std::mt19937_64 rng_;
  int width_ = 0, num_blocks_ = 0;
  Batch batch_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<int32_t> token_seq_;
  size_t cache_elems_ = 0;
  std::vector<uint16_t> k_init_, v_init_;
  std::vector<float> qkv_in_;
  std::vector<float> inv_freq_;
};

// GQA 4:1 (Llama 3 8B), MHA with D 64, MQA 8:1 with 32-token blocks, f16,
// groups of 3 (Llama 3.2 3B), a group wider than a decode tile (32:1), and a
// block size that is not a power of two.
const std::vector<HeadShape> kShapes = {
    {32, 8, 128, 16, DType::bf16}, {8, 8, 64, 16, DType::bf16},  {8, 1, 128, 32, DType::bf16},
    {16, 4, 64, 32, DType::f16},   {12, 4, 128, 16, DType::f16}, {32, 1, 64, 16, DType::bf16},
    {8, 2, 128, 48, DType::bf16},
};

void run_all_shapes(const std::vector<SeqSpec>& seqs, const std::vector<HeadShape>& shapes = kShapes) {
  for (const HeadShape& s : shapes) {
    const uint64_t seed = testing::fresh_seed();
    SCOPED_TRACE(describe(s) + " seed=" + std::to_string(seed));
    AttentionCase c(s, seqs, seed);
    c.run();
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(CudaAttention, PrefillOfSeveralPrompts) {
  FLINT_REQUIRE_GPU();
  run_all_shapes({{0, 1}, {0, 7}, {0, 64}, {0, 100}, {0, 257}});
}

TEST(CudaAttention, ChunkedPrefillAfterCachedTokens) {
  FLINT_REQUIRE_GPU();
  run_all_shapes({{300, 77}, {16, 50}, {5, 3}, {64, 64}, {1, 130}});
}

TEST(CudaAttention, DecodeAtVariedContextLengths) {
  FLINT_REQUIRE_GPU();
  // Contexts 1, 15, 16, 17, 300 and 2000 (the split-KV path on any GPU with
  // more than a handful of SMs).
  run_all_shapes({{0, 1}, {14, 1}, {15, 1}, {16, 1}, {299, 1}, {1999, 1}});
}

TEST(CudaAttention, DecodeWithSeveralTokensPerSequence) {
  FLINT_REQUIRE_GPU();
  // max_query_len 4 still runs the decode kernel: a tile holds several tokens.
  run_all_shapes({{50, 2}, {10, 3}, {200, 1}, {0, 4}, {33, 4}});
}

TEST(CudaAttention, MixedBatch) {
  FLINT_REQUIRE_GPU();
  // Decode tokens, a prefill chunk, whole prompts, a long chunk deep in its context.
  run_all_shapes({{37, 1}, {20, 9}, {0, 23}, {130, 1}, {0, 1}, {1000, 100}});
}

TEST(CudaAttention, LargeDecodeBatch) {
  FLINT_REQUIRE_GPU();
  // 64 sequences x 8 kv heads: enough CTAs that the decode kernel writes its
  // output directly (no split-KV) on an H100.
  std::mt19937_64 gen(testing::fresh_seed());
  std::vector<SeqSpec> seqs;
  for (int i = 0; i < 64; ++i) seqs.push_back({std::uniform_int_distribution<int>(0, 400)(gen), 1});
  run_all_shapes(seqs, {{32, 8, 128, 16, DType::bf16}, {32, 8, 64, 32, DType::f16}});
}

TEST(CudaAttention, LongPrompt) {
  FLINT_REQUIRE_GPU();
  run_all_shapes({{0, 1100}}, {{32, 8, 128, 16, DType::bf16}, {8, 8, 64, 16, DType::f16}});
}

// On sm_90 prefill-shaped steps run the wgmma kernel and the cases above test
// it; FLINT_CUDA_ATTENTION=mma sends them to the mma.sync kernel (what other
// GPUs run), read at each launch: the prefill cases again on that kernel.
TEST(CudaAttention, PrefillOnTheMmaSyncKernel) {
  FLINT_REQUIRE_GPU();
  struct MmaSyncOnly {
    MmaSyncOnly() { setenv("FLINT_CUDA_ATTENTION", "mma", 1); }
    ~MmaSyncOnly() { unsetenv("FLINT_CUDA_ATTENTION"); }
  } scoped;
  run_all_shapes({{0, 1}, {0, 7}, {0, 64}, {0, 100}, {0, 257}});
  if (::testing::Test::HasFatalFailure()) return;
  run_all_shapes({{300, 77}, {16, 50}, {5, 3}, {64, 64}, {1, 130}});
  if (::testing::Test::HasFatalFailure()) return;
  run_all_shapes({{37, 1}, {20, 9}, {0, 23}, {130, 1}, {0, 1}, {1000, 100}});
  if (::testing::Test::HasFatalFailure()) return;
  run_all_shapes({{0, 1100}}, {{32, 8, 128, 16, DType::bf16}, {8, 8, 64, 16, DType::f16}});
}

TEST(CudaAttention, RejectsWhatItCannotRun) {
  FLINT_REQUIRE_GPU();
  cuda::StepArrays step;
  step.num_tokens = 1;
  step.num_seqs = 1;
  step.max_query_len = 1;
  step.max_blocks_per_seq = 8;
  cuda::AttentionShape shape;
  shape.num_heads = 4;
  shape.kv_heads = 2;
  shape.head_dim = 96;
  EXPECT_THROW(
      cuda::launch_attention(nullptr, DType::bf16, step, shape, nullptr, nullptr, nullptr, nullptr, 0, nullptr), Error);
  shape.head_dim = 128;
  shape.kv_heads = 3;
  EXPECT_THROW(cuda::attention_workspace_bytes(step, shape), Error);
  shape.kv_heads = 2;
  EXPECT_THROW(cuda::launch_attention(nullptr, DType::f32, step, shape, nullptr, nullptr, nullptr, nullptr, 0, nullptr),
               Error);
  // One decode token over 8 blocks on a GPU with more than 8 SMs splits the
  // keys; a workspace smaller than asked for is refused.
  const size_t need = cuda::attention_workspace_bytes(step, shape);
  if (need > 0) {
    EXPECT_THROW(cuda::launch_attention(nullptr, DType::bf16, step, shape, nullptr, nullptr, nullptr, nullptr, need - 4,
                                        nullptr),
                 Error);
  }
}

}  // namespace
}  // namespace flint
