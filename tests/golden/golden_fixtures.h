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
#include "model/llama.h"
#include "ops/batch.h"
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

// The mixed step both golden suites run, on a fresh cache of the model's
// backend: sequence a has 20 tokens cached and decodes token 20; b is a whole
// prompt of 33; c has 17 cached and continues with a chunk of 9 (all logits).
// Blocks are interleaved on purpose. Every sequence is a prefix of `ids`
// (>= 33 tokens), so row r of the returned host logits [11, V] should equal row
// mixed_batch_reference_row(r) of one prefill of `ids`.
inline Tensor run_mixed_batch(LlamaModel& model, const std::vector<TokenId>& ids, DType kv_dtype) {
  KvCache cache = model.backend().create_kv_cache(model.kv_cache_shape(16, 16, kv_dtype));
  const std::vector<int32_t> blocks_a = {7, 2}, blocks_b = {0, 9, 4}, blocks_c = {11, 5};
  auto prefill = [&](const std::vector<int32_t>& blocks, int32_t n) {
    BatchBuilder b(4);
    b.add_sequence(std::vector<TokenId>(ids.begin(), ids.begin() + n), 0, blocks, false);
    model.forward(b.build(), cache);
  };
  prefill(blocks_a, 20);
  prefill(blocks_c, 17);
  BatchBuilder mixed(4);
  mixed.add_sequence({ids[20]}, 20, blocks_a);
  mixed.add_sequence(std::vector<TokenId>(ids.begin(), ids.begin() + 33), 0, blocks_b);
  mixed.add_sequence(std::vector<TokenId>(ids.begin() + 17, ids.begin() + 26), 17, blocks_c, false, true);
  return model.backend().to_host(model.forward(mixed.build(), cache));
}
inline constexpr int64_t kMixedBatchRows = 1 + 1 + 9;
inline int64_t mixed_batch_reference_row(int64_t row) { return row == 0 ? 20 : row == 1 ? 32 : 17 + (row - 2); }

}  // namespace flint::testing
