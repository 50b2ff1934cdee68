// model/weight_source.h — where a model's weights come from.
//
// Contract:
// - A ModelSource is a validated LlamaConfig plus a WeightSource whose headers()
//   match check_llama_tensors() for that config (open_model() checks this before
//   returning, reading no weight data).
// - WeightSource::load() returns a CPU tensor: for checkpoints a view of the
//   mmap'd file (no copy); for dummy models freshly generated values.
//   load_on() may instead return a tensor already on the backend's device.
// - Dummy weights are a pure function of (seed, tensor name, element index)
//   (see dummy_weight_value), so any device can generate them in place and every
//   device gets the same values.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/weight_map.h"
#include "ops/backend.h"

namespace flint {

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual const std::vector<TensorHeader>& headers() const = 0;
  virtual Tensor load(const std::string& name) const = 0;  // throws Error naming the tensor if absent
  // The tensor as `backend` will prepare it: load(name), except that a dummy
  // source asks the backend to generate it in place (Backend::dummy_weight),
  // so a GPU never waits on a multi-GB host copy of random numbers.
  virtual Tensor load_on(const std::string& name, Backend& /*backend*/) const { return load(name); }
  virtual std::string describe() const = 0;                // "3 safetensors files", "dummy (seed 0)"
};

struct ModelSource {
  std::string origin;  // the --model argument
  LlamaConfig config;
  std::shared_ptr<const WeightSource> weights;
  // Directory holding tokenizer files: the checkpoint dir, or --tokenizer; empty
  // for a dummy model without one (the byte tokenizer is used then).
  std::string tokenizer_dir;
  bool is_dummy = false;
};

// `spec` is a checkpoint directory (config.json + model.safetensors[.index.json])
// or "dummy:<shape>" (see dummy_shape_names()). `tokenizer_dir` overrides where
// the tokenizer is read from. `dummy_dtype` sets a dummy model's weight dtype.
ModelSource open_model(const std::string& spec, const std::string& tokenizer_dir = "",
                       DType dummy_dtype = DType::bf16, uint64_t dummy_seed = 0);

// --- dummy models ---------------------------------------------------------------
const std::vector<std::string>& dummy_shape_names();  // tiny, llama-3.2-1b, ...
LlamaConfig dummy_config(const std::string& shape);   // throws Error listing the valid shapes

// Values: core/dummy_values.h, keyed by the seed and the tensor's name.
uint64_t dummy_tensor_key(uint64_t seed, const std::string& name);
bool is_norm_weight(const std::string& name);

std::shared_ptr<const WeightSource> make_dummy_weights(const LlamaConfig& config, DType dtype, uint64_t seed);

}  // namespace flint
