// tests/support/test_support.h — what many test files need.
#pragma once

#include <filesystem>
#include <string>

namespace flint::testing {

// ../shared/assets beside the checkout (real tokenizers, small models, text).
std::filesystem::path shared_assets();
// Skips the current test with a printed reason when the assets are missing.
#define FLINT_REQUIRE_ASSETS()                                                                   \
  do {                                                                                           \
    if (!std::filesystem::exists(::flint::testing::shared_assets()))                             \
      GTEST_SKIP() << "shared assets not found at " << ::flint::testing::shared_assets();        \
  } while (0)

std::filesystem::path source_dir();  // the repository root
std::filesystem::path binary_dir();  // the CMake build directory

// A fresh directory under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

void write_text(const std::filesystem::path& path, const std::string& text);
void write_bytes(const std::filesystem::path& path, const std::string& bytes);

}  // namespace flint::testing
