#include "core/mapped_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <string>

#include "core/error.h"
#include "support/test_support.h"

namespace flint {
namespace {

using testing::TempDir;
using testing::write_bytes;

// Every byte value, NULs included, so nothing treats the contents as text.
std::string all_bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 7 + i / 256) & 0xFF);
  return s;
}

// Runs `body`, expecting a flint::Error that names `path` as its file and
// whose what() contains `needle`.
template <typename Body>
void expect_file_error(Body&& body, const std::string& path, const std::string& needle) {
  try {
    body();
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.context().file, path);
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(path + ": ", 0), 0u) << what;
    EXPECT_NE(what.find(needle), std::string::npos) << "'" << what << "' lacks '" << needle << "'";
  }
}

TEST(MappedFile, MapsTheWholeFile) {
  TempDir dir;
  const std::string path = (dir / "weights.bin").string();
  const std::string contents = all_bytes(10000);
  write_bytes(path, contents);
  const auto file = MappedFile::open(path);
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->size(), contents.size());
  EXPECT_EQ(file->bytes().size(), contents.size());
  EXPECT_EQ(file->data(), file->bytes().data());
  EXPECT_EQ(file->device(), Device::cpu);
  EXPECT_EQ(std::memcmp(file->bytes().data(), contents.data(), contents.size()), 0);
}

TEST(MappedFile, TensorsViewTheMappingAndKeepItAlive) {
  TempDir dir;
  const std::string path = (dir / "t.bin").string();
  const float values[] = {1.5f, -2.0f, 3.25f};
  std::string contents(4, 'x');
  contents.append(reinterpret_cast<const char*>(values), sizeof values);
  write_bytes(path, contents);
  Tensor t;
  {
    auto file = MappedFile::open(path);
    t = Tensor::wrap(file, 4, DType::f32, {3});
    EXPECT_EQ(t.raw(), file->data() + 4);
  }
  // The last reference to the mapping is the tensor's.
  EXPECT_EQ(t.storage().use_count(), 1);
  EXPECT_EQ(t.item_f32(0), 1.5f);
  EXPECT_EQ(t.item_f32(2), 3.25f);
  EXPECT_THROW(Tensor::wrap(t.storage(), 4, DType::f32, {4}), Error);
}

TEST(MappedFile, EmptyFileGivesAnEmptySpan) {
  TempDir dir;
  const std::string path = (dir / "empty").string();
  write_bytes(path, "");
  const auto file = MappedFile::open(path);
  EXPECT_EQ(file->size(), 0u);
  EXPECT_TRUE(file->bytes().empty());
  EXPECT_EQ(Tensor::wrap(file, 0, DType::bf16, {0}).numel(), 0);
  EXPECT_THROW(Tensor::wrap(file, 0, DType::u8, {1}), Error);
}

TEST(MappedFile, ErrorsNameThePath) {
  TempDir dir;
  const std::string missing = (dir / "no-such-file.safetensors").string();
  expect_file_error([&] { MappedFile::open(missing); }, missing, "No such file");
  expect_file_error([&] { MappedFile::open(dir.path().string()); }, dir.path().string(), "not a regular file");
  expect_file_error([&] { MappedFile::open("/dev/null"); }, "/dev/null", "not a regular file");
  const std::string below_a_file = (dir / "weights.bin").string();
  write_bytes(below_a_file, "x");
  expect_file_error([&] { MappedFile::open(below_a_file + "/inner"); }, below_a_file + "/inner", "Not a directory");
  // A FIFO with no writer must be refused, not waited on.
  const std::string fifo = (dir / "fifo").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_file_error([&] { MappedFile::open(fifo); }, fifo, "not a regular file");
}

TEST(ReadFile, ReadsEveryByte) {
  TempDir dir;
  const std::string path = (dir / "blob").string();
  // Larger than any one read() so the loop is exercised.
  const std::string contents = all_bytes(300000);
  write_bytes(path, contents);
  EXPECT_EQ(read_file(path), contents);
  write_bytes(path, "");
  EXPECT_EQ(read_file(path), "");
  write_bytes(path, std::string("a\0b", 3));
  EXPECT_EQ(read_file(path), std::string("a\0b", 3));
}

TEST(ReadFile, ErrorsNameThePath) {
  TempDir dir;
  const std::string missing = (dir / "config.json").string();
  expect_file_error([&] { read_file(missing); }, missing, "No such file");
  // A directory is an error, not an empty file.
  expect_file_error([&] { read_file(dir.path().string()); }, dir.path().string(), "Is a directory");
}

}  // namespace
}  // namespace flint
