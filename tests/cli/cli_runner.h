// tests/cli/cli_runner.h — runs the real flint binary and captures what it says.
#pragma once

#include <string>
#include <vector>

namespace flint::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `flint args...` (no shell: arguments are passed as they are).
CliResult run_flint(const std::vector<std::string>& args, const std::string& stdin_text = "");

}  // namespace flint::testing
