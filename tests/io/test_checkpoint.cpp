// Checkpoint directories: model.safetensors, or model.safetensors.index.json
// and its shards, written as transformers' save_pretrained writes them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>

#include "io/safetensors.h"
#include "io_test_util.h"
#include "support/test_support.h"

namespace flint {
namespace {

using testing::error_of;
using testing::TempDir;
using testing::write_text;
namespace fs = std::filesystem;
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

Tensor filled(DType dtype, Shape shape, uint32_t seed) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  std::mt19937 rng(seed);
  for (uint64_t i = 0; i < t.nbytes(); ++i) t.raw()[i] = static_cast<std::byte>(rng());
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Names and byte sizes chosen so that a 100-byte limit gives known shards.
NamedTensors small_model() {
  return {{"model.embed_tokens.weight", filled(DType::f32, {5, 4}, 1)},        // 80 bytes
          {"model.layers.0.mlp.up_proj.weight", filled(DType::bf16, {6}, 2)},  // 12
          {"model.layers.0.big", filled(DType::u8, {300}, 3)},                 // 300: a shard of its own
          {"model.layers.1.scale", filled(DType::f16, {}, 4)},                 // 2
          {"model.norm.weight", filled(DType::f32, {4}, 5)},                   // 16
          {"lm_head.weight", filled(DType::i64, {10}, 6)},                     // 80
          {"empty", filled(DType::f32, {0}, 7)}};                              // 0
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(read_file(p.string())); }

TEST(Checkpoint, ReadsASingleFile) {
  TempDir dir;
  const NamedTensors tensors = small_model();
  write_safetensors((dir / "model.safetensors").string(), tensors);
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(dir.path().string());
  ASSERT_EQ(c.files().size(), 1u);
  EXPECT_EQ(c.files()[0]->path(), (dir / "model.safetensors").string());
  const auto all = c.all();
  ASSERT_EQ(all.size(), tensors.size());
  for (size_t i = 1; i < all.size(); ++i) EXPECT_LT(all[i - 1].entry->name, all[i].entry->name);  // sorted by name
  for (const auto& [name, t] : tensors) {
    const auto located = c.find(name);
    ASSERT_NE(located.entry, nullptr) << name;
    EXPECT_EQ(located.file, c.files()[0].get());
    EXPECT_TRUE(same_bytes(c.view(name), t)) << name;
  }
  EXPECT_EQ(c.find("missing").file, nullptr);
  EXPECT_EQ(c.find("missing").entry, nullptr);
  const std::string error = error_of([&] { (void)c.view("missing"); });
  EXPECT_NE(error.find(dir.path().string() + ": tensor 'missing': not in the checkpoint"), std::string::npos) << error;
}

// huggingface_hub's split: a tensor over the limit is a shard of its own, placed
// when it is met; otherwise a shard is closed when the next tensor would tip it.
TEST(Checkpoint, ShardsAsSavePretrainedDoes) {
  TempDir dir;
  const NamedTensors tensors = small_model();
  write_sharded_safetensors(dir.path().string(), tensors, 100);

  const std::vector<std::vector<std::string>> expected_shards = {
      {"model.layers.0.big"},
      {"model.embed_tokens.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.1.scale"},
      {"model.norm.weight", "lm_head.weight", "empty"}};
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path())) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                             "model-00003-of-00003.safetensors", "model.safetensors.index.json"}));

  const nlohmann::json index = read_json(dir / "model.safetensors.index.json");
  uint64_t total = 0;
  for (const auto& [name, t] : tensors) total += t.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"], total);
  nlohmann::json expected_map = nlohmann::json::object();
  for (size_t s = 0; s < expected_shards.size(); ++s) {
    const std::string file = fmt::format("model-{:05d}-of-00003.safetensors", s + 1);
    auto shard = SafetensorsFile::open((dir / file).string());
    std::vector<std::string> names;
    for (const auto& e : shard->entries()) names.push_back(e.name);
    EXPECT_EQ(names, expected_shards[s]) << file;
    EXPECT_EQ(shard->metadata(), (std::map<std::string, std::string>{{"format", "pt"}})) << file;
    for (const auto& n : expected_shards[s]) expected_map[n] = file;
  }
  EXPECT_EQ(index["weight_map"], expected_map);
  EXPECT_EQ(index.size(), 2u);
  // json.dumps(index, indent=2, sort_keys=True) + "\n"
  EXPECT_EQ(read_file((dir / "model.safetensors.index.json").string()), index.dump(2) + "\n");

  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(dir.path().string());
  EXPECT_EQ(c.files().size(), 3u);
  EXPECT_EQ(c.all().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    EXPECT_TRUE(same_bytes(c.view(name), t)) << name;
    EXPECT_EQ(fs::path(c.find(name).file->path()).filename(), expected_map[name].get<std::string>()) << name;
  }
}

TEST(Checkpoint, OneShardStillGetsAnIndex) {
  TempDir dir;
  write_sharded_safetensors(dir.path().string(), small_model(), uint64_t{1} << 30);
  EXPECT_TRUE(fs::exists(dir / "model-00001-of-00001.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  EXPECT_EQ(SafetensorsCheckpoint::open(dir.path().string()).all().size(), small_model().size());
}

TEST(Checkpoint, ShardedWriteReplacesEarlierWeights) {
  TempDir dir;
  write_text(dir / "config.json", "{}");
  write_safetensors((dir / "model.safetensors").string(), {{"old", filled(DType::u8, {1}, 1)}});
  write_sharded_safetensors(dir.path().string(), small_model(), 10);  // many shards
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));                // it would shadow the index
  write_sharded_safetensors(dir.path().string(), small_model(), 100);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir.path())) files.push_back(e.path().filename().string());
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model-00001-of-00003.safetensors",
                                             "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors",
                                             "model.safetensors.index.json"}));
  EXPECT_EQ(SafetensorsCheckpoint::open(dir.path().string()).files().size(), 3u);
}

TEST(Checkpoint, ShardedWriterRejectsBadInput) {
  TempDir dir;
  const std::string error = error_of([&] { write_sharded_safetensors(dir.path().string(), small_model(), 0); });
  EXPECT_NE(error.find("maximum shard size"), std::string::npos) << error;
  NamedTensors twice = small_model();
  twice.push_back(twice[0]);
  const std::string dup = error_of([&] { write_sharded_safetensors(dir.path().string(), twice, 100); });
  EXPECT_NE(dup.find("tensor 'model.embed_tokens.weight': given twice"), std::string::npos) << dup;
  EXPECT_TRUE(fs::is_empty(dir.path()));  // nothing written before the check
}

// Like transformers' from_pretrained: the single file wins over an index.
TEST(Checkpoint, PrefersTheSingleFileOverAnIndex) {
  TempDir dir;
  write_sharded_safetensors(dir.path().string(), small_model(), 100);
  write_safetensors((dir / "model.safetensors").string(), {{"only", filled(DType::f32, {1}, 9)}});
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(dir.path().string());
  ASSERT_EQ(c.files().size(), 1u);
  EXPECT_NE(c.find("only").entry, nullptr);
  EXPECT_EQ(c.find("model.norm.weight").entry, nullptr);
}

TEST(Checkpoint, NamesTheDirectoryWhenThereAreNoWeights) {
  TempDir dir;
  std::string error = error_of([&] { (void)SafetensorsCheckpoint::open(dir.path().string()); });
  EXPECT_EQ(error, dir.path().string() + ": no model.safetensors or model.safetensors.index.json in this directory");
  const std::string missing = (dir / "nope").string();
  error = error_of([&] { (void)SafetensorsCheckpoint::open(missing); });
  EXPECT_EQ(error, missing + ": not a checkpoint directory");
  fs::create_directory(dir / "model.safetensors");  // a directory, not a file
  error = error_of([&] { (void)SafetensorsCheckpoint::open(dir.path().string()); });
  EXPECT_NE(error.find("no model.safetensors or"), std::string::npos) << error;
}

TEST(Checkpoint, ReportsABrokenSingleFileByItsPath) {
  TempDir dir;
  write_safetensors((dir / "model.safetensors").string(), small_model());
  fs::resize_file(dir / "model.safetensors", 100);
  const std::string error = error_of([&] { (void)SafetensorsCheckpoint::open(dir.path().string()); });
  EXPECT_EQ(error.rfind((dir / "model.safetensors").string() + ": ", 0), 0u) << error;
}

struct IndexCase {
  const char* name;
  std::function<void(const fs::path& dir, nlohmann::ordered_json& index)> breakage;
  std::string expected;  // substring of the message
  std::string blamed;    // file the message must start with, relative to the dir
};

TEST(Checkpoint, RejectsMalformedIndexesAndShards) {
  const std::string index_name = "model.safetensors.index.json";
  const std::string shard1 = "model-00001-of-00003.safetensors";
  const std::string shard2 = "model-00002-of-00003.safetensors";
  const std::string shard3 = "model-00003-of-00003.safetensors";
  auto set_text = [&](std::string text) {
    return [text, index_name](const fs::path& dir, nlohmann::ordered_json& index) {
      index = nullptr;  // not rewritten from the object
      write_text(dir / index_name, text);
    };
  };
  const IndexCase cases[] = {
      {"not JSON", set_text("{\"weight_map\": {"), "not valid JSON", index_name},
      {"empty file", set_text(""), "not valid JSON", index_name},
      {"an array", set_text("[]"), "expected a JSON object, got an array", index_name},
      {"duplicate tensor", set_text(R"({"weight_map": {"a": ")" + shard1 + R"(", "a": ")" + shard2 + "\"}}"),
       "key 'a' appears more than once", index_name},
      {"no weight_map", [](const fs::path&, auto& index) { index.erase("weight_map"); }, "field 'weight_map': missing",
       index_name},
      {"weight_map a list",
       [](const fs::path&, auto& index) {
         index["weight_map"] = {1, 2};
       },
       "field 'weight_map': expected an object of tensor name -> shard file, got an array", index_name},
      {"shard not a string", [](const fs::path&, auto& index) { index["weight_map"]["model.norm.weight"] = 3; },
       "tensor 'model.norm.weight': field 'weight_map': expected a shard file name, got a number", index_name},
      {"metadata a string", [](const fs::path&, auto& index) { index["metadata"] = "x"; },
       "field 'metadata': expected an object, got a string", index_name},
      {"missing shard", [&](const fs::path& dir, auto&) { fs::remove(dir / shard2); },
       "shard 'model-00002-of-00003.safetensors' named in the weight_map is missing", index_name},
      {"parent directory", [](const fs::path&, auto& index) { index["weight_map"]["model.norm.weight"] = ".."; },
       "shard '..' is not a plain file name", index_name},
      {"path traversal",
       [](const fs::path&, auto& index) { index["weight_map"]["model.norm.weight"] = "../other/model.safetensors"; },
       "shard '../other/model.safetensors' is not a plain file name", index_name},
      {"absolute path", [](const fs::path&, auto& index) { index["weight_map"]["model.norm.weight"] = "/etc/passwd"; },
       "is not a plain file name", index_name},
      {"subdirectory", [](const fs::path&, auto& index) { index["weight_map"]["model.norm.weight"] = "sub/x"; },
       "is not a plain file name", index_name},
      {"empty shard name", [](const fs::path&, auto& index) { index["weight_map"]["model.norm.weight"] = ""; },
       "shard '' is not a plain file name", index_name},
      {"tensor missing from its shard",
       [&](const fs::path&, auto& index) { index["weight_map"]["model.layers.9.ghost"] = shard1; },
       "tensor 'model.layers.9.ghost': listed in", shard1},
      {"tensor in a shard but not in the index",
       [](const fs::path&, auto& index) { index["weight_map"].erase("model.norm.weight"); },
       "tensor 'model.norm.weight': in this shard but not in the weight_map of", shard3},
      {"tensor in another shard than the index says",
       [&](const fs::path&, auto& index) { index["weight_map"]["model.norm.weight"] = shard1; },
       "tensor 'model.norm.weight': in this shard but the weight_map of", shard3},
      {"the same tensor in two shards",
       [&](const fs::path& dir, auto&) {
         write_safetensors((dir / shard2).string(), {{"model.embed_tokens.weight", filled(DType::f32, {5, 4}, 1)},
                                                     {"model.layers.0.mlp.up_proj.weight", filled(DType::bf16, {6}, 2)},
                                                     {"model.layers.1.scale", filled(DType::f16, {}, 4)},
                                                     {"model.layers.0.big", filled(DType::u8, {300}, 3)}});
       },
       "tensor 'model.layers.0.big': also in shard", shard2},
      {"a broken shard", [&](const fs::path& dir, auto&) { fs::resize_file(dir / shard3, 20); },
       "runs past the end of the file", shard3},
  };
  for (const IndexCase& c : cases) {
    TempDir dir;
    write_sharded_safetensors(dir.path().string(), small_model(), 100);
    auto index = nlohmann::ordered_json::parse(read_file((dir / index_name).string()));
    c.breakage(dir.path(), index);
    if (!index.is_null()) write_text(dir / index_name, index.dump(2));
    const std::string error = error_of([&] { (void)SafetensorsCheckpoint::open(dir.path().string()); });
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.name << "\n  got: " << error;
    EXPECT_EQ(error.rfind((dir / c.blamed).string() + ": ", 0), 0u) << c.name << "\n  got: " << error;
  }
}

}  // namespace
}  // namespace flint
