// ops/backend.h — what a compute backend (CPU, CUDA) must provide.
//
// Contract:
// - The model's forward pass (model/llama.cpp) is written once against this
//   interface; backends differ only in kernels and memory.
// - Every tensor passed to an op lives on the backend's device. Activations have
//   the dtype activation_dtype(); weights are in whatever float dtype
//   prepare_weight() produced; kernels accumulate in f32.
// - `out` tensors are preallocated by the caller with the documented shape and
//   are fully overwritten (ops never read them first, except the in/out ones).
// - Ops may run asynchronously; read_logits() and synchronize() are the points
//   where results reach the host.
// - The attention ops read the step's Batch set by begin_step(); begin_step()
//   validates it against the cache. A backend that does not sample on its
//   device refuses a batch with token_from_sample entries.
// - run_step() runs a whole step body; a backend may replay a recorded one (the
//   CUDA backend's graphs, docs/CUDA.md). The tensor it returns may be owned by
//   the backend: valid until the next run_step()/begin_step(), so copy it (to_host)
//   before running another step.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "ops/batch.h"
#include "ops/sampling.h"

namespace flint {

// A linear layer's weight, y = x W^T + b. W may be stored as several row
// blocks (e.g. q, k, v kept apart in an mmap'd checkpoint) that together form
// [out_features, in_features]; a backend may fuse them into one at load time.
struct Linear {
  std::vector<Tensor> parts;  // each [rows_i, in_features]; sum of rows_i = out_features
  Tensor bias;                // [out_features] or undefined
  int64_t in_features = 0;
  int64_t out_features = 0;
};

struct KvCacheShape {
  int32_t num_layers = 0;
  int32_t num_blocks = 0;
  int32_t block_size = 16;  // tokens per block
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  DType dtype = DType::bf16;
  uint64_t bytes() const;  // K and V of all layers
  void check() const;      // every count positive, else flint::Error; backends check the dtype
};

// The paged K/V pool. Per layer: k[l], v[l]  // [num_blocks, kv_heads, block_size, head_dim]
struct KvCache {
  KvCacheShape shape;
  std::vector<Tensor> k;
  std::vector<Tensor> v;
};

// Rotary embedding: per position, cos/sin of position * inv_freq[i].
struct RopeTables {
  Tensor inv_freq;  // f32 [head_dim / 2]
};

struct AttentionParams {
  int32_t num_heads = 0;
  int32_t kv_heads = 0;
  int32_t head_dim = 0;
  float scale = 0.0f;  // 1/sqrt(head_dim)
};

// Checks what every backend's attention ops need of their arguments, whatever
// the device: head counts that group, an even head_dim, the cache begin_step()
// validated the batch against (`step_cache`), heads and head_dim matching the
// cache, and `layer` inside it. Returns the shape each of the layer's k and v
// tensors must have, [num_blocks, kv_heads, block_size, head_dim], for the
// backend's own device and dtype checks. Throws flint::Error naming `op`.
Shape check_attention_params(const AttentionParams& p, const KvCache& cache, int32_t layer,
                             const KvCacheShape& step_cache, const char* op);

// Checks sample_rows' arguments whatever the device: f32 [R, V] logits, rows
// in range, parameters in their ranges, each spec's penalties inside the list,
// sorted, unique, ids in [0, V). Throws flint::Error.
void check_sampling_args(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                         const std::vector<PenalizedToken>& penalties);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  virtual DType activation_dtype() const = 0;

  // Memory.
  virtual Tensor empty(DType dtype, Shape shape) = 0;
  // A weight for this device from a host tensor (a view of an mmap'd file, or
  // generated) or from one dummy_weight() made. CPU may keep the view; CUDA
  // uploads.
  virtual Tensor prepare_weight(const Tensor& host, DType compute_dtype) = 0;
  virtual Linear prepare_linear(const std::vector<Tensor>& host_parts, const Tensor& host_bias, DType compute_dtype);
  // The loader calls this once, before preparing any weight, with the number
  // of weight elements it is about to prepare (`model` names them in errors).
  // A device backend throws flint::Error, naming the bytes it needs and the
  // bytes free, when they cannot fit; the CPU keeps mmap'd views and accepts.
  virtual void check_weights_fit(int64_t elements, const std::string& model);
  // A dummy weight (core/dummy_values.h: element i = dummy_weight_value(key, i,
  // is_norm), stored in `dtype`) generated where this backend keeps weights, so
  // that a multi-GB dummy model never exists on the host; prepare_weight()
  // accepts the result. Undefined when the backend has no such path (the CPU):
  // the caller then generates the weight on the host.
  virtual Tensor dummy_weight(DType dtype, const Shape& shape, uint64_t key, bool is_norm);
  virtual KvCache create_kv_cache(const KvCacheShape& shape) = 0;
  virtual Tensor to_host(const Tensor& t) = 0;   // contiguous host copy
  virtual Tensor from_host(const Tensor& t) = 0;  // device copy of a host tensor
  virtual void synchronize() = 0;

  // Step setup: uploads the batch's index arrays; checks them against `cache`.
  virtual void begin_step(const Batch& batch, const KvCache& cache) = 0;

  // One step: begin_step(batch) then body(batch), whose result it returns. The
  // body must issue only this interface's ops (and empty()) for the batch it is
  // given, with no host synchronisation, and read the step only through that
  // batch. A backend may hand the body a padded batch (extra sequences at the
  // end, more logits rows) and return the result's first
  // batch.logits_rows.size() rows; it may record the body once and replay it
  // for later steps of the same padded shape, the same `cache` and the same
  // `body_key` without calling it: body_key names the body (the same key must
  // mean the same ops on the same weights for the backend's lifetime; a model
  // takes a process-unique one). The result may live in backend-owned memory,
  // valid until the next step.
  using StepBody = std::function<Tensor(const Batch&)>;
  virtual Tensor run_step(const Batch& batch, KvCache& cache, uint64_t body_key, const StepBody& body) {
    (void)body_key;
    begin_step(batch, cache);
    return body(batch);
  }

  // Ops over the current step (T = batch.num_tokens()).
  // out[t] = table[token_ids[t]]                              out: [T, H]
  virtual void embedding(const Tensor& table, Tensor& out) = 0;
  // out = rms_norm(x) * w                                       x, out: [N, H]
  virtual void rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // out = x W^T + b                                              x: [N, in], out: [N, out]
  virtual void linear(const Tensor& x, const Linear& w, Tensor& out) = 0;
  // The residual add after a sublayer: residual += x W^T + b, residual
  // [N, out] (not x). scratch ([N, out]) may hold x W^T + b on the way, or be
  // left unwritten by a backend that adds in the matmul's epilogue.
  virtual void linear_add(const Tensor& x, const Linear& w, Tensor& residual, Tensor& scratch) = 0;
  // A sublayer's input projection: out = rms_norm(x) * norm_weight W^T + b,
  // the normed x going through normed ([N, in]).
  virtual void rms_norm_linear(const Tensor& x, const Tensor& norm_weight, float eps, const Linear& w,
                               Tensor& normed, Tensor& out) {
    rms_norm(x, norm_weight, eps, normed);
    linear(normed, w, out);
  }
  // Rotates q and k in place (HF rotate_half convention) at the batch's
  // positions and writes k, v into the cache for `layer`.
  // qkv: [T, (Hq + 2 Hkv) * D], q first, then k, then v.
  virtual void rope_and_cache(Tensor& qkv, const RopeTables& rope, const AttentionParams& p, KvCache& cache,
                              int32_t layer) = 0;
  // The attention's input: rms_norm_linear(x, norm_weight, eps, qkv_weight,
  // normed, qkv) then rope_and_cache(qkv, rope, p, cache, layer).
  virtual void rms_norm_qkv_rope(const Tensor& x, const Tensor& norm_weight, float eps, const Linear& qkv_weight,
                                 const RopeTables& rope, const AttentionParams& p, KvCache& cache, int32_t layer,
                                 Tensor& normed, Tensor& qkv) {
    rms_norm_linear(x, norm_weight, eps, qkv_weight, normed, qkv);
    rope_and_cache(qkv, rope, p, cache, layer);
  }
  // Causal attention of each sequence's queries over its cached K/V.
  // qkv: as above (only q is read); out: [T, Hq * D]
  virtual void attention(const Tensor& qkv, const AttentionParams& p, const KvCache& cache, int32_t layer,
                         Tensor& out) = 0;
  // The attention sublayer's end: attention(qkv, p, cache, layer, attn), then
  // linear_add(attn, o, residual, scratch). A backend may combine the
  // attention's partial results inside the projection (attn is written all the same).
  virtual void attention_linear_add(const Tensor& qkv, const AttentionParams& p, const KvCache& cache,
                                    int32_t layer, Tensor& attn, const Linear& o, Tensor& residual, Tensor& scratch) {
    attention(qkv, p, cache, layer, attn);
    linear_add(attn, o, residual, scratch);
  }
  // out = silu(gate) * up, with gate_up: [N, 2F] (gate first), out: [N, F]
  virtual void swiglu(const Tensor& gate_up, Tensor& out) = 0;
  // The MLP's first half: rms_norm_linear(x, norm_weight, eps, gate_up,
  // normed, gate_up_out) then swiglu(gate_up_out, out). gate_up: 2F rows,
  // gate first. A backend that fuses the last two may leave gate_up_out
  // ([N, 2F]) unwritten; out: [N, F].
  virtual void rms_norm_linear_swiglu(const Tensor& x, const Tensor& norm_weight, float eps, const Linear& gate_up,
                                      Tensor& normed, Tensor& gate_up_out, Tensor& out) {
    rms_norm_linear(x, norm_weight, eps, gate_up, normed, gate_up_out);
    swiglu(gate_up_out, out);
  }
  // out[i] = x[rows[i]]                                          x: [T, H], out: [R, H]
  virtual void gather_rows(const Tensor& x, const std::vector<int32_t>& rows, Tensor& out) = 0;

  // Sampling where the logits are (ops/sampling.h), so that only ids and
  // logprobs reach the host. Backends that answer false leave sampling to the
  // host (runtime/step_sampler.h copies the logits there).
  virtual bool samples_on_device() const { return false; }
  // One RowSample per spec from `logits` (f32 [R, V], e.g. run_step's result),
  // whose sampled rows it may overwrite; waits for the result. `penalties`
  // holds every spec's range. Only where samples_on_device(); throws
  // flint::Error on bad arguments.
  virtual std::vector<RowSample> sample_rows(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                                             const std::vector<PenalizedToken>& penalties);
  // sample_rows() in two halves (by default sample_rows() calls one, then the
  // other), so that the device need not wait for the host between steps:
  // sample_rows_async() queues the draw and returns; the next run_step() may
  // read its ids where they were drawn (a batch's token_from_sample indexes
  // `specs`) before collect_samples() waits for the RowSamples. Until the
  // next sample_rows_async() or sample_rows(), the drawn ids stay readable.
  // Only where samples_on_device().
  virtual void sample_rows_async(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                                 const std::vector<PenalizedToken>& penalties);
  // The RowSamples of the last sample_rows_async(), one per spec; waits for
  // them. Throws flint::Error when nothing is pending.
  virtual std::vector<RowSample> collect_samples();
};

}  // namespace flint
