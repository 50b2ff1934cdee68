// core/error.h — the one error type of Flint.
//
// Contract: every failure the user can cause (a bad file, flag, tensor, request
// field) is reported by throwing flint::Error. The error carries where it
// happened — file, tensor name, field — and what() renders it as one line:
//     "<file>: tensor '<name>': field '<field>': <message>"
// (parts that are empty are left out). Library code throws; only the CLI and the
// server catch and print. Nothing in the library calls exit().
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace flint {

struct ErrorContext {
  std::string file;    // path of the file at fault, if any
  std::string tensor;  // tensor name at fault, if any
  std::string field;   // config/JSON/request field at fault, if any
};

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ErrorContext context = {});

  const std::string& message() const { return message_; }
  const ErrorContext& context() const { return context_; }

  // Returns a copy with the given context part filled in where it was empty,
  // so an outer layer can add the file name to an error thrown deeper down.
  Error with_file(const std::string& file) const;
  Error with_tensor(const std::string& tensor) const;
  Error with_field(const std::string& field) const;

 private:
  std::string message_;
  ErrorContext context_;
};

// Throws flint::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail(ErrorContext context, fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...), std::move(context));
}

}  // namespace flint

// Checks an invariant the user can break (input validation). For internal
// invariants that only a bug can break, FLINT_ASSERT says so in the message.
#define FLINT_CHECK(cond, ...)            \
  do {                                    \
    if (!(cond)) ::flint::fail(__VA_ARGS__); \
  } while (0)

#define FLINT_ASSERT(cond)                                                                   \
  do {                                                                                       \
    if (!(cond))                                                                             \
      ::flint::fail("internal error: {} ({}:{})", #cond, __FILE__, __LINE__);                \
  } while (0)
