// tests/golden/golden_fixtures.h — the golden fixtures (made by make_golden.py),
// shared by the CPU golden tests and their CUDA twins in tests/gpu.
#pragma once

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace flint::testing {

inline std::filesystem::path golden_fixtures_dir() { return source_dir() / "tests" / "golden" / "fixtures"; }

// Every fixture directory (one per model variant), sorted.
inline std::vector<std::string> golden_variants() {
  std::vector<std::string> out;
  if (!std::filesystem::exists(golden_fixtures_dir())) return out;
  for (const auto& e : std::filesystem::directory_iterator(golden_fixtures_dir()))
    if (std::filesystem::exists(e.path() / "reference.safetensors")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

struct GoldenReference {
  std::vector<TokenId> ids;
  Tensor logits;  // f32 [T, V], row t predicts token t + 1
  std::shared_ptr<const SafetensorsFile> file;  // keeps the mapped logits alive
};

inline GoldenReference load_golden_reference(const std::filesystem::path& dir) {
  GoldenReference r;
  r.file = SafetensorsFile::open((dir / "reference.safetensors").string());
  Tensor ids = r.file->view(*r.file->find("input_ids"));
  for (int64_t i = 0; i < ids.numel(); ++i) r.ids.push_back(static_cast<TokenId>(ids.data<int64_t>()[i]));
  r.logits = r.file->view(*r.file->find("logits"));
  return r;
}

}  // namespace flint::testing
