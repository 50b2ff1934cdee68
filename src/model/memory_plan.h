// model/memory_plan.h — how many bytes a model needs to run, before running it.
//
// Contract: pure arithmetic over the config and tensor headers; touches no
// weight data. Activation bytes are an upper estimate for one step of
// `max_batched_tokens` tokens with f32 activations.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "model/config.h"
#include "model/weight_map.h"

namespace flint {

struct MemoryPlanInput {
  DType kv_dtype = DType::bf16;
  int64_t max_seq_len = 4096;        // longest sequence (prompt + output)
  int64_t max_batch = 1;             // sequences resident at once
  int64_t max_batched_tokens = 2048; // tokens processed in one step
};

struct MemoryPlan {
  int64_t num_parameters = 0;             // elements of the weights the model uses
  uint64_t weight_bytes = 0;
  std::map<DType, uint64_t> weight_bytes_by_dtype;
  // Bytes one decode step reads: every weight once, but one row of the
  // embedding table (unless the table is also the lm_head).
  uint64_t decode_bytes_per_step = 0;
  uint64_t kv_bytes_per_token = 0;
  uint64_t kv_bytes = 0;                  // max_seq_len * max_batch tokens
  uint64_t activation_bytes = 0;
  uint64_t total_bytes = 0;
};

MemoryPlan plan_memory(const LlamaConfig& config, const std::vector<TensorHeader>& weights,
                       const MemoryPlanInput& input);

std::string format_bytes(uint64_t bytes);  // "15.01 GB" (powers of 1000), "312 B"

}  // namespace flint
