// tools/flint/model_options.h — the flags every command that loads a model takes.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "model/weight_source.h"

namespace flint::cli {

struct ModelOptions {
  std::string model = "dummy:tiny";  // checkpoint dir or dummy:<shape>
  std::string tokenizer;             // tokenizer dir overriding the model's
  std::string dummy_dtype = "bf16";  // weight dtype of dummy models
  uint64_t dummy_seed = 0;
};

void add_model_options(CLI::App& command, ModelOptions& options);
ModelSource open_model(const ModelOptions& options);

}  // namespace flint::cli

#include <memory>

#include "tokenizer/tokenizer.h"

namespace flint::cli {
// The model's tokenizer, or the built-in byte tokenizer for a dummy model
// without --tokenizer.
std::unique_ptr<Tokenizer> open_tokenizer(const ModelSource& model);
}  // namespace flint::cli
