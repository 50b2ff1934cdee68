// tests/tokenizer/sentencepiece_test_data.h — data the SentencePiece tests
// share: the Llama 2 tokenizer, llama.cpp's test vectors for it, a broad text
// corpus, and a way to add pieces to a tokenizer.model.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_config.h"

namespace flint::testing {

inline std::string llama2_model_path() {
  return (shared_assets() / "tokenizers" / "llama2" / "tokenizer.model").string();
}

// What tokenizers/llama2/tokenizer_config.json says, without its parser.
inline TokenizerConfig llama2_config(std::optional<bool> legacy = std::nullopt) {
  TokenizerConfig config;
  config.add_bos_token = true;
  config.add_eos_token = false;
  config.bos_token = "<s>";
  config.eos_token = "</s>";
  config.unk_token = "<unk>";
  config.legacy = legacy;
  return config;
}

struct VocabCase {
  std::string text;
  std::vector<TokenId> ids;  // without BOS
};

// llama.cpp's ggml-vocab-llama-spm.gguf.inp/.out: inputs separated by
// "\n__ggml_vocab_test__\n" (the file also ends with one), one line of ids per input.
inline std::vector<VocabCase> llama_spm_vectors() {
  const auto dir = shared_assets() / "tokenizers" / "tests";
  const std::string inp = read_file((dir / "ggml-vocab-llama-spm.gguf.inp").string());
  const std::string out = read_file((dir / "ggml-vocab-llama-spm.gguf.out").string());
  const std::string marker = "\n__ggml_vocab_test__\n";
  std::vector<VocabCase> cases;
  for (size_t pos = 0; pos < inp.size();) {
    size_t end = inp.find(marker, pos);
    if (end == std::string::npos) end = inp.size();
    cases.push_back({inp.substr(pos, end - pos), {}});
    pos = end + marker.size();
  }
  std::istringstream lines(out);
  std::string line;
  size_t i = 0;
  while (std::getline(lines, line) && i < cases.size()) {
    std::istringstream ids(line);
    TokenId id;
    while (ids >> id) cases[i].ids.push_back(id);
    ++i;
  }
  EXPECT_EQ(i, cases.size()) << "the .out file has fewer lines than the .inp file has inputs";
  return cases;
}

// Text that exercises the merge order, spaces, byte fallback and special-token
// text: llama.cpp's inputs, lines of real prose / code, and random strings made
// of awkward pieces.
inline std::vector<std::string> sentencepiece_corpus(size_t random_count = 400) {
  std::vector<std::string> corpus;
  for (auto& c : llama_spm_vectors()) corpus.push_back(c.text);
  const auto datasets = shared_assets() / "datasets";
  auto add_lines = [&](const std::filesystem::path& path, size_t max_bytes, size_t max_lines) {
    if (!std::filesystem::exists(path)) return;
    std::string text = read_file(path.string()).substr(0, max_bytes);
    std::istringstream in(text);
    std::string line;
    size_t n = 0;
    while (std::getline(in, line) && n++ < max_lines) corpus.push_back(line);
    corpus.push_back(text.substr(0, 4000));  // newlines and all
  };
  add_lines(datasets / "war-and-peace" / "war-and-peace.txt", 120000, 600);
  add_lines(datasets / "wikitext-2" / "wiki.test.raw", 80000, 300);
  add_lines(datasets / "python-heldout" / "heldout.py.txt", 60000, 600);
  const std::vector<std::string> parts = {
      " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "a", "Hello", "world", "The", " the", "ing", "123", "3.14", "▁",
      "▁▁", "<s>", "</s>", "<unk>", "<0x0A>", "<", ">", "s>", "é", "e\xCC\x81", "中文", "日本語", "한국어", "🙂",
      "👨‍👩‍👧", "\xC2\xA0", "\xE2\x80\x8B", "ﬁ", "𝔘", "龘", "Ω", "ω", "Привет", "مرحبا", "\x01", "~", "\\", "''",
      "```", "...", "!!", "?", "'s", "'RE", "func(x)", "{}", "[INST]", " [/INST]", "<<SYS>>", std::string("\0", 1)};
  std::mt19937 rng(1234);
  std::uniform_int_distribution<size_t> pick(0, parts.size() - 1), len(1, 12);
  for (size_t i = 0; i < random_count; ++i) {
    std::string s;
    for (size_t k = len(rng); k > 0; --k) s += parts[pick(rng)];
    corpus.push_back(s);
  }
  return corpus;
}

inline void append_varint_for_test(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// A tokenizer.model with one more piece at the end (ModelProto.pieces is a
// repeated field 1, so appending a field appends a piece). type: 3 control,
// 4 user-defined.
inline std::string with_extra_piece(std::string serialized, const std::string& piece, int type) {
  std::string body;
  append_varint_for_test(body, (1 << 3) | 2);
  append_varint_for_test(body, piece.size());
  body += piece;
  body += '\x15';  // score, fixed32
  body.append(4, '\0');
  append_varint_for_test(body, 3 << 3);
  append_varint_for_test(body, static_cast<uint64_t>(type));
  append_varint_for_test(serialized, (1 << 3) | 2);
  append_varint_for_test(serialized, body.size());
  return serialized + body;
}

inline std::vector<TokenId> ids_of(const Tokenizer& t, std::string_view text, bool add_special, bool parse_special) {
  return t.encode(text, EncodeOptions{.add_special = add_special, .parse_special = parse_special});
}

}  // namespace flint::testing
