// tokenizer/pretokenizer.h — splits text into pre-tokens by a regex, as HF's
// Split(behavior "Isolated") and ByteLevel(use_regex) pre-tokenizers and
// tiktoken do.
//
// Contract:
// - The input must be valid UTF-8 (callers pass sanitize_utf8 output); it is
//   not re-checked, which keeps every match call O(match length).
// - split() calls `emit` with consecutive, non-empty pieces that cover the
//   input exactly: each regex match is a piece, and so is each gap between
//   matches (Isolated behaviour).
// - Patterns are compiled with PCRE2 (UTF, UCP, JIT when available); \s is
//   widened to Unicode White_Space (U+0085 included) as Oniguruma and the Rust
//   regex crate define it. Matching works on inputs of any size: the JIT stack
//   grows per thread, and a regex that still runs out of resources throws
//   flint::Error rather than mis-splitting.
// - Thread-safe: const use from many threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace flint {

// Llama 3's split regex (tokenizer.json Split pattern and Meta's tiktoken pat_str).
inline constexpr std::string_view kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-2's, used by a ByteLevel pre-tokenizer with use_regex true.
inline constexpr std::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class RegexSplitter {
 public:
  // `where` names the file/field the pattern came from, for errors.
  RegexSplitter(std::string_view pattern, const ErrorContext& where);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  void split(std::string_view text, const std::function<void(std::string_view)>& emit) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Compiled;
  std::string pattern_;
  std::unique_ptr<Compiled> compiled_;
};

// A chain of regex splits: every piece of step k is split again by step k+1.
class PreTokenizer {
 public:
  void add_split(std::string_view pattern, const ErrorContext& where);
  void split(std::string_view text, const std::function<void(std::string_view)>& emit) const;
  bool empty() const { return steps_.empty(); }

 private:
  void split_from(size_t step, std::string_view text, const std::function<void(std::string_view)>& emit) const;
  std::vector<std::unique_ptr<RegexSplitter>> steps_;
};

// Escapes a literal for use inside a PCRE2 pattern (Split with a "String" pattern).
std::string regex_quote(std::string_view literal);

}  // namespace flint
