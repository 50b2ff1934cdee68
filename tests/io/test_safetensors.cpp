// The safetensors reader and writer on valid files: round trips of every dtype,
// the exact bytes the reference writer produces, alignment, metadata, writer
// errors, and the real checkpoints in ../shared/assets.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "io/safetensors.h"
#include "io_test_util.h"
#include "support/test_support.h"

namespace flint {
namespace {

using testing::error_of;
using testing::le64;
using testing::TempDir;
namespace fs = std::filesystem;

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// A tensor whose bytes are a deterministic function of `seed`.
Tensor random_tensor(DType dtype, Shape shape, uint32_t seed) {
  Tensor t = Tensor::empty(dtype, std::move(shape));
  std::mt19937 rng(seed);
  for (uint64_t i = 0; i < t.nbytes(); ++i) t.raw()[i] = static_cast<std::byte>(rng());
  return t;
}

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous_copy();
  return {reinterpret_cast<const char*>(c.raw()), static_cast<size_t>(c.nbytes())};
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TEST(Safetensors, RoundTripsEveryDtypeScalarAndEmptyTensors) {
  TempDir dir;
  NamedTensors tensors;
  uint32_t seed = 1;
  for (DType t : kAllDTypes) {
    if (!dtype_safetensors_name(t)) continue;  // packed 4-bit types have no safetensors name
    const std::string n(dtype_name(t));
    tensors.emplace_back(n + ".matrix", random_tensor(t, {3, 5}, seed++));
    tensors.emplace_back(n + ".scalar", random_tensor(t, {}, seed++));
    tensors.emplace_back(n + ".empty", random_tensor(t, {0, 7}, seed++));
    tensors.emplace_back(n + ".odd", random_tensor(t, {1, 3, 1}, seed++));
  }
  const std::string path = (dir / "all.safetensors").string();
  write_safetensors(path, tensors);

  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->path(), path);
  EXPECT_TRUE(f->metadata().empty());
  ASSERT_EQ(f->entries().size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, original] = tensors[i];
    const SafetensorsEntry& e = f->entries()[i];  // header order is the order given
    EXPECT_EQ(e.name, name);
    EXPECT_EQ(e.dtype, original.dtype()) << name;
    EXPECT_EQ(e.shape, original.shape()) << name;
    EXPECT_EQ(e.end - e.begin, original.nbytes()) << name;
    ASSERT_EQ(f->find(name), &e);
    const Tensor v = f->view(name);
    EXPECT_EQ(v.dtype(), original.dtype());
    EXPECT_EQ(v.shape(), original.shape());
    EXPECT_TRUE(v.is_contiguous());
    EXPECT_EQ(bytes_of(v), bytes_of(original)) << name;
    // The writer puts wide types first, so every view is naturally aligned.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.raw()) % static_cast<uintptr_t>(dtype_bits(v.dtype()) / 8), 0u) << name;
    EXPECT_EQ(v.raw(), f->view(e).raw());
  }
  EXPECT_EQ(f->data_offset() % 8, 0u);
  EXPECT_EQ(f->find("no.such.tensor"), nullptr);
}

TEST(Safetensors, ViewIsZeroCopyAndKeepsTheMappingAlive) {
  TempDir dir;
  const std::string path = (dir / "a.safetensors").string();
  const Tensor original = random_tensor(DType::f32, {4, 4}, 7);
  write_safetensors(path, {{"w", original}});
  Tensor v;
  {
    auto f = SafetensorsFile::open(path);
    v = f->view("w");
    const Tensor again = f->view("w");
    EXPECT_EQ(v.raw(), again.raw());  // the same mapped bytes, not a copy
    EXPECT_EQ(v.storage(), again.storage());
  }
  fs::remove(path);  // the mapping outlives both the file object and the name
  EXPECT_EQ(bytes_of(v), bytes_of(original));
}

// The exact bytes of the reference writer's documented examples
// (huggingface/safetensors tests): 8-byte length, compact JSON, space padding.
TEST(Safetensors, WritesTheReferenceLayoutByteForByte) {
  TempDir dir;
  Tensor t = Tensor::empty(DType::f32, {1, 2, 3});
  for (int i = 0; i < 6; ++i) t.data<float>()[i] = static_cast<float>(i);
  const std::string data = bytes_of(t);

  write_safetensors((dir / "a.safetensors").string(), {{"attn.0", t}});
  const std::string json_a = R"({"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(json_a.size() % 8, 0u);
  EXPECT_EQ(read_all(dir / "a.safetensors"), le64(json_a.size()) + json_a + data);

  write_safetensors((dir / "b.safetensors").string(), {{"attn0", t.reshape({1, 1, 2, 3})}});
  const std::string json_b = R"({"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  const std::string padded_b = json_b + std::string(7, ' ');
  ASSERT_EQ(padded_b.size() % 8, 0u);
  EXPECT_EQ(read_all(dir / "b.safetensors"), le64(padded_b.size()) + padded_b + data);

  write_safetensors((dir / "c.safetensors").string(), {}, {{"framework", "pt"}});
  const std::string json_c = R"({"__metadata__":{"framework":"pt"}})" + std::string(5, ' ');
  EXPECT_EQ(read_all(dir / "c.safetensors"), le64(json_c.size()) + json_c);
}

TEST(Safetensors, LaysOutWideTypesFirstButKeepsTheGivenOrderInTheHeader) {
  TempDir dir;
  const std::string path = (dir / "mixed.safetensors").string();
  // An odd-sized byte tensor first would leave every later tensor misaligned.
  const NamedTensors tensors = {{"bytes", random_tensor(DType::u8, {3}, 1)},
                                {"half", random_tensor(DType::bf16, {3}, 2)},
                                {"long", random_tensor(DType::i64, {1}, 3)},
                                {"float", random_tensor(DType::f32, {3}, 4)}};
  write_safetensors(path, tensors);
  auto f = SafetensorsFile::open(path);
  std::vector<std::string> names;
  for (const auto& e : f->entries()) names.push_back(e.name);
  EXPECT_EQ(names, (std::vector<std::string>{"bytes", "half", "long", "float"}));
  EXPECT_EQ(f->find("long")->begin, 0u);
  EXPECT_EQ(f->find("float")->begin, 8u);
  EXPECT_EQ(f->find("half")->begin, 20u);
  EXPECT_EQ(f->find("bytes")->begin, 26u);
  for (const auto& [name, t] : tensors) EXPECT_EQ(bytes_of(f->view(name)), bytes_of(t)) << name;
}

TEST(Safetensors, WritesStridedTensorsAsContiguousData) {
  TempDir dir;
  Tensor full = Tensor::empty(DType::f32, {4, 6});
  for (int i = 0; i < 24; ++i) full.data<float>()[i] = static_cast<float>(i);
  const Tensor columns = full.slice(1, 2, 5);  // [4, 3], row stride 6
  ASSERT_FALSE(columns.is_contiguous());
  const std::string path = (dir / "s.safetensors").string();
  write_safetensors(path, {{"cols", columns}, {"row", full.select(0, 2)}});
  auto f = SafetensorsFile::open(path);
  const Tensor cols = f->view("cols");
  ASSERT_EQ(cols.shape(), (Shape{4, 3}));
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(cols.data<float>()[r * 3 + c], static_cast<float>(r * 6 + c + 2));
  const Tensor row = f->view("row");
  ASSERT_EQ(row.shape(), (Shape{6}));
  for (int c = 0; c < 6; ++c) EXPECT_EQ(row.data<float>()[c], static_cast<float>(12 + c));
}

TEST(Safetensors, RoundTripsMetadata) {
  TempDir dir;
  const std::string path = (dir / "m.safetensors").string();
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"note", "tabs\tquotes\" and \xc3\xa9t\xc3\xa9"}, {"", "empty key"}, {"empty value", ""}};
  write_safetensors(path, {{"x", random_tensor(DType::i32, {2}, 3)}}, metadata);
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata(), metadata);
  EXPECT_EQ(f->entries().size(), 1u);
}

TEST(Safetensors, OverwritesAnExistingFileAndLeavesNoTemporaryFiles) {
  TempDir dir;
  const std::string path = (dir / "w.safetensors").string();
  write_safetensors(path, {{"a", random_tensor(DType::f16, {100}, 1)}});
  write_safetensors(path, {{"b", random_tensor(DType::f16, {2}, 2)}});
  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f->entries().size(), 1u);
  EXPECT_EQ(f->entries()[0].name, "b");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
  // The usual permissions (0666 less the umask), like any other new file.
  testing::write_bytes(dir / "plain", "x");
  EXPECT_EQ(fs::status(path).permissions(), fs::status(dir / "plain").permissions());
}

TEST(Safetensors, ViewOfAMissingTensorNamesItAndTheFile) {
  TempDir dir;
  const std::string path = (dir / "v.safetensors").string();
  write_safetensors(path, {{"a", random_tensor(DType::f32, {1}, 1)}});
  auto f = SafetensorsFile::open(path);
  const std::string error = error_of([&] { (void)f->view("model.norm.weight"); });
  EXPECT_NE(error.find(path), std::string::npos) << error;
  EXPECT_NE(error.find("tensor 'model.norm.weight'"), std::string::npos) << error;
}

TEST(Safetensors, WriterRejectsWhatItCannotStore) {
  TempDir dir;
  const std::string path = (dir / "bad.safetensors").string();
  const Tensor ok = random_tensor(DType::f32, {2}, 1);
  const struct {
    const char* name;
    NamedTensors tensors;
    std::map<std::string, std::string> metadata;
    std::string expected;
  } cases[] = {
      {"duplicate name", {{"a", ok}, {"b", ok}, {"a", ok}}, {}, "tensor 'a': given twice"},
      {"reserved name", {{"__metadata__", ok}}, {}, "reserved"},
      {"packed dtype", {{"q", Tensor::empty(DType::i4, {4})}}, {}, "dtype i4 has no safetensors name"},
      {"undefined tensor", {{"u", Tensor()}}, {}, "tensor 'u': tensor has no data"},
      {"name not UTF-8", {{"bad\xff", ok}}, {}, "not valid UTF-8"},
      {"metadata not UTF-8", {{"a", ok}}, {{"k", "\xc3("}}, "field '__metadata__': value"},
  };
  for (const auto& c : cases) {
    const std::string error = error_of([&] { write_safetensors(path, c.tensors, c.metadata); });
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.name << ": " << error;
    EXPECT_EQ(error.rfind(path, 0), 0u) << c.name << ": " << error;
    EXPECT_FALSE(fs::exists(path)) << c.name;
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(Safetensors, WriterNamesThePathOnIoFailure) {
  TempDir dir;
  const std::string path = (dir / "no-such-dir" / "x.safetensors").string();
  const std::string error = error_of([&] { write_safetensors(path, {{"a", random_tensor(DType::u8, {1}, 1)}}); });
  EXPECT_EQ(error.rfind(path + ": cannot create", 0), 0u) << error;
}

// ---- The real checkpoints in ../shared/assets (see MANIFEST.md).

// float32 `count` values at element `offset` of llama2.c's stories260K.bin,
// the independent source the -hf checkpoint was converted from.
std::vector<float> stories260k_bin_floats(const fs::path& bin, size_t offset, size_t count) {
  std::ifstream in(bin, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(7 * 4 + offset * 4));  // after 7 int32 config fields
  std::vector<float> out(count);
  in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(count * 4));
  EXPECT_TRUE(in.good());
  return out;
}

TEST(SafetensorsAssets, ReadsStories260K) {
  FLINT_REQUIRE_ASSETS();
  const fs::path models = testing::shared_assets() / "models";
  auto f = SafetensorsFile::open((models / "stories260K-hf" / "model.safetensors").string());
  EXPECT_EQ(f->entries().size(), 47u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->find("lm_head.weight"), nullptr);  // tied embeddings
  const struct {
    const char* name;
    Shape shape;
  } expected[] = {{"model.embed_tokens.weight", {512, 64}},
                  {"model.layers.0.self_attn.q_proj.weight", {64, 64}},
                  {"model.layers.4.self_attn.k_proj.weight", {32, 64}},
                  {"model.layers.2.mlp.gate_proj.weight", {172, 64}},
                  {"model.layers.2.mlp.down_proj.weight", {64, 172}},
                  {"model.norm.weight", {64}}};
  for (const auto& e : expected) {
    const SafetensorsEntry* entry = f->find(e.name);
    ASSERT_NE(entry, nullptr) << e.name;
    EXPECT_EQ(entry->dtype, DType::f32) << e.name;
    EXPECT_EQ(entry->shape, e.shape) << e.name;
  }
  // Same values as the llama2.c original: the embedding comes first there, the
  // final norm after the 5 layers' weights.
  const fs::path bin = models / "stories260K" / "stories260K.bin";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " missing";
  const size_t dim = 64, hidden = 172, layers = 5, kv_dim = 32, vocab = 512;
  const size_t norm_offset =
      vocab * dim + layers * (dim + dim * dim + 2 * kv_dim * dim + dim * dim + dim + 3 * hidden * dim);
  const Tensor embed = f->view("model.embed_tokens.weight");
  const std::vector<float> embed_bin = stories260k_bin_floats(bin, 0, vocab * dim);
  EXPECT_EQ(std::memcmp(embed.raw(), embed_bin.data(), embed_bin.size() * 4), 0);
  const Tensor norm = f->view("model.norm.weight");
  const std::vector<float> norm_bin = stories260k_bin_floats(bin, norm_offset, dim);
  for (size_t i = 0; i < dim; ++i) EXPECT_EQ(norm.data<float>()[i], norm_bin[i]) << i;
}

TEST(SafetensorsAssets, ReadsFlintCode22mThroughTheCheckpointReader) {
  FLINT_REQUIRE_ASSETS();
  const fs::path dir = testing::shared_assets() / "models" / "flint-code-22m";
  const SafetensorsCheckpoint c = SafetensorsCheckpoint::open(dir.string());
  ASSERT_EQ(c.files().size(), 1u);
  EXPECT_EQ(c.all().size(), 56u);  // 1 embedding + 6 layers x 9 + final norm
  const auto embed = c.find("model.embed_tokens.weight");
  ASSERT_NE(embed.entry, nullptr);
  EXPECT_EQ(embed.entry->dtype, DType::bf16);
  EXPECT_EQ(embed.entry->shape, (Shape{32000, 384}));
  EXPECT_EQ(c.find("model.layers.5.self_attn.k_proj.weight").entry->shape, (Shape{128, 384}));  // 2 KV heads x 64
  EXPECT_EQ(c.find("model.layers.0.mlp.up_proj.weight").entry->shape, (Shape{1024, 384}));
  // A trained RMSNorm weight: finite, positive on the whole and not all equal.
  const Tensor norm = c.view("model.norm.weight");
  ASSERT_EQ(norm.shape(), (Shape{384}));
  double sum = 0;
  float lo = norm.item_f32(0), hi = lo;
  for (int64_t i = 0; i < norm.numel(); ++i) {
    const float v = norm.item_f32(i);
    ASSERT_TRUE(std::isfinite(v)) << i;
    sum += v;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  EXPECT_GT(sum / 384, 0.0);
  EXPECT_LT(lo, hi);
}

}  // namespace
}  // namespace flint
