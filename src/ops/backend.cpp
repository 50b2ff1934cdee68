#include "ops/backend.h"

#include <cmath>

#include "core/error.h"

namespace flint {

Shape check_attention_params(const AttentionParams& p, const KvCache& cache, int32_t layer,
                             const KvCacheShape& step_cache, const char* op) {
  FLINT_CHECK(p.num_heads > 0 && p.kv_heads > 0 && p.num_heads % p.kv_heads == 0,
              "{}: {} query heads cannot share {} kv heads", op, p.num_heads, p.kv_heads);
  FLINT_CHECK(p.head_dim > 0 && p.head_dim % 2 == 0, "{}: head_dim {} must be positive and even", op, p.head_dim);
  const KvCacheShape& s = cache.shape;
  FLINT_CHECK(s.block_size == step_cache.block_size && s.num_blocks == step_cache.num_blocks,
              "{}: the cache is not the one begin_step() checked the batch against", op);
  FLINT_CHECK(s.kv_heads == p.kv_heads && s.head_dim == p.head_dim,
              "{}: cache holds {} kv heads of {}, attention wants {} of {}", op, s.kv_heads, s.head_dim, p.kv_heads,
              p.head_dim);
  FLINT_CHECK(layer >= 0 && static_cast<size_t>(layer) < cache.k.size() && cache.k.size() == cache.v.size(),
              "{}: layer {} outside the cache's {} layers", op, layer, cache.k.size());
  return {s.num_blocks, s.kv_heads, s.block_size, s.head_dim};
}

void KvCacheShape::check() const {
  FLINT_CHECK(num_layers > 0 && num_blocks > 0 && block_size > 0 && kv_heads > 0 && head_dim > 0,
              "KV cache shape must be positive: {} layers, {} blocks of {}, {} kv heads, head_dim {}", num_layers,
              num_blocks, block_size, kv_heads, head_dim);
}

uint64_t KvCacheShape::bytes() const {
  const uint64_t per_layer = dtype_bytes(dtype, static_cast<uint64_t>(num_blocks) * static_cast<uint64_t>(kv_heads) *
                                                    static_cast<uint64_t>(block_size) * static_cast<uint64_t>(head_dim));
  return 2 * per_layer * static_cast<uint64_t>(num_layers);
}

Linear Backend::prepare_linear(const std::vector<Tensor>& host_parts, const Tensor& host_bias, DType compute_dtype) {
  FLINT_ASSERT(!host_parts.empty());
  Linear l;
  l.in_features = host_parts.front().size(1);
  for (const Tensor& part : host_parts) {
    FLINT_CHECK(part.dim() == 2 && part.size(1) == l.in_features, "linear parts disagree: {} vs in_features {}",
                shape_to_string(part.shape()), l.in_features);
    l.parts.push_back(prepare_weight(part, compute_dtype));
    l.out_features += part.size(0);
  }
  if (host_bias.defined()) {
    FLINT_CHECK(host_bias.numel() == l.out_features, "bias of {} elements for {} outputs", host_bias.numel(),
                l.out_features);
    l.bias = prepare_weight(host_bias, DType::f32);
  }
  return l;
}

void Backend::check_weights_fit(int64_t elements, const std::string& model) {
  (void)elements;
  (void)model;
}

Tensor Backend::dummy_weight(DType dtype, const Shape& shape, uint64_t key, bool is_norm) {
  (void)dtype;
  (void)shape;
  (void)key;
  (void)is_norm;
  return {};
}

std::vector<RowSample> Backend::sample_rows(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                                            const std::vector<PenalizedToken>& penalties) {
  sample_rows_async(logits, specs, penalties);
  return collect_samples();
}

void Backend::sample_rows_async(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                                const std::vector<PenalizedToken>& penalties) {
  (void)logits, (void)specs, (void)penalties;
  fail("the {} backend samples on the host: call sample_rows only where samples_on_device()", name());
}

std::vector<RowSample> Backend::collect_samples() {
  fail("the {} backend samples on the host: call collect_samples only where samples_on_device()", name());
}

void check_sampling_args(const Tensor& logits, const std::vector<RowSamplingSpec>& specs,
                         const std::vector<PenalizedToken>& penalties) {
  FLINT_CHECK(logits.defined() && logits.dtype() == DType::f32 && logits.dim() == 2 && logits.is_contiguous(),
              "sample_rows: logits must be a contiguous f32 [rows, vocab] tensor");
  const int64_t rows = logits.size(0), vocab = logits.size(1);
  FLINT_CHECK(vocab > 0 && vocab < (int64_t{1} << 31), "sample_rows: vocabulary of {} tokens", vocab);
  for (size_t s = 0; s < specs.size(); ++s) {
    const RowSamplingSpec& r = specs[s];
    FLINT_CHECK(r.row >= 0 && r.row < rows, "sample_rows: spec {} reads row {} of {}", s, r.row, rows);
    FLINT_CHECK(std::isfinite(r.temperature) && r.temperature >= 0 && r.top_p >= 0 && r.top_p <= 1 &&
                    r.min_p >= 0 && r.min_p <= 1 && std::isfinite(r.repetition_penalty) && r.repetition_penalty > 0 &&
                    std::isfinite(r.presence_penalty) && std::isfinite(r.frequency_penalty) && r.uniform >= 0 &&
                    r.uniform < 1,
                "sample_rows: spec {} has parameters out of range", s);
    FLINT_CHECK(r.penalties_begin >= 0 && r.penalties_count >= 0 &&
                    static_cast<size_t>(r.penalties_begin) + static_cast<size_t>(r.penalties_count) <= penalties.size(),
                "sample_rows: spec {} names penalties [{}, +{}) of {}", s, r.penalties_begin, r.penalties_count,
                penalties.size());
    for (int32_t j = 0; j < r.penalties_count; ++j) {
      const PenalizedToken& t = penalties[static_cast<size_t>(r.penalties_begin + j)];
      FLINT_CHECK(t.id >= 0 && t.id < vocab && t.generated >= 0, "sample_rows: spec {} penalises token {}", s, t.id);
      FLINT_CHECK(j == 0 || penalties[static_cast<size_t>(r.penalties_begin + j - 1)].id < t.id,
                  "sample_rows: spec {}'s penalised tokens are not sorted and unique", s);
    }
  }
}

}  // namespace flint
