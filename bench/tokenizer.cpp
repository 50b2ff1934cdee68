// Tokenizer throughput (one thread): Llama 3 byte-level BPE on mixed English
// and code, and on megabyte-long single pre-tokens to show that time grows
// linearly with input length (a quadratic regex or merge loop would not).
//
// Reads ../shared/assets (or $FLINT_SHARED_ASSETS): tokenizers/llama3,
// datasets/war-and-peace, datasets/python-heldout. Run:
//   bench_tokenizer --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;

fs::path assets() {
  if (const char* env = std::getenv("FLINT_SHARED_ASSETS")) return env;
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "shared" / "assets";
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const flint::Tokenizer& tokenizer(const std::string& form) {
  static const auto json = flint::load_tokenizer((assets() / "tokenizers/llama3").string());
  static const auto tiktoken = [] {
    // A directory holding only tokenizer.model selects the tiktoken reader.
    const fs::path dir = fs::temp_directory_path() / "flint-bench-tiktoken";
    fs::create_directories(dir);
    fs::remove(dir / "tokenizer.model");
    fs::create_symlink(assets() / "tokenizers/llama3/tokenizer.model", dir / "tokenizer.model");
    return flint::load_tokenizer(dir.string());
  }();
  return form == "tiktoken" ? *tiktoken : *json;
}

// ~2 MB of English prose and ~1.2 MB of Python (held-out source, repeated).
const std::string& english() {
  static const std::string text = read(assets() / "datasets/war-and-peace/war-and-peace.txt").substr(0, 2 << 20);
  return text;
}
const std::string& code() {
  static const std::string text = [] {
    const std::string py = read(assets() / "datasets/python-heldout/heldout.py.txt");
    std::string s;
    while (!py.empty() && s.size() < (1200u << 10)) s += py;
    return s;
  }();
  return text;
}
const std::string& mixed() {
  static const std::string text = english() + code();
  return text;
}

void encode_bench(benchmark::State& state, const flint::Tokenizer& t, const std::string& text) {
  if (text.empty()) {
    state.SkipWithError("input text not found under shared assets");
    return;
  }
  size_t tokens = 0;
  for (auto _ : state) {
    auto ids = t.encode(text, {.add_special = false});
    tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.counters["bytes"] = static_cast<double>(text.size());
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["bytes/token"] = tokens ? static_cast<double>(text.size()) / static_cast<double>(tokens) : 0;
}

void BM_EncodeMixed(benchmark::State& s) { encode_bench(s, tokenizer("json"), mixed()); }
void BM_EncodeMixedTiktoken(benchmark::State& s) { encode_bench(s, tokenizer("tiktoken"), mixed()); }
void BM_EncodeEnglish(benchmark::State& s) { encode_bench(s, tokenizer("json"), english()); }
void BM_EncodeCode(benchmark::State& s) { encode_bench(s, tokenizer("json"), code()); }

// One pre-token of range(0) bytes: letters without a space, spaces, punctuation.
std::string long_word(size_t n) {
  const std::string unit = "Pneumonoultramicroscopic";
  std::string s;
  while (s.size() < n) s += unit;
  s.resize(n);
  return s;
}
void BM_SingleWord(benchmark::State& s) {
  encode_bench(s, tokenizer("json"), long_word(static_cast<size_t>(s.range(0))));
}
void BM_SameLetter(benchmark::State& s) {
  encode_bench(s, tokenizer("json"), std::string(static_cast<size_t>(s.range(0)), 'a'));
}
void BM_Spaces(benchmark::State& s) {
  encode_bench(s, tokenizer("json"), std::string(static_cast<size_t>(s.range(0)), ' '));
}
void BM_Punctuation(benchmark::State& s) {
  encode_bench(s, tokenizer("json"), std::string(static_cast<size_t>(s.range(0)), '!'));
}

void BM_DecodeMixed(benchmark::State& state) {
  const flint::Tokenizer& t = tokenizer("json");
  const auto ids = t.encode(mixed(), {.add_special = false});
  for (auto _ : state) benchmark::DoNotOptimize(t.decode(ids));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * mixed().size()));
}

void BM_LoadTokenizerJson(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(flint::load_tokenizer((assets() / "tokenizers/llama3").string()));
}

BENCHMARK(BM_EncodeMixed)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeMixedTiktoken)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeEnglish)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeCode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SingleWord)->RangeMultiplier(4)->Range(64 << 10, 4 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SameLetter)->RangeMultiplier(4)->Range(64 << 10, 4 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Spaces)->RangeMultiplier(4)->Range(64 << 10, 4 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Punctuation)->RangeMultiplier(4)->Range(64 << 10, 4 << 20)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecodeMixed)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoadTokenizerJson)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace

BENCHMARK_MAIN();
