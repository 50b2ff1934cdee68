// model/weight_map.h — which tensors a Llama checkpoint must hold, by HF name.
//
// Contract:
// - expected_llama_tensors(config) lists every tensor the config implies, with
//   its shape, under the names transformers' LlamaForCausalLM saves:
//     model.embed_tokens.weight                         [V, H]
//     model.layers.{i}.input_layernorm.weight           [H]
//     model.layers.{i}.self_attn.q_proj.weight          [heads * D, H]
//     model.layers.{i}.self_attn.{k,v}_proj.weight      [kv_heads * D, H]
//     model.layers.{i}.self_attn.o_proj.weight          [H, heads * D]
//     model.layers.{i}.self_attn.{q,k,v,o}_proj.bias    [rows of the weight]   (attention_bias)
//     model.layers.{i}.post_attention_layernorm.weight  [H]
//     model.layers.{i}.mlp.{gate,up}_proj.weight        [F, H]
//     model.layers.{i}.mlp.down_proj.weight             [H, F]
//     model.layers.{i}.mlp.{gate,up,down}_proj.bias     [rows of the weight]   (mlp_bias)
//     model.norm.weight                                 [H]
//     lm_head.weight                                    [V, H]   (unless tie_word_embeddings)
//   in that order (layer by layer, in forward order).
// - check_llama_tensors() reads only names, dtypes and shapes (no weight data)
//   and either returns or throws one flint::Error that lists every problem.
//   It works on plain headers so that any reader (safetensors, .pth, dummy)
//   can use it.
#pragma once

#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"
#include "model/config.h"

namespace flint {

struct TensorSpec {
  std::string name;
  Shape shape;
};

std::vector<TensorSpec> expected_llama_tensors(const LlamaConfig& c);

// What a checkpoint says about one tensor, before any data is read.
struct TensorHeader {
  std::string name;
  DType dtype;
  Shape shape;
};

// Throws one flint::Error (file = `source`) listing, up to 20 of each and then
// "... and N more": missing names, unexpected names, duplicated names, shape
// mismatches ("model.layers.3.mlp.up_proj.weight: expected shape [14336, 4096],
// got [4096, 14336]") and non-float dtypes. Names ending in
// "rotary_emb.inv_freq" (old transformers saved the RoPE table) are ignored, and
// so is lm_head.weight when the embeddings are tied (some exporters write the
// copy; the embedding table is used).
void check_llama_tensors(const LlamaConfig& c, const std::vector<TensorHeader>& present, const std::string& source);

}  // namespace flint
