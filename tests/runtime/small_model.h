// tests/runtime/small_model.h — the config of the runtime tests' model: small
// enough to run hundreds of steps in a second on one core, with the shape
// features that matter (GQA, two layers).
#pragma once

#include "model/config.h"

namespace flint::testing {

// Tied random embeddings make greedy decoding echo the last token; untied
// ones give varied text.
inline LlamaConfig small_llama_config(bool tie_word_embeddings) {
  LlamaConfig c;
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.max_position_embeddings = 512;
  c.tie_word_embeddings = tie_word_embeddings;
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};
  c.dtype = DType::f32;
  c.validate();
  return c;
}

}  // namespace flint::testing
