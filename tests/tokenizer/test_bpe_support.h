// tests/tokenizer/test_bpe_support.h — the Llama 3 tokenizers and reference
// data the byte-level BPE tests share (loaded once per test program).
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/test_support.h"
#include "tokenizer/byte_level_bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace flint::testing {

inline std::filesystem::path llama3_dir() { return shared_assets() / "tokenizers" / "llama3"; }

inline const Tokenizer& llama3_json() {
  static const std::unique_ptr<Tokenizer> t = load_tokenizer(llama3_dir().string());
  return *t;
}

// tokenizer.model with tokenizer_config.json's special tokens.
inline const Tokenizer& llama3_tiktoken() {
  static const std::unique_ptr<Tokenizer> t = make_tiktoken_tokenizer(
      (llama3_dir() / "tokenizer.model").string(), load_tokenizer_config(llama3_dir().string()));
  return *t;
}

inline std::string read_all(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// llama.cpp's tokenizer test vectors: inputs separated by a marker line,
// expected ids (no BOS) one line per input.
struct VocabTestCase {
  std::string text;
  std::vector<TokenId> ids;
};

inline std::vector<VocabTestCase> ggml_vocab_cases(const std::string& name) {
  const auto dir = shared_assets() / "tokenizers" / "tests";
  const std::string inp = read_all(dir / (name + ".inp"));
  const std::string out = read_all(dir / (name + ".out"));
  const std::string marker = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0;;) {
    const size_t next = inp.find(marker, pos);
    if (next == std::string::npos) break;
    texts.push_back(inp.substr(pos, next - pos));
    pos = next + marker.size();
  }
  std::vector<VocabTestCase> cases;
  std::istringstream lines(out);
  std::string line;
  for (const std::string& text : texts) {
    if (!std::getline(lines, line)) break;
    VocabTestCase c{text, {}};
    std::istringstream ids(line);
    for (TokenId id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

inline std::string decode_b64(const std::string& b64) {
  std::string bytes;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : b64) {
    const auto p = std::string_view("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/").find(c);
    if (p == std::string_view::npos) break;
    buffer = (buffer << 6) | static_cast<uint32_t>(p);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return bytes;
}

// The corpus of tests/tokenizer/fixtures as the bytes each case stands for.
inline std::vector<std::string> corpus_texts() {
  const auto j = nlohmann::json::parse(read_all(source_dir() / "tests/tokenizer/fixtures/corpus.json"));
  std::vector<std::string> out;
  for (const auto& entry : j) {
    if (entry.is_string()) {
      out.push_back(entry.get<std::string>());
    } else {
      out.push_back(decode_b64(entry["b64"].get<std::string>()));
    }
  }
  return out;
}

// tests/tokenizer/fixtures/<name>.json written by make_tokenizer_fixtures.py,
// or null when it has not been generated yet.
inline nlohmann::json hf_fixture(const std::string& name) {
  const auto path = source_dir() / "tests/tokenizer/fixtures" / (name + ".json");
  if (!std::filesystem::exists(path)) return nullptr;
  return nlohmann::json::parse(read_all(path));
}

// The input bytes of one fixture case ("text" or "text_b64").
inline std::string fixture_text(const nlohmann::json& row) {
  return row.contains("text_b64") ? decode_b64(row["text_b64"].get<std::string>()) : row["text"].get<std::string>();
}

inline std::vector<TokenId> json_ids(const nlohmann::json& ids) { return ids.get<std::vector<TokenId>>(); }

}  // namespace flint::testing
