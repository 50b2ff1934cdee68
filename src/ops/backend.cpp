#include "ops/backend.h"

#include "core/error.h"

namespace flint {

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
