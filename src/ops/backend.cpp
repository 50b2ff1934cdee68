#include "ops/backend.h"

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

}  // namespace flint
