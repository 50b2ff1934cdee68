// model/llama.h — the Llama forward pass, written once against ops/backend.h.
//
// Contract:
// - Construction resolves every weight by name once (the typed LlamaWeights
//   below) and hands it to the backend, which decides its layout (the CPU keeps
//   mmap'd views; CUDA uploads and fuses). q/k/v and gate/up are kept as
//   multi-part Linears so that no backend must copy to fuse them.
// - forward() runs one packed step (ops/batch.h): the K/V of the step's tokens
//   are written into `cache` and the logits of batch.logits_rows come back as
//   f32 [rows, vocab] on the backend's device, valid until the next forward()
//   (a backend may return memory it owns: Backend::run_step).
// - The model holds no per-sequence state: sequences live in the cache's
//   blocks and the batch's block tables.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/weight_source.h"
#include "ops/backend.h"

namespace flint {

struct LayerWeights {
  Tensor attn_norm;  // [H]
  Linear qkv;        // [(Hq + 2 Hkv) * D, H]: q, k, v row blocks
  Linear o;          // [H, Hq * D]
  Tensor mlp_norm;   // [H]
  Linear gate_up;    // [2F, H]: gate rows, then up rows
  Linear down;       // [H, F]
};

struct LlamaWeights {
  Tensor embed;        // [V, H]
  std::vector<LayerWeights> layers;
  Tensor final_norm;   // [H]
  Linear lm_head;      // [V, H] (the embedding table when tied)
};

class LlamaModel {
 public:
  LlamaModel(const ModelSource& source, Backend& backend);

  const LlamaConfig& config() const { return config_; }
  Backend& backend() const { return backend_; }
  // A cache shape for this model; kv dtype defaults to the backend's choice.
  KvCacheShape kv_cache_shape(int32_t num_blocks, int32_t block_size, DType kv_dtype) const;

  Tensor forward(const Batch& batch, KvCache& cache);

 private:
  // The step's ops, after the backend's begin_step (Backend::run_step).
  Tensor step_body(const Batch& batch, KvCache& cache);

  LlamaConfig config_;
  Backend& backend_;
  LlamaWeights w_;
  RopeTables rope_;
  AttentionParams attn_;
  uint64_t step_key_;  // process-unique: names this model's step body to the backend
};

}  // namespace flint
