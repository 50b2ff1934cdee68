#include "tools/flint/model_options.h"

#include "core/error.h"

namespace flint::cli {

void add_model_options(CLI::App& command, ModelOptions& o) {
  command.add_option("--model,-m", o.model, "checkpoint directory or dummy:<shape>")->capture_default_str();
  command.add_option("--tokenizer", o.tokenizer, "directory with the tokenizer files (default: the model's)");
  command.add_option("--dummy-dtype", o.dummy_dtype, "weight dtype of dummy models: bf16, f16, f32")
      ->capture_default_str();
  command.add_option("--dummy-seed", o.dummy_seed, "seed of dummy weights")->capture_default_str();
}

ModelSource open_model(const ModelOptions& o) {
  const auto dtype = dtype_from_name(o.dummy_dtype);
  FLINT_CHECK(dtype.has_value(), ErrorContext{.field = "--dummy-dtype"}, "unknown dtype '{}'", o.dummy_dtype);
  return flint::open_model(o.model, o.tokenizer, *dtype, o.dummy_seed);
}

}  // namespace flint::cli

namespace flint::cli {

std::unique_ptr<Tokenizer> open_tokenizer(const ModelSource& m) {
  if (!m.tokenizer_dir.empty()) return load_tokenizer(m.tokenizer_dir);
  std::optional<TokenId> bos;
  if (!m.config.bos_token_ids.empty()) bos = m.config.bos_token_ids.front();
  return make_byte_tokenizer(static_cast<int32_t>(m.config.vocab_size), bos, m.config.eos_token_ids);
}

}  // namespace flint::cli
