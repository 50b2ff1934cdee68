// tests/io/io_test_util.h — building safetensors bytes by hand, catching errors.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <string_view>

#include "core/error.h"

namespace flint::testing {

// `v` as 8 little-endian bytes: the header length field.
inline std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// A file with exactly this header text (no padding added) and data section.
inline std::string raw_safetensors(std::string_view header, std::string_view data) {
  return le64(header.size()) + std::string(header) + std::string(data);
}

// The message of the flint::Error that `f` throws; a marker if it throws
// nothing or something else, so that a failed expectation prints what happened.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const flint::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not a flint::Error: ") + e.what() + ">";
  }
  return "<no error>";
}

}  // namespace flint::testing
