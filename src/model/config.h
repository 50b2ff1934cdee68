// model/config.h — the model parameters of a Llama-family checkpoint, read from
// Hugging Face's config.json.
//
// Contract:
// - parse_llama_config() accepts what transformers writes for LlamaForCausalLM
//   (Llama 2, CodeLlama, Llama 3/3.1/3.2/3.3): both the classic RoPE form
//   (top-level `rope_theta` + `rope_scaling`, as hub checkpoints ship) and the
//   transformers 5 form (`rope_parameters` holding `rope_theta` too). Fields it
//   does not know are ignored; a known field with a value Flint cannot run
//   (another architecture, another activation, a yarn RoPE, a quantized
//   checkpoint, a string where an integer belongs, ...) is an Error naming the
//   field and the value. Absent fields take transformers' LlamaConfig defaults.
// - A LlamaConfig that parse_llama_config() returns has passed validate(); treat
//   it as immutable from then on. Code that builds one by hand (dummy shapes,
//   tests) calls validate() itself.
// - Runtime choices (KV dtype, batch limits, devices) are not here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"  // every function here reports through flint::Error

namespace flint {

enum class RopeType { default_, linear, dynamic, llama3 };
std::string_view rope_type_name(RopeType t);  // "default", "linear", "dynamic", "llama3"

// RoPE scaling as transformers names it. `factor` is used by linear, dynamic
// and llama3; the other three fields by llama3 only (dynamic keeps
// original_max_position_embeddings when given, but, like transformers, scales
// from max_position_embeddings).
struct RopeScaling {
  RopeType type = RopeType::default_;
  double factor = 1.0;
  double low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;

  bool operator==(const RopeScaling&) const = default;
};

// Model parameters from config.json; immutable once validated. The defaults
// are transformers' LlamaConfig defaults (the Llama-2-7B shape), so a
// default-constructed config is valid.
struct LlamaConfig {
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  // config.json default: num_attention_heads
  int64_t head_dim = 128;            // config.json default: hidden_size / num_attention_heads
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false, attention_bias = false, mlp_bias = false;
  std::vector<int32_t> bos_token_ids, eos_token_ids;  // may be empty
  DType dtype = DType::bf16;                          // dtype/torch_dtype (bf16, f16, f32); config.json default f32

  // Total parameter count (a tied embedding counted once). validate() ensures
  // it fits in int64.
  int64_t num_parameters() const;
  // K and V of one token in every layer: 2 * layers * kv_heads * head_dim * bytes.
  int64_t kv_bytes_per_token(DType kv_dtype) const;
  // Throws flint::Error naming the field at fault (no file: callers add it).
  void validate() const;
};

// `source_name` goes in ErrorContext::file of every error.
LlamaConfig parse_llama_config(std::string_view json_text, const std::string& source_name);
// Reads and parses the file at `path`.
LlamaConfig load_llama_config(const std::string& path);

// RoPE inverse frequencies inv_freq[i], i in [0, head_dim/2), as transformers'
// modeling_rope_utils computes them at load time: default 1/theta^(2i/d);
// linear divides by the factor; llama3 rescales the low-frequency band (see
// rope_llama3_scaling in config.cpp); dynamic equals default here, because at
// load time (sequence length <= max_position_embeddings) transformers' dynamic
// NTK leaves the base unchanged.
//
// Computed in double. transformers computes in float32, so its values are
// within an f32 rounding (about 1e-7 relative) of these cast to float.
std::vector<double> rope_inv_freq(const LlamaConfig& c);

// The inverse frequencies for a sequence of `seq_len` positions. Only dynamic
// NTK depends on the length: past max_position_embeddings the base becomes
//   theta * (factor * seq_len / max_pos - (factor - 1)) ^ (d / (d - 2))
// (transformers' _compute_dynamic_ntk_parameters). transformers recomputes this
// whenever a forward reaches a new longest length (max position id + 1) and
// returns to the load-time table once lengths drop back under the original
// maximum; the RoPE op that uses this decides when to call it. For every other
// type this equals rope_inv_freq(c).
std::vector<double> rope_inv_freq_for_length(const LlamaConfig& c, int64_t seq_len);

}  // namespace flint
