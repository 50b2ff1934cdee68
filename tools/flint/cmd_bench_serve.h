// tools/flint/cmd_bench_serve.h — `flint bench serve`, a load generator for
// any OpenAI-compatible server; added under `flint bench` by cmd_bench.cpp.
#pragma once

#include <CLI/CLI.hpp>

namespace flint::cli {

void add_bench_serve(CLI::App& bench);

}  // namespace flint::cli
