// The CUDA backend: argument checks, memory and the step's arrays live here;
// kernels are in the .cu files behind cuda_kernels.h (row-wise ops, GEMV),
// cuda_linear.h (cuBLASLt) and cuda_attention.h (RoPE, paged attention).
//
// Dtypes: activations (and so the KV cache) are bf16; weight matrices are
// bf16 whatever the checkpoint holds (f32 and f16 are rounded once, on the
// GPU, at load); norm weights and biases are f32; every kernel accumulates in
// f32. bf16 rather than f16: it has f32's range, so Llama's residual stream
// (which grows to the hundreds in real checkpoints) cannot overflow, and
// Llama checkpoints are published in bf16, so their weights are used exactly.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <cstdlib>
#include <map>
#include <string_view>
#include <tuple>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_attention.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_kernels.h"
#include "backends/cuda/cuda_linear.h"
#include "backends/cuda/cuda_memory.h"
#include "backends/cuda/cuda_trace.h"
#include "core/error.h"

namespace flint {
namespace {

constexpr DType kAct = DType::bf16;
// Room kept free beside the weights: CUDA context, cuBLASLt workspace, a
// step's activations.
constexpr uint64_t kWeightHeadroomBytes = uint64_t{1} << 30;

// Decode steps are padded up to one of these sequence counts (docs/CUDA.md).
constexpr int32_t kGraphBuckets[] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256};
constexpr size_t kArenaAlign = 256;
constexpr size_t kMaxGraphs = 64;  // more shapes than this: drop them all and re-capture

size_t align_up(size_t n) { return (n + kArenaAlign - 1) / kArenaAlign * kArenaAlign; }

int32_t graph_bucket(int32_t seqs) {
  for (int32_t b : kGraphBuckets)
    if (seqs <= b) return b;
  return 0;
}

bool is_float_weight(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

std::string gigabytes(uint64_t bytes) { return fmt::format("{:.2f} GB", static_cast<double>(bytes) / 1e9); }

void check_act(const Tensor& t, const char* op, const char* what, const Shape& shape) {
  FLINT_CHECK(t.defined() && t.device() == Device::cuda, "{}: {} must be a CUDA tensor", op, what);
  FLINT_CHECK(t.dtype() == kAct, "{}: {} must be bf16, got {}", op, what, dtype_name(t.dtype()));
  FLINT_CHECK(t.is_contiguous(), "{}: {} must be contiguous", op, what);
  FLINT_CHECK(t.shape() == shape, "{}: {} has shape {}, expected {}", op, what, shape_to_string(t.shape()),
              shape_to_string(shape));
}

void check_device(const Tensor& t, DType dtype, const Shape& shape, const char* op, const char* what) {
  FLINT_CHECK(t.defined() && t.device() == Device::cuda && t.is_contiguous(),
              "{}: {} must be a contiguous CUDA tensor (prepared by this backend)", op, what);
  FLINT_CHECK(t.dtype() == dtype && t.shape() == shape, "{}: {} is {} {}, expected {} {}", op, what,
              dtype_name(t.dtype()), shape_to_string(t.shape()), dtype_name(dtype), shape_to_string(shape));
}

// Checks linear()'s operands; returns the bias (null when there is none).
const float* check_linear(const Tensor& x, const Linear& w, const Tensor& out, const char* op) {
  FLINT_CHECK(x.dim() == 2, "{}: x must be [N, in], got {}", op, shape_to_string(x.shape()));
  const int64_t n = x.size(0);
  check_act(x, op, "x", {n, w.in_features});
  FLINT_CHECK(out.defined() && out.device() == Device::cuda && out.is_contiguous() &&
                  (out.dtype() == DType::bf16 || out.dtype() == DType::f32),
              "{}: out must be a contiguous CUDA bf16 or f32 tensor", op);
  FLINT_CHECK(out.shape() == (Shape{n, w.out_features}), "{}: out has shape {}, expected [{}, {}]", op,
              shape_to_string(out.shape()), n, w.out_features);
  FLINT_CHECK(w.parts.size() == 1, "{}: {} weight parts; the CUDA backend takes one fused matrix "
                                   "(use its prepare_linear)", op, w.parts.size());
  check_device(w.parts.front(), DType::bf16, {w.out_features, w.in_features}, op, "weight");
  if (!w.bias.defined()) return nullptr;
  check_device(w.bias, DType::f32, {w.out_features}, op, "bias");
  return w.bias.data<float>();
}

// The skinny GEMV's arguments for x W^T + b over x's rows.
cuda::SkinnyGemm skinny_gemm_args(const Tensor& x, const Linear& w, const float* bias, Tensor& out,
                                  cuda::SkinnyEpilogue epilogue) {
  return {.x = x.raw(),
          .n = x.size(0),
          .w = w.parts.front().raw(),
          .bias = bias,
          .out = out.raw(),
          .out_dtype = out.dtype(),
          .out_features = w.out_features,
          .in_features = w.in_features,
          .epilogue = epilogue};
}

// For A/B runs: FLINT_CUDA_FUSE=0 turns the options' fusions off,
// FLINT_CUDA_COMBINE=kernel the split-KV merge in the o projection alone.
void apply_fusion_env(CudaBackendOptions& o) {
  const char* v = std::getenv("FLINT_CUDA_FUSE");
  if (v != nullptr && (std::string_view(v) == "0" || std::string_view(v) == "off")) {
    o.rope_into_gemv = false;
    o.merge_splits_into_gemv = false;
  }
  const char* combine = std::getenv("FLINT_CUDA_COMBINE");
  if (combine != nullptr && std::string_view(combine) == "kernel") o.merge_splits_into_gemv = false;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const CudaBackendOptions& options)
      : context_(std::make_shared<cuda::StreamContext>(current_device())),
        linear_(context_->stream(), options.gemv_max_rows),
        step_upload_(context_),
        rows_upload_(context_),
        sample_upload_(context_),
        graph_mode_(options.graphs),
        rope_in_gemv_(options.rope_into_gemv),
        merge_in_gemv_(options.merge_splits_into_gemv) {
    FLINT_CHECK(options.gemv_max_rows >= 0 && options.gemv_max_rows <= cuda::kSkinnyMaxRows,
                "gemv_max_rows must be in [0, {}], got {}", cuda::kSkinnyMaxRows, options.gemv_max_rows);
    cudaDeviceProp p{};
    FLINT_CUDA_CHECK(cudaGetDeviceProperties(&p, context_->device()));
    device_name_ = p.name;
    FLINT_CUDA_CHECK(cudaEventCreateWithFlags(&samples_copied_, cudaEventDisableTiming));
    grow_samples(kInitialSamples);
  }

  ~CudaBackend() override {
    cudaStreamSynchronize(stream());
    for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
    cudaEventDestroy(samples_copied_);
  }

  Device device() const override { return Device::cuda; }
  std::string name() const override { return "cuda"; }
  DType activation_dtype() const override { return kAct; }

  Tensor empty(DType dtype, Shape shape) override {
    if (arena_mode_ == ArenaMode::off) return cuda::pooled_tensor(context_, dtype, std::move(shape));
    const size_t bytes = align_up(dtype_bytes(dtype, static_cast<uint64_t>(shape_numel(shape))));
    const size_t at = arena_used_;
    arena_used_ += bytes;
    if (arena_mode_ == ArenaMode::measure) return cuda::pooled_tensor(context_, dtype, std::move(shape));
    // Recording a graph: fixed addresses, the ones every replay uses.
    FLINT_CHECK(arena_used_ <= arena_->size(), "cuda graph arena of {} bytes overflows ({} needed): the step "
                "allocated more while recording than while measuring", arena_->size(), arena_used_);
    return Tensor::wrap(arena_, at, dtype, std::move(shape));
  }

  // 1-D weights (norms, biases) become f32, matrices bf16; `compute_dtype` is
  // not consulted (see the top of this file).
  Tensor prepare_weight(const Tensor& src, DType compute_dtype) override {
    (void)compute_dtype;
    check_weight_source(src, "prepare_weight");
    const DType target = src.dim() <= 1 ? DType::f32 : DType::bf16;
    if (src.device() == Device::cuda && src.is_contiguous() && src.dtype() == target) return src;
    Tensor out = device_tensor(target, src.shape());
    copy_converted(src, out.raw(), target);
    FLINT_CUDA_CHECK(cudaStreamSynchronize(stream()));  // load time; the source may go away now
    return out;
  }

  // Fuses the parts into one bf16 [out_features, in_features] matrix.
  Linear prepare_linear(const std::vector<Tensor>& parts, const Tensor& bias, DType compute_dtype) override {
    FLINT_CHECK(!parts.empty(), "prepare_linear: no weight parts");
    Linear l;
    l.in_features = parts.front().dim() == 2 ? parts.front().size(1) : -1;
    for (const Tensor& part : parts) {
      check_weight_source(part, "prepare_linear");
      FLINT_CHECK(part.dim() == 2 && part.size(1) == l.in_features, "linear parts disagree: {} vs in_features {}",
                  shape_to_string(part.shape()), l.in_features);
      l.out_features += part.size(0);
    }
    if (parts.size() == 1) {
      l.parts.push_back(prepare_weight(parts.front(), compute_dtype));
    } else {
      Tensor fused = device_tensor(DType::bf16, {l.out_features, l.in_features});
      size_t offset = 0;
      for (const Tensor& part : parts) {
        copy_converted(part, fused.raw() + offset, DType::bf16);
        offset += dtype_bytes(DType::bf16, static_cast<uint64_t>(part.numel()));
      }
      FLINT_CUDA_CHECK(cudaStreamSynchronize(stream()));
      l.parts.push_back(std::move(fused));
    }
    if (bias.defined()) {
      FLINT_CHECK(bias.numel() == l.out_features, "bias of {} elements for {} outputs", bias.numel(),
                  l.out_features);
      l.bias = prepare_weight(bias.reshape({l.out_features}), DType::f32);
    }
    return l;
  }

  void check_weights_fit(int64_t elements, const std::string& model) override {
    size_t free_b = 0, total_b = 0;
    FLINT_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    const uint64_t need = dtype_bytes(DType::bf16, static_cast<uint64_t>(elements));
    FLINT_CHECK(need + kWeightHeadroomBytes <= free_b,
                "model does not fit on the GPU: {} needs {} of bf16 weights (+{} of headroom), and {} has {} free "
                "of {}",
                model, gigabytes(need), gigabytes(kWeightHeadroomBytes), device_name_, gigabytes(free_b),
                gigabytes(total_b));
  }

  Tensor dummy_weight(DType dtype, const Shape& shape, uint64_t key, bool is_norm) override {
    FLINT_CHECK(is_float_weight(dtype), "dummy weights on CUDA must be f32, bf16 or f16, not {}", dtype_name(dtype));
    Tensor t = device_tensor(dtype, shape);
    cuda::launch_fill_dummy(t.raw(), dtype, static_cast<uint64_t>(t.numel()), key, is_norm, stream());
    // Weights are complete when handed out, as prepare_* leave them: kernels
    // read them before their programmatic-launch wait (cuda_launch.cuh).
    FLINT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return t;
  }

  KvCache create_kv_cache(const KvCacheShape& shape) override {
    shape.check();
    FLINT_CHECK(shape.dtype == kAct, "the CUDA backend keeps K/V in bf16 (its activation dtype), not {}",
                dtype_name(shape.dtype));
    // Memory the pool keeps but no tensor uses goes back before a large allocation.
    FLINT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    FLINT_CUDA_CHECK(cudaMemPoolTrimTo(context_->pool(), 0));
    size_t free_b = 0, total_b = 0;
    FLINT_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    // One block more per layer than asked for: block `num_blocks` is the
    // scratch block that the padding sequences of a graph step write and read
    // (no Batch may name it; Batch::validate rejects it).
    const size_t layer_bytes = kv_layer_bytes(shape);
    const uint64_t bytes = 2 * static_cast<uint64_t>(shape.num_layers) * layer_bytes;
    FLINT_CHECK(bytes <= free_b, "KV cache of {} blocks x {} layers needs {}; {} has {} free of {}",
                shape.num_blocks, shape.num_layers, gigabytes(bytes), device_name_, gigabytes(free_b),
                gigabytes(total_b));
    auto storage = std::make_shared<CudaStorage>(bytes);
    // Zeros, not garbage, in positions no sequence has written: a kernel that
    // weights a masked position by 0 must not meet a NaN there.
    FLINT_CUDA_CHECK(cudaMemsetAsync(storage->data(), 0, bytes, stream()));
    KvCache cache;
    cache.shape = shape;
    const Shape s = {shape.num_blocks, shape.kv_heads, shape.block_size, shape.head_dim};
    for (int32_t l = 0; l < shape.num_layers; ++l) {
      cache.k.push_back(Tensor::wrap(storage, (2 * static_cast<size_t>(l)) * layer_bytes, shape.dtype, s));
      cache.v.push_back(Tensor::wrap(storage, (2 * static_cast<size_t>(l) + 1) * layer_bytes, shape.dtype, s));
    }
    return cache;
  }

  Tensor to_host(const Tensor& t) override {
    if (t.device() == Device::cpu) return t.contiguous_copy();
    FLINT_CHECK(t.is_contiguous(), "to_host needs a contiguous CUDA tensor");
    Tensor host = Tensor::empty(t.dtype(), t.shape());
    if (t.nbytes() > 0)
      FLINT_CUDA_CHECK(cudaMemcpyAsync(host.raw(), t.raw(), t.nbytes(), cudaMemcpyDeviceToHost, stream()));
    FLINT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    return host;
  }

  Tensor from_host(const Tensor& t) override {
    FLINT_CHECK(t.defined() && t.device() == Device::cpu, "from_host needs a host tensor");
    const Tensor src = t.is_contiguous() ? t : t.contiguous_copy();
    Tensor out = empty(src.dtype(), src.shape());
    if (src.nbytes() > 0)
      FLINT_CUDA_CHECK(cudaMemcpyAsync(out.raw(), src.raw(), src.nbytes(), cudaMemcpyHostToDevice, stream()));
    return out;
  }

  void synchronize() override { FLINT_CUDA_CHECK(cudaStreamSynchronize(stream())); }

  void begin_step(const Batch& batch, const KvCache& cache) override {
    batch.validate(cache.shape.block_size, cache.shape.num_blocks);
    set_step(batch, cache.shape, nullptr);
  }

  Tensor run_step(const Batch& batch, KvCache& cache, uint64_t body_key, const StepBody& body) override {
    if (graph_mode_ == CudaGraphMode::off || !graph_step_shape(batch, cache)) {
      begin_step(batch, cache);
      return body(batch);
    }
    batch.validate(cache.shape.block_size, cache.shape.num_blocks);
    const auto S = static_cast<int64_t>(batch.num_seqs());
    const Batch padded = pad_decode_step(batch, cache.shape);
    const GraphKey key{body_key, reinterpret_cast<uintptr_t>(cache.k.front().raw()), cache.shape.num_blocks,
                       cache.shape.block_size, padded.num_seqs(), padded.max_blocks_per_seq};
    if (graph_mode_ == CudaGraphMode::on) {
      auto it = graphs_.find(key);
      if (it != graphs_.end()) {
        // Replay: the step's arrays go to the addresses the graph reads, then
        // one launch runs the whole forward.
        check_step_tokens(batch.token_ids, batch.token_from_sample, it->second.vocab);
        step_shape_ = cache.shape;
        set_step(padded, cache.shape, arena_->data());
        FLINT_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream()));
        return it->second.logits.slice(0, 0, S);
      }
    }
    // First step of this shape (or eager mode): run it op by op, measuring
    // what it allocates; then record it for the next steps.
    step_shape_ = cache.shape;
    set_step(padded, cache.shape, nullptr);
    arena_mode_ = ArenaMode::measure;
    arena_used_ = 0;
    measured_workspace_ = 0;
    Tensor out;
    try {
      out = body(padded);
    } catch (...) {
      arena_mode_ = ArenaMode::off;
      throw;
    }
    arena_mode_ = ArenaMode::off;
    if (graph_mode_ == CudaGraphMode::on) record_graph(key, padded, cache, body, arena_used_, measured_workspace_);
    return out.slice(0, 0, S);
  }

 private:
  void set_step(const Batch& batch, const KvCacheShape& shape, std::byte* fixed_dst) {
    cuda::trace::on_step(stream());
    host_token_ids_ = batch.token_ids;
    host_logits_rows_ = batch.logits_rows;
    step_shape_ = shape;
    host_token_from_sample_ = batch.token_from_sample;
    const auto T = static_cast<size_t>(batch.num_tokens()), S = static_cast<size_t>(batch.num_seqs());
    // One int32 array, one copy: token ids, positions, token_seq, query_starts,
    // context_lens, block tables, logits rows, token_from_sample (-1: none).
    std::vector<int32_t>& a = staging_;
    a.clear();
    a.insert(a.end(), batch.token_ids.begin(), batch.token_ids.end());
    a.insert(a.end(), batch.positions.begin(), batch.positions.end());
    for (size_t s = 0; s < S; ++s)
      a.insert(a.end(), static_cast<size_t>(batch.query_starts[s + 1] - batch.query_starts[s]),
               static_cast<int32_t>(s));
    a.insert(a.end(), batch.query_starts.begin(), batch.query_starts.end());
    a.insert(a.end(), batch.context_lens.begin(), batch.context_lens.end());
    a.insert(a.end(), batch.block_tables.begin(), batch.block_tables.end());
    a.insert(a.end(), batch.logits_rows.begin(), batch.logits_rows.end());
    if (batch.token_from_sample.empty())
      a.insert(a.end(), T, -1);
    else
      a.insert(a.end(), batch.token_from_sample.begin(), batch.token_from_sample.end());
    const auto* d = reinterpret_cast<const int32_t*>(step_upload_.upload(a.data(), a.size() * sizeof(int32_t), fixed_dst));
    token_ids_ = d;
    step_.positions = d + T;
    step_.token_seq = d + 2 * T;
    step_.query_starts = d + 3 * T;
    step_.context_lens = step_.query_starts + S + 1;
    step_.block_tables = step_.context_lens + S;
    logits_rows_ = step_.block_tables + S * static_cast<size_t>(batch.max_blocks_per_seq);
    token_from_sample_ = logits_rows_ + batch.logits_rows.size();
    step_.num_tokens = batch.num_tokens();
    step_.num_seqs = batch.num_seqs();
    step_.max_query_len = batch.max_query_len();
    step_.max_blocks_per_seq = batch.max_blocks_per_seq;
    have_step_ = true;
    ++step_serial_;
  }

 public:

  void embedding(const Tensor& table, Tensor& out) override {
    require_step("embedding");
    FLINT_CHECK(table.dim() == 2, "embedding: table must be [vocab, hidden], got {}", shape_to_string(table.shape()));
    check_device(table, DType::bf16, table.shape(), "embedding", "table");
    const int64_t vocab = table.size(0), h = table.size(1), n = step_.num_tokens;
    recorded_vocab_ = vocab;
    check_act(out, "embedding", "out", {n, h});
    check_step_tokens(host_token_ids_, host_token_from_sample_, vocab);
    cuda::launch_embedding(table.raw(), token_ids_, token_from_sample_, samples_, static_cast<int32_t>(vocab), n, h,
                           out.raw(), stream());
  }

  void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    FLINT_CHECK(x.dim() == 2, "rms_norm: x must be [N, H], got {}", shape_to_string(x.shape()));
    check_act(x, "rms_norm", "x", x.shape());
    check_act(out, "rms_norm", "out", x.shape());
    check_device(weight, DType::f32, {x.size(1)}, "rms_norm", "weight");
    cuda::launch_rms_norm(x.raw(), weight.data<float>(), x.size(0), x.size(1), eps, out.raw(), stream());
  }

  void linear(const Tensor& x, const Linear& w, Tensor& out) override {
    const float* bias = check_linear(x, w, out, "linear");
    linear_.run(x.raw(), x.size(0), w.parts.front().raw(), bias, out.raw(), out.dtype(), w.out_features,
                w.in_features);
  }

  // The lm_head: sampling, not another weight stream, follows, so the GEMV's
  // CTAs claim tiles and end together (cuda_gemv_kernels.cu).
  void rms_norm_linear(const Tensor& x, const Tensor& norm_weight, float eps, const Linear& w, Tensor& normed,
                       Tensor& out) override {
    rms_norm(x, norm_weight, eps, normed);
    const float* bias = check_linear(normed, w, out, "rms_norm_linear");
    linear_.run(normed.raw(), normed.size(0), w.parts.front().raw(), bias, out.raw(), out.dtype(), w.out_features,
                w.in_features, /*accumulate=*/false, /*claim_tiles=*/true);
  }

  // Adds in the GEMV's epilogue or as cuBLASLt's C (cuda_linear.h); scratch is not used.
  void linear_add(const Tensor& x, const Linear& w, Tensor& residual, Tensor& scratch) override {
    (void)scratch;
    const float* bias = check_linear(x, w, residual, "linear_add");
    check_act(residual, "linear_add", "residual", residual.shape());
    FLINT_CHECK(residual.raw() != x.raw(), "linear_add: residual must be a tensor of its own, not x");
    linear_.run(x.raw(), x.size(0), w.parts.front().raw(), bias, residual.raw(), residual.dtype(), w.out_features,
                w.in_features, /*accumulate=*/true);
  }

  // Decode-sized steps: the o projection's GEMV combines the attention's
  // split-KV partials itself (SkinnyGemm::merge), so no combine kernel runs
  // between the two; its CTAs claim their tiles, since the attention's CTAs
  // still hold SMs as they start, so some start late (cuda_gemv_kernels.cu).
  // scratch is not used (see linear_add).
  void attention_linear_add(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer,
                            Tensor& attn, const Linear& o, Tensor& residual, Tensor&) override {
    const char* op = "attention_linear_add";
    check_attention_args(qkv, p, cache, layer, op);
    check_act(attn, op, "attn", {step_.num_tokens, static_cast<int64_t>(p.num_heads) * p.head_dim});
    const float* bias = check_linear(attn, o, residual, op);
    check_act(residual, op, "residual", residual.shape());
    FLINT_CHECK(residual.raw() != attn.raw(), "{}: residual must be a tensor of its own, not attn", op);
    const int64_t n = attn.size(0);
    const bool merge = merge_in_gemv_ && cuda::skinny_gemm_merges(n, o.in_features) &&
                       linear_.streams(attn.raw(), n, o.parts.front().raw(), o.in_features);
    cuda::SplitKvPartials partials;
    run_attention(qkv, p, cache, layer, attn, merge ? &partials : nullptr);
    if (partials.num_splits == 0) {
      linear_.run(attn.raw(), n, o.parts.front().raw(), bias, residual.raw(), residual.dtype(), o.out_features,
                  o.in_features, /*accumulate=*/true, /*claim_tiles=*/true);
      return;
    }
    cuda::SkinnyGemm g = skinny_gemm_args(attn, o, bias, residual, cuda::SkinnyEpilogue::accumulate);
    g.tile_counter = linear_.next_tile_counter();
    g.merge = partials;
    cuda::launch_skinny_gemm(g, stream());
  }

  // Decode-sized batches: rms_norm, then one GEMV that writes silu(gate) * up.
  void rms_norm_linear_swiglu(const Tensor& x, const Tensor& norm_weight, float eps, const Linear& gate_up,
                              Tensor& normed, Tensor& gate_up_out, Tensor& out) override {
    const float* bias = check_linear(x, gate_up, gate_up_out, "rms_norm_linear_swiglu");
    check_device(norm_weight, DType::f32, {gate_up.in_features}, "rms_norm_linear_swiglu", "norm weight");
    FLINT_CHECK(gate_up.out_features % 2 == 0, "rms_norm_linear_swiglu: gate_up has {} rows, expected 2F",
                gate_up.out_features);
    const int64_t n = x.size(0), f = gate_up.out_features / 2;
    check_act(out, "rms_norm_linear_swiglu", "out", {n, f});
    if (!linear_.streams(x.raw(), n, gate_up.parts.front().raw(), gate_up.in_features)) {
      Backend::rms_norm_linear_swiglu(x, norm_weight, eps, gate_up, normed, gate_up_out, out);
      return;
    }
    rms_norm(x, norm_weight, eps, normed);
    cuda::SkinnyGemm g = skinny_gemm_args(normed, gate_up, bias, out, cuda::SkinnyEpilogue::swiglu);
    g.out_features = f;
    cuda::launch_skinny_gemm(g, stream());
  }

  void rope_and_cache(Tensor& qkv, const RopeTables& rope, const AttentionParams& p, KvCache& cache,
                      int32_t layer) override {
    check_attention_args(qkv, p, cache, layer, "rope_and_cache");
    check_device(rope.inv_freq, DType::f32, {p.head_dim / 2}, "rope_and_cache", "inv_freq");
    const auto l = static_cast<size_t>(layer);
    cuda::launch_rope_and_cache(qkv.raw(), kAct, rope.inv_freq.data<float>(), step_, attention_shape(p),
                                cache.k[l].raw(), cache.v[l].raw(), stream());
  }

  // Decode-sized steps: rms_norm, then one weight-streaming kernel projects,
  // rotates q and k and writes k and v to the cache (cuda_gemv_kernels.cu).
  void rms_norm_qkv_rope(const Tensor& x, const Tensor& norm_weight, float eps, const Linear& qkv_weight,
                         const RopeTables& rope, const AttentionParams& p, KvCache& cache, int32_t layer,
                         Tensor& normed, Tensor& qkv) override {
    const char* op = "rms_norm_qkv_rope";
    const float* bias = check_linear(x, qkv_weight, qkv, op);
    check_device(norm_weight, DType::f32, {qkv_weight.in_features}, op, "norm weight");
    check_attention_args(qkv, p, cache, layer, op);
    check_device(rope.inv_freq, DType::f32, {p.head_dim / 2}, op, "inv_freq");
    const bool fused = rope_in_gemv_ && p.head_dim % 16 == 0 && p.head_dim <= 256 &&
                       linear_.streams(x.raw(), x.size(0), qkv_weight.parts.front().raw(), qkv_weight.in_features);
    if (!fused) {
      Backend::rms_norm_qkv_rope(x, norm_weight, eps, qkv_weight, rope, p, cache, layer, normed, qkv);
      return;
    }
    if (rope_table_serial_ != step_serial_ || rope_table_freq_ != rope.inv_freq.raw()) {
      rope_table_ = empty(DType::f32, {step_.num_tokens, 2, p.head_dim / 2});
      cuda::launch_rope_table(rope.inv_freq.data<float>(), p.head_dim, step_.positions,
                              static_cast<int32_t>(step_.num_tokens), rope_table_.data<float>(), stream());
      rope_table_serial_ = step_serial_;
      rope_table_freq_ = rope.inv_freq.raw();
    }
    rms_norm(x, norm_weight, eps, normed);
    cuda::SkinnyGemm g = skinny_gemm_args(normed, qkv_weight, bias, qkv, cuda::SkinnyEpilogue::rope_cache);
    const auto l = static_cast<size_t>(layer);
    g.rope.table = rope_table_.data<float>();
    g.rope.step = step_;
    g.rope.shape = attention_shape(p);
    g.rope.k_cache = cache.k[l].raw();
    g.rope.v_cache = cache.v[l].raw();
    cuda::launch_skinny_gemm(g, stream());
  }

  void attention(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer,
                 Tensor& out) override {
    run_attention(qkv, p, cache, layer, out, nullptr);
  }

  // deferred: see cuda::launch_attention.
  void run_attention(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer, Tensor& out,
                     cuda::SplitKvPartials* deferred) {
    check_attention_args(qkv, p, cache, layer, "attention");
    check_act(out, "attention", "out", {step_.num_tokens, static_cast<int64_t>(p.num_heads) * p.head_dim});
    const cuda::AttentionShape shape = attention_shape(p);
    const size_t need = cuda::attention_workspace_bytes(step_, shape);
    if (arena_mode_ == ArenaMode::measure) measured_workspace_ = std::max(measured_workspace_, need);
    // While recording, a workspace of the graph's own (the measured size, once
    // per step), so that no later step can free or move it.
    Tensor& ws = arena_mode_ == ArenaMode::record ? graph_workspace_ : attention_workspace_;
    if (need > 0 && (!ws.defined() || ws.nbytes() < need)) {
      if (arena_mode_ == ArenaMode::record)
        ws = empty(DType::u8, {static_cast<int64_t>(std::max(need, measured_workspace_))});
      else
        ws = cuda::pooled_tensor(context_, DType::u8, {static_cast<int64_t>(need + need / 4)});
    }
    const auto l = static_cast<size_t>(layer);
    cuda::launch_attention(qkv.raw(), kAct, step_, shape, cache.k[l].raw(), cache.v[l].raw(), out.raw(),
                           ws.defined() ? ws.raw() : nullptr, ws.defined() ? ws.nbytes() : 0, stream(), deferred);
  }

  void swiglu(const Tensor& gate_up, Tensor& out) override {
    FLINT_CHECK(gate_up.dim() == 2 && gate_up.size(1) % 2 == 0, "swiglu: gate_up must be [N, 2F], got {}",
                shape_to_string(gate_up.shape()));
    check_act(gate_up, "swiglu", "gate_up", gate_up.shape());
    const int64_t n = gate_up.size(0), f = gate_up.size(1) / 2;
    check_act(out, "swiglu", "out", {n, f});
    cuda::launch_swiglu(gate_up.raw(), n, f, out.raw(), stream());
  }

  void gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) override {
    FLINT_CHECK(x.dim() == 2, "gather_rows: x must be [T, H], got {}", shape_to_string(x.shape()));
    check_act(x, "gather_rows", "x", x.shape());
    const int64_t t = x.size(0), h = x.size(1);
    check_act(out, "gather_rows", "out", {static_cast<int64_t>(rows.size()), h});
    for (int32_t r : rows) FLINT_CHECK(r >= 0 && r < t, "gather_rows: row {} outside [0, {})", r, t);
    if (rows.empty()) return;
    // The forward pass gathers the step's logits rows: already on the device.
    const int32_t* d_rows = have_step_ && rows == host_logits_rows_
                                ? logits_rows_
                                : reinterpret_cast<const int32_t*>(
                                      rows_upload_.upload(rows.data(), rows.size() * sizeof(int32_t)));
    cuda::launch_gather_rows(x.raw(), d_rows, static_cast<int64_t>(rows.size()), h, out.raw(), stream());
  }

  bool samples_on_device() const override { return true; }

  void sample_rows_async(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                         const std::vector<PenalizedToken>& penalties) override {
    check_sampling_args(logits, specs, penalties);
    FLINT_CHECK(logits.device() == Device::cuda, "sample_rows: logits must be a CUDA tensor");
    drawn_ = 0;
    collect_pending_ = specs.empty();
    if (specs.empty()) return;
    if (specs.size() > samples_capacity_) grow_samples(std::max(specs.size(), 2 * samples_capacity_));
    // Specs then penalties, one upload (RowSamplingSpec's size is a multiple of 8).
    static_assert(sizeof(RowSamplingSpec) % alignof(PenalizedToken) == 0);
    const size_t spec_bytes = specs.size() * sizeof(RowSamplingSpec);
    const size_t pen_bytes = penalties.size() * sizeof(PenalizedToken);
    sample_staging_.resize(spec_bytes + pen_bytes);
    std::memcpy(sample_staging_.data(), specs.data(), spec_bytes);
    if (pen_bytes > 0) std::memcpy(sample_staging_.data() + spec_bytes, penalties.data(), pen_bytes);
    std::byte* d = sample_upload_.upload(sample_staging_.data(), sample_staging_.size());
    Tensor raw = cuda::pooled_tensor(context_, DType::f32, {std::max<int64_t>(1, std::ssize(penalties))});
    const auto num_specs = static_cast<int32_t>(specs.size());
    Tensor workspace =
        cuda::pooled_tensor(context_, DType::u8, {static_cast<int64_t>(cuda::sample_rows_workspace_bytes(num_specs))});
    cuda::launch_sample_rows(logits.data<float>(), static_cast<int32_t>(logits.size(1)),
                             reinterpret_cast<const RowSamplingSpec*>(d), num_specs,
                             reinterpret_cast<const PenalizedToken*>(d + spec_bytes), raw.data<float>(),
                             workspace.raw(), samples_, stream());
    sample_result_.reserve(specs.size() * sizeof(RowSample));
    FLINT_CUDA_CHECK(cudaMemcpyAsync(sample_result_.data(), samples_, specs.size() * sizeof(RowSample),
                                     cudaMemcpyDeviceToHost, stream()));
    FLINT_CUDA_CHECK(cudaEventRecord(samples_copied_, stream()));
    drawn_ = specs.size();
    collect_pending_ = true;
  }

  std::vector<RowSample> collect_samples() override {
    FLINT_CHECK(collect_pending_, "collect_samples: no sample_rows_async() is pending");
    collect_pending_ = false;
    std::vector<RowSample> out(drawn_);
    if (out.empty()) return out;
    // The event, not the stream: a step queued after the draw may be running.
    FLINT_CUDA_CHECK(cudaEventSynchronize(samples_copied_));
    std::memcpy(out.data(), sample_result_.data(), out.size() * sizeof(RowSample));
    return out;
  }

 private:
  enum class ArenaMode { off, measure, record };
  // body key, cache base address, num_blocks, block_size, padded seqs, max_blocks_per_seq
  using GraphKey = std::tuple<uint64_t, uintptr_t, int32_t, int32_t, int32_t, int32_t>;
  struct StepGraph {
    cudaGraphExec_t exec = nullptr;
    Tensor logits;  // [padded rows, vocab] in the arena
    int64_t vocab = 0;
  };

  static size_t kv_layer_bytes(const KvCacheShape& s) {
    const auto block = static_cast<uint64_t>(s.kv_heads) * static_cast<uint64_t>(s.block_size) *
                       static_cast<uint64_t>(s.head_dim);
    return dtype_bytes(s.dtype, block * (static_cast<uint64_t>(s.num_blocks) + 1));
  }

  // A decode step a graph can run: one query token per sequence, the logits
  // of every row in order, at most the largest bucket, a cache made by this
  // backend (it has the scratch block).
  bool graph_step_shape(const Batch& batch, const KvCache& cache) const {
    const int32_t S = batch.num_seqs();
    if (S < 1 || graph_bucket(S) == 0 || batch.num_tokens() != S) return false;
    if (batch.logits_rows.size() != static_cast<size_t>(S) || batch.query_starts.size() != static_cast<size_t>(S) + 1)
      return false;
    for (int32_t i = 0; i < S; ++i)
      if (batch.logits_rows[static_cast<size_t>(i)] != i || batch.query_starts[static_cast<size_t>(i)] != i)
        return false;
    if (batch.query_starts.back() != S) return false;
    const KvCacheShape& s = cache.shape;
    if (cache.k.empty() || cache.k.size() != static_cast<size_t>(s.num_layers) || cache.v.size() != cache.k.size())
      return false;
    const Tensor& k0 = cache.k.front();
    const size_t layer = kv_layer_bytes(s);
    return k0.defined() && k0.device() == Device::cuda && k0.storage() &&
           k0.storage()->size() == 2 * static_cast<size_t>(s.num_layers) * layer &&
           cache.v.front().raw() == k0.raw() + layer;
  }

  // Pads to the bucket: sequence s >= S is token 0 at position 0 (context 1)
  // in the scratch block `num_blocks`; its row's logits are computed and
  // ignored. Block tables widen to a power of two.
  static Batch pad_decode_step(const Batch& batch, const KvCacheShape& shape) {
    const int32_t S = batch.num_seqs(), B = graph_bucket(S);
    int32_t M = 1;
    while (M < batch.max_blocks_per_seq) M *= 2;
    Batch p;
    p.token_ids = batch.token_ids;
    p.token_ids.resize(static_cast<size_t>(B), 0);
    p.token_from_sample = batch.token_from_sample;
    if (!p.token_from_sample.empty()) p.token_from_sample.resize(static_cast<size_t>(B), -1);
    p.positions = batch.positions;
    p.positions.resize(static_cast<size_t>(B), 0);
    p.context_lens = batch.context_lens;
    p.context_lens.resize(static_cast<size_t>(B), 1);
    p.max_blocks_per_seq = M;
    p.block_tables.assign(static_cast<size_t>(B) * static_cast<size_t>(M), -1);
    for (int32_t s = 0; s < B; ++s) {
      int32_t* row = p.block_tables.data() + static_cast<size_t>(s) * static_cast<size_t>(M);
      if (s < S)
        std::copy_n(batch.block_tables.data() + static_cast<size_t>(s) * static_cast<size_t>(batch.max_blocks_per_seq),
                    batch.max_blocks_per_seq, row);
      else
        row[0] = shape.num_blocks;  // the scratch block
    }
    for (int32_t i = 0; i <= B; ++i) p.query_starts.push_back(i);
    for (int32_t i = 0; i < B; ++i) p.logits_rows.push_back(i);
    return p;
  }

  // Captures `body` over `padded` into a graph whose tensors live in the
  // arena (grown, dropping every graph, when too small). The step's arrays sit
  // at the arena's start, the body's tensors after them.
  void record_graph(const GraphKey& key, const Batch& padded, KvCache& cache, const StepBody& body,
                    size_t body_bytes, size_t workspace_bytes) {
    // The packed arrays of set_step(): ids, positions, token_seq, query_starts,
    // context_lens, block tables, logits rows, token_from_sample.
    const auto B = static_cast<size_t>(padded.num_seqs()), M = static_cast<size_t>(padded.max_blocks_per_seq);
    const size_t step_bytes = align_up((3 * B + (B + 1) + B + B * M + B + B) * sizeof(int32_t));
    const size_t need = step_bytes + body_bytes + align_up(workspace_bytes);
    if (!arena_ || arena_->size() < need || graphs_.size() >= kMaxGraphs) {
      drop_graphs();
      if (!arena_ || arena_->size() < need) {
        arena_.reset();
        arena_ = std::make_shared<CudaStorage>(need + need / 4);
      }
    }
    set_step(padded, cache.shape, arena_->data());
    arena_mode_ = ArenaMode::record;
    arena_used_ = step_bytes;
    graph_workspace_ = Tensor();
    cudaGraph_t graph = nullptr;
    Tensor out;
    FLINT_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
    try {
      out = body(padded);
    } catch (...) {
      arena_mode_ = ArenaMode::off;
      graph_workspace_ = Tensor();
      cudaStreamEndCapture(stream(), &graph);
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();
      throw;
    }
    arena_mode_ = ArenaMode::off;
    graph_workspace_ = Tensor();
    FLINT_CUDA_CHECK(cudaStreamEndCapture(stream(), &graph));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t made = cudaGraphInstantiateWithFlags(&exec, graph, 0);
    cudaGraphDestroy(graph);
    FLINT_CUDA_CHECK(made);
    FLINT_CHECK(out.storage() == arena_ && out.is_contiguous() && out.dim() == 2 &&
                    out.size(0) == padded.num_seqs(),
                "cuda graph: the step body must return a fresh [rows, vocab] tensor");
    graphs_[key] = StepGraph{exec, out, recorded_vocab_};
  }

  void drop_graphs() {
    if (graphs_.empty()) return;
    FLINT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    for (auto& [key, g] : graphs_) cudaGraphExecDestroy(g.exec);
    graphs_.clear();
  }

  static int current_device() {
    int device = 0;
    FLINT_CUDA_CHECK(cudaGetDevice(&device));
    return device;
  }

  cudaStream_t stream() const { return context_->stream(); }

  Tensor device_tensor(DType dtype, const Shape& shape) {
    const int64_t n = shape_numel(shape);
    return Tensor::wrap(std::make_shared<CudaStorage>(dtype_bytes(dtype, static_cast<uint64_t>(n))), 0, dtype,
                        shape);
  }

  static void check_weight_source(const Tensor& t, const char* op) {
    FLINT_CHECK(t.defined(), "{}: undefined tensor", op);
    FLINT_CHECK(is_float_weight(t.dtype()),
                "the CUDA backend runs f32, bf16 and f16 weights; got a {} tensor of shape {}", dtype_name(t.dtype()),
                shape_to_string(t.shape()));
  }

  // Writes `src` (host or device, f32/f16/bf16, any strides on the host) as
  // contiguous `dst_dtype` at `dst`, queued on the stream.
  void copy_converted(const Tensor& src, void* dst, DType dst_dtype) {
    const auto n = static_cast<uint64_t>(src.numel());
    if (n == 0) return;
    if (src.device() == Device::cuda) {
      FLINT_CHECK(src.is_contiguous(), "the CUDA backend prepares contiguous device tensors only");
      if (src.dtype() == dst_dtype)
        FLINT_CUDA_CHECK(cudaMemcpyAsync(dst, src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice, stream()));
      else
        cuda::launch_convert(src.raw(), src.dtype(), dst, dst_dtype, n, stream());
      return;
    }
    const Tensor host = src.is_contiguous() ? src : src.contiguous_copy();
    if (host.dtype() == dst_dtype) {
      // From pageable memory (an mmap'd file): returns once staged, so `host` may go.
      FLINT_CUDA_CHECK(cudaMemcpyAsync(dst, host.raw(), host.nbytes(), cudaMemcpyHostToDevice, stream()));
      return;
    }
    // Convert on the GPU, through a staging buffer of at most 64 MB.
    const uint64_t chunk = std::min<uint64_t>(n, uint64_t{16} << 20);
    Tensor staging = empty(host.dtype(), {static_cast<int64_t>(chunk)});
    const size_t in_bytes = dtype_bytes(host.dtype(), 1), out_bytes = dtype_bytes(dst_dtype, 1);
    for (uint64_t at = 0; at < n; at += chunk) {
      const uint64_t m = std::min(chunk, n - at);
      FLINT_CUDA_CHECK(cudaMemcpyAsync(staging.raw(), host.raw() + at * in_bytes, m * in_bytes,
                                       cudaMemcpyHostToDevice, stream()));
      cuda::launch_convert(staging.raw(), host.dtype(), static_cast<std::byte*>(dst) + at * out_bytes, dst_dtype, m,
                           stream());
    }
  }

  void require_step(const char* op) const { FLINT_CHECK(have_step_, "{}: begin_step() must be called first", op); }

  // The ids the host gave are in the vocabulary; the ones a draw gives name
  // one of the last draw's specs (a failed draw is the host's to report).
  void check_step_tokens(const std::vector<int32_t>& ids, const std::vector<int32_t>& from_sample,
                         int64_t vocab) const {
    for (size_t t = 0; t < ids.size(); ++t) {
      if (!from_sample.empty() && from_sample[t] >= 0) {
        FLINT_CHECK(static_cast<size_t>(from_sample[t]) < drawn_,
                    "embedding: batch row {} takes the id of sample {}, but the last draw made {}", t,
                    from_sample[t], drawn_);
        continue;
      }
      FLINT_CHECK(ids[t] >= 0 && ids[t] < vocab,
                  "embedding: token id {} (batch row {}) is outside the vocabulary [0, {})", ids[t], t, vocab);
    }
  }

  // The draws' results live at one address that recorded graphs read: a
  // larger buffer drops them (and waits for the device, which may still read
  // the old one).
  void grow_samples(size_t capacity) {
    drop_graphs();
    FLINT_CUDA_CHECK(cudaStreamSynchronize(stream()));
    samples_storage_ = std::make_shared<CudaStorage>(capacity * sizeof(RowSample));
    samples_ = reinterpret_cast<RowSample*>(samples_storage_->data());
    samples_capacity_ = capacity;
  }

  cuda::AttentionShape attention_shape(const AttentionParams& p) const {
    cuda::AttentionShape s;
    s.num_heads = p.num_heads;
    s.kv_heads = p.kv_heads;
    s.head_dim = p.head_dim;
    s.block_size = step_shape_.block_size;
    s.scale = p.scale;
    return s;
  }

  void check_attention_args(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer,
                            const char* op) const {
    require_step(op);
    const Shape expect = check_attention_params(p, cache, layer, step_shape_, op);
    for (const Tensor* t : {&cache.k[static_cast<size_t>(layer)], &cache.v[static_cast<size_t>(layer)]})
      check_device(*t, kAct, expect, op, "cache");
    check_act(qkv, op, "qkv", {step_.num_tokens, static_cast<int64_t>(p.num_heads + 2 * p.kv_heads) * p.head_dim});
  }

  std::shared_ptr<cuda::StreamContext> context_;
  cuda::LinearRunner linear_;
  cuda::StagedUpload step_upload_;  // the step's arrays
  cuda::StagedUpload rows_upload_;  // gather_rows indices that are not the step's logits rows
  cuda::StagedUpload sample_upload_;  // sample_rows' specs and penalties
  std::vector<std::byte> sample_staging_;
  cuda::PinnedBuffer sample_result_;  // the sampled ids on their way to the host
  // The last draw's RowSamples on the device (Batch::token_from_sample reads
  // them), how many it made, and whether collect_samples() is still due.
  static constexpr size_t kInitialSamples = 1024;
  std::shared_ptr<CudaStorage> samples_storage_;
  RowSample* samples_ = nullptr;
  size_t samples_capacity_ = 0;
  size_t drawn_ = 0;
  bool collect_pending_ = false;
  cudaEvent_t samples_copied_ = nullptr;  // recorded after the copy to sample_result_
  std::string device_name_;

  // The step, on the host: the ids (range-checked by embedding()) and the
  // logits rows; the rest lives only on the device (block tables can be large).
  std::vector<int32_t> host_token_ids_, host_logits_rows_, host_token_from_sample_;
  std::vector<int32_t> staging_;  // the packed step arrays before upload
  KvCacheShape step_shape_;
  cuda::StepArrays step_;
  const int32_t* token_ids_ = nullptr;    // [T] on the device
  const int32_t* logits_rows_ = nullptr;  // [R] on the device
  const int32_t* token_from_sample_ = nullptr;  // [T] on the device, -1 where token_ids_ holds the id
  bool have_step_ = false;
  Tensor attention_workspace_;  // grows to the largest step's need

  // CUDA graphs of decode steps (docs/CUDA.md).
  CudaGraphMode graph_mode_;
  ArenaMode arena_mode_ = ArenaMode::off;
  size_t arena_used_ = 0;           // bytes handed out (or counted) so far this step
  size_t measured_workspace_ = 0;   // the largest attention workspace of the measured step
  std::shared_ptr<CudaStorage> arena_;  // every graph's step arrays and tensors; one graph runs at a time
  Tensor graph_workspace_;          // the attention workspace of the graph being recorded
  int64_t recorded_vocab_ = 0;      // the embedding table's rows, seen by the last embedding()
  std::map<GraphKey, StepGraph> graphs_;
  bool rope_in_gemv_;  // CudaBackendOptions::rope_into_gemv
  bool merge_in_gemv_;  // CudaBackendOptions::merge_splits_into_gemv
  // The step's RoPE cos/sin table (launch_rope_table), made by the first fused
  // q/k/v GEMV of a step for the inv_freq it was given.
  uint64_t step_serial_ = 0;
  uint64_t rope_table_serial_ = 0;
  const void* rope_table_freq_ = nullptr;
  Tensor rope_table_;
};

}  // namespace

CudaGraphMode cuda_graph_mode_from_env() {
  const char* v = std::getenv("FLINT_CUDA_GRAPHS");
  if (v == nullptr) return CudaGraphMode::on;
  const std::string_view s(v);
  if (s == "0" || s == "off" || s == "false") return CudaGraphMode::off;
  if (s == "eager") return CudaGraphMode::eager;
  return CudaGraphMode::on;
}

const char* cuda_graph_mode_name(CudaGraphMode mode) {
  switch (mode) {
    case CudaGraphMode::off: return "off";
    case CudaGraphMode::eager: return "eager (padded, not captured)";
    case CudaGraphMode::on: return "on";
  }
  return "?";
}

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options) {
  FLINT_CHECK(!cuda_devices().empty(), ErrorContext{.field = "--device"}, "no GPU: {}", cuda_unavailable_reason());
  CudaBackendOptions o = options;
  apply_fusion_env(o);
  return std::make_unique<CudaBackend>(o);
}

}  // namespace flint
