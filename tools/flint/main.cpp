// flint — the command-line entry point. Each subcommand lives in cmd_<name>.cpp
// and registers itself here; errors from the library print as one line.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "core/error.h"
#include "tools/flint/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"flint: run Llama-family models from Hugging Face checkpoints"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "flint 0.1.0");
  for (const auto& add : flint::cli::command_registry()) add(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const flint::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
