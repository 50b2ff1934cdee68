#include "model/weight_source.h"

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"

namespace flint {
namespace {

class CheckpointWeights final : public WeightSource {
 public:
  explicit CheckpointWeights(SafetensorsCheckpoint checkpoint) : checkpoint_(std::move(checkpoint)) {
    for (const auto& located : checkpoint_.all())
      headers_.push_back({located.entry->name, located.entry->dtype, located.entry->shape});
  }
  const std::vector<TensorHeader>& headers() const override { return headers_; }
  Tensor load(const std::string& name) const override { return checkpoint_.view(name); }
  std::string describe() const override {
    const size_t n = checkpoint_.files().size();
    return fmt::format("{} safetensors file{}", n, n == 1 ? "" : "s");
  }

 private:
  SafetensorsCheckpoint checkpoint_;
  std::vector<TensorHeader> headers_;
};

}  // namespace

ModelSource open_model(const std::string& spec, const std::string& tokenizer_dir, DType dummy_dtype,
                       uint64_t dummy_seed) {
  ModelSource m;
  m.origin = spec;
  if (spec.rfind("dummy:", 0) == 0) {
    m.is_dummy = true;
    m.config = dummy_config(spec.substr(6));
    m.config.dtype = dummy_dtype;
    m.weights = make_dummy_weights(m.config, dummy_dtype, dummy_seed);
    m.tokenizer_dir = tokenizer_dir;
    return m;
  }
  namespace fs = std::filesystem;
  FLINT_CHECK(fs::is_directory(spec), ErrorContext{.field = "--model"},
              "'{}' is neither a checkpoint directory nor dummy:<shape>", spec);
  const std::string config_path = (fs::path(spec) / "config.json").string();
  FLINT_CHECK(fs::exists(config_path), ErrorContext{.file = config_path}, "missing: a checkpoint needs config.json");
  m.config = load_llama_config(config_path);
  auto weights = std::make_shared<CheckpointWeights>(SafetensorsCheckpoint::open(spec));
  check_llama_tensors(m.config, weights->headers(), spec);
  m.weights = std::move(weights);
  m.tokenizer_dir = tokenizer_dir.empty() ? spec : tokenizer_dir;
  return m;
}

}  // namespace flint
