#include "model/memory_plan.h"

#include <fmt/format.h>

#include "core/error.h"

namespace flint {

MemoryPlan plan_memory(const LlamaConfig& c, const std::vector<TensorHeader>& weights, const MemoryPlanInput& in) {
  FLINT_CHECK(in.max_seq_len > 0, ErrorContext{.field = "--max-seq-len"}, "must be positive, got {}", in.max_seq_len);
  FLINT_CHECK(in.max_batch > 0, ErrorContext{.field = "--max-batch"}, "must be positive, got {}", in.max_batch);
  FLINT_CHECK(in.max_batched_tokens > 0, ErrorContext{.field = "--max-batched-tokens"}, "must be positive, got {}",
              in.max_batched_tokens);
  MemoryPlan p;
  for (const TensorHeader& w : weights) {
    if (w.name.ends_with("rotary_emb.inv_freq")) continue;
    if (c.tie_word_embeddings && w.name == "lm_head.weight") continue;  // unused copy
    const int64_t n = shape_numel(w.shape);
    const uint64_t bytes = dtype_bytes(w.dtype, static_cast<uint64_t>(n));
    p.num_parameters += n;
    p.weight_bytes += bytes;
    p.weight_bytes_by_dtype[w.dtype] += bytes;
    if (w.name == "model.embed_tokens.weight" && !c.tie_word_embeddings)
      p.decode_bytes_per_step += bytes / static_cast<uint64_t>(c.vocab_size);  // one row per token
    else
      p.decode_bytes_per_step += bytes;
  }
  p.kv_bytes_per_token = static_cast<uint64_t>(c.kv_bytes_per_token(in.kv_dtype));
  p.kv_bytes = p.kv_bytes_per_token * static_cast<uint64_t>(in.max_seq_len) * static_cast<uint64_t>(in.max_batch);
  const int64_t q = c.num_attention_heads * c.head_dim;
  const int64_t kv = c.num_key_value_heads * c.head_dim;
  // Per token: residual, normed input, attention output, q/k/v, gate+up and the
  // SwiGLU product; plus f32 logits for every sequence that samples.
  const int64_t per_token = 3 * c.hidden_size + q + 2 * kv + 3 * c.intermediate_size;
  p.activation_bytes = static_cast<uint64_t>(in.max_batched_tokens * per_token * 4 + in.max_batch * c.vocab_size * 4);
  p.total_bytes = p.weight_bytes + p.kv_bytes + p.activation_bytes;
  return p;
}

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1000) return fmt::format("{} B", bytes);
  const char* units[] = {"kB", "MB", "GB", "TB"};
  double v = static_cast<double>(bytes) / 1000.0;
  int u = 0;
  while (v >= 1000.0 && u < 3) {
    v /= 1000.0;
    ++u;
  }
  return fmt::format("{:.2f} {}", v, units[u]);
}

}  // namespace flint
