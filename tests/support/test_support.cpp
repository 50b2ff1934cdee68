#include "support/test_support.h"

#include <stdlib.h>

#include <fstream>
#include <stdexcept>

namespace flint::testing {

std::filesystem::path shared_assets() {
  if (const char* env = std::getenv("FLINT_SHARED_ASSETS")) return env;
  return FLINT_SHARED_ASSETS;
}
std::filesystem::path source_dir() { return FLINT_SOURCE_DIR; }
std::filesystem::path binary_dir() { return FLINT_BINARY_DIR; }

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "flint-test-XXXXXX").string();
  if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_text(const std::filesystem::path& path, const std::string& text) { write_bytes(path, text); }

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace flint::testing
