// tools/flint/commands.h — how subcommands plug into the CLI.
//
// Each cmd_<name>.cpp defines a function that adds its subcommand (flags and a
// callback) to the app, and registers it with FLINT_REGISTER_COMMAND. The
// callback runs inside main's try block, so library errors print as one line.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace flint::cli {

using CommandAdder = std::function<void(CLI::App&)>;
std::vector<CommandAdder>& command_registry();

struct CommandRegistration {
  explicit CommandRegistration(CommandAdder adder) { command_registry().push_back(std::move(adder)); }
};

}  // namespace flint::cli

#define FLINT_REGISTER_COMMAND(fn) static ::flint::cli::CommandRegistration flint_register_##fn{fn}
