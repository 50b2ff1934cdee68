// tokenizer/jinja_lexer.h — template source -> tokens, with jinja2's
// whitespace rules as transformers configures them.
//
// Contract:
// - Newlines are normalised (\r\n, \r -> \n) and one trailing newline of the
//   source is dropped (jinja2's keep_trailing_newline=False).
// - trim_blocks: the first newline after a block or comment tag is removed.
//   lstrip_blocks: spaces and tabs (any whitespace but newlines) from the start
//   of a line up to a block or comment tag are removed. "{%-"/"-%}" strip all
//   whitespace on that side; "{%+" / "+%}" turn lstrip/trim off for that tag.
// - Expression tokens are only ended by "%}" / "}}" outside brackets, as jinja2
//   does, so "{{ {'a': {'b': 1}} }}" lexes.
// - Every token records the 1-based line and column where it starts; lexical
//   errors throw flint::Error naming the file, line and column.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flint::jinja {

enum class TokenType {
  text,         // literal template text (value)
  var_begin,    // {{
  var_end,      // }}
  block_begin,  // {%
  block_end,    // %}
  name,         // identifier or keyword (value)
  string,       // string literal, escapes decoded (value)
  integer,      // (int_value)
  floating,     // (float_value)
  op,           // operator or punctuation (value)
  eof,
};

struct Token {
  TokenType type = TokenType::eof;
  std::string value;
  int64_t int_value = 0;
  double float_value = 0.0;
  int line = 1;
  int column = 1;
};

// origin names the template's file in error messages.
std::vector<Token> tokenize(const std::string& source, const std::string& origin);

}  // namespace flint::jinja
