#include "tokenizer/jinja_lexer.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "tokenizer/jinja_value.h"

namespace flint::jinja {
namespace {

class Lexer {
 public:
  Lexer(std::string source, const std::string& origin) : src_(std::move(source)), origin_(origin) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool line_starting = true;
    while (pos < src_.size()) {
      size_t tag = find_tag(pos);
      if (tag == std::string::npos) {
        emit_text(pos, src_.substr(pos));
        break;
      }
      char kind = src_[tag + 1];  // '{', '%' or '#'
      char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      std::string text = src_.substr(pos, tag - pos);
      if (sign == '-') {
        text = python_strip(text, std::nullopt, false, true);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: drop the whitespace that alone precedes the tag on its line.
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            python_strip(std::string_view(text).substr(l_pos), std::nullopt, true, true).empty())
          text.resize(l_pos);
      }
      emit_text(pos, text);
      size_t p = tag + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        pos = skip_comment(tag, p);
      } else if (kind == '%' && is_raw(p)) {
        pos = lex_raw(tag, p);
      } else {
        pos = lex_tag(tag, p, kind == '%');
      }
      line_starting = pos > 0 && src_[pos - 1] == '\n';
    }
    Token eof;
    eof.type = TokenType::eof;
    locate(eof, src_.size());
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(size_t at, const std::string& message) const {
    Token t;
    locate(t, at);
    fail({.file = origin_, .field = "chat_template"}, "line {}, column {}: {}", t.line, t.column, message);
  }

  void locate(Token& t, size_t at) const {
    auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    size_t line = static_cast<size_t>(it - line_starts_.begin());
    t.line = static_cast<int>(line);
    t.column = static_cast<int>(at - line_starts_[line - 1] + 1);
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1))
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    return std::string::npos;
  }

  void emit_text(size_t at, const std::string& text) {
    if (text.empty()) return;
    Token t;
    t.type = TokenType::text;
    t.value = text;
    locate(t, at);
    tokens_.push_back(std::move(t));
  }

  void push(TokenType type, size_t at, std::string value = {}) {
    Token t;
    t.type = type;
    t.value = std::move(value);
    locate(t, at);
    tokens_.push_back(std::move(t));
  }

  size_t skip_ws(size_t p) const {
    while (p < src_.size() && std::string_view(" \t\n\r\f\v").find(src_[p]) != std::string_view::npos) ++p;
    return p;
  }

  // After a "-%}" everything blank goes; after "%}" (trim_blocks) one newline.
  size_t after_end(size_t p, char sign) const {
    if (sign == '-') {
      while (p < src_.size()) {
        unsigned char c = static_cast<unsigned char>(src_[p]);
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        std::vector<char32_t> cp = decode_utf8(std::string_view(src_).substr(p, len));
        if (cp.empty() || !is_python_space(cp[0])) break;
        p += len;
      }
      return p;
    }
    if (sign != '+' && p < src_.size() && src_[p] == '\n') return p + 1;
    return p;
  }

  size_t skip_comment(size_t tag, size_t p) {
    size_t end = src_.find("#}", p);
    if (end == std::string::npos) error(tag, "comment '{#' is never closed with '#}'");
    char sign = end > p && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
    return after_end(end + 2, sign);
  }

  bool starts_name(size_t p, std::string_view name) const {
    p = skip_ws(p);
    if (src_.compare(p, name.size(), name) != 0) return false;
    size_t q = p + name.size();
    return q >= src_.size() || !(std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_');
  }

  bool is_raw(size_t p) const {
    if (!starts_name(p, "raw")) return false;
    size_t q = skip_ws(skip_ws(p) + 3);
    if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
    return src_.compare(q, 2, "%}") == 0;
  }

  // {% raw %}...{% endraw %}: the body is text, tags inside it are not parsed.
  size_t lex_raw(size_t tag, size_t p) {
    size_t q = skip_ws(skip_ws(p) + 3);
    char open_sign = src_[q] == '%' ? 0 : src_[q++];
    size_t body = after_end(q + 2, open_sign);
    for (size_t i = src_.find("{%", body); i != std::string::npos; i = src_.find("{%", i + 2)) {
      size_t k = i + 2;
      char close_sign = k < src_.size() && (src_[k] == '-' || src_[k] == '+') ? src_[k++] : 0;
      if (!starts_name(k, "endraw")) continue;
      size_t e = skip_ws(skip_ws(k) + 6);
      char end_sign = e < src_.size() && (src_[e] == '-' || src_[e] == '+') ? src_[e++] : 0;
      if (src_.compare(e, 2, "%}") != 0) continue;
      std::string text = src_.substr(body, i - body);
      if (close_sign == '-') text = python_strip(text, std::nullopt, false, true);
      emit_text(body, text);
      return after_end(e + 2, end_sign);
    }
    error(tag, "'{% raw %}' is never closed with '{% endraw %}'");
  }

  size_t lex_tag(size_t tag, size_t p, bool block) {
    push(block ? TokenType::block_begin : TokenType::var_begin, tag);
    std::vector<std::pair<char, size_t>> brackets;
    while (true) {
      p = skip_ws(p);
      if (p >= src_.size())
        error(tag, block ? "tag '{%' is never closed with '%}'" : "expression '{{' is never closed with '}}'");
      if (brackets.empty()) {
        std::string_view rest = std::string_view(src_).substr(p);
        if (block) {
          for (std::string_view end : {"-%}", "+%}", "%}"})
            if (rest.substr(0, end.size()) == end) {
              push(TokenType::block_end, p);
              return after_end(p + end.size(), end.size() == 3 ? end[0] : 0);
            }
        } else {
          if (rest.substr(0, 3) == "-}}") {
            push(TokenType::var_end, p);
            return after_end(p + 3, '-');
          }
          if (rest.substr(0, 2) == "}}") {
            push(TokenType::var_end, p);
            return p + 2;
          }
        }
      }
      p = lex_token(p, brackets);
    }
  }

  size_t lex_token(size_t p, std::vector<std::pair<char, size_t>>& brackets) {
    unsigned char c = static_cast<unsigned char>(src_[p]);
    if (std::isalpha(c) || c == '_') {
      size_t q = p;
      while (q < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[q])) || src_[q] == '_')) ++q;
      push(TokenType::name, p, src_.substr(p, q - p));
      return q;
    }
    if (std::isdigit(c)) return lex_number(p);
    if (c == '\'' || c == '"') return lex_string(p);
    static constexpr std::string_view two[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : two)
      if (src_.compare(p, 2, op) == 0) {
        push(TokenType::op, p, std::string(op));
        return p + 2;
      }
    if (std::string_view("+-/*%~[](){}<>=.:|,;").find(static_cast<char>(c)) == std::string_view::npos)
      error(p, "unexpected character '" + std::string(1, static_cast<char>(c)) + "'");
    if (c == '(' || c == '[' || c == '{') brackets.emplace_back(static_cast<char>(c), p);
    if (c == ')' || c == ']' || c == '}') {
      char want = c == ')' ? '(' : c == ']' ? '[' : '{';
      if (brackets.empty() || brackets.back().first != want)
        error(p, "unexpected '" + std::string(1, static_cast<char>(c)) + "'");
      brackets.pop_back();
    }
    push(TokenType::op, p, std::string(1, static_cast<char>(c)));
    return p + 1;
  }

  size_t digits(size_t p) const {  // (\d+_)*\d+
    size_t q = p;
    while (q < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[q])) ||
                               (src_[q] == '_' && q + 1 < src_.size() && std::isdigit(static_cast<unsigned char>(src_[q + 1])))))
      ++q;
    return q;
  }

  size_t lex_number(size_t p) {
    size_t q = digits(p);
    bool is_float = false;
    if (q + 1 < src_.size() && src_[q] == '.' && std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
      q = digits(q + 1);
      is_float = true;
    }
    if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
      size_t e = q + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
        q = digits(e);
        is_float = true;
      }
    }
    std::string text = src_.substr(p, q - p);
    text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
    Token t;
    locate(t, p);
    if (is_float) {
      t.type = TokenType::floating;
      t.float_value = std::strtod(text.c_str(), nullptr);
    } else {
      t.type = TokenType::integer;
      errno = 0;
      t.int_value = std::strtoll(text.c_str(), nullptr, 10);
      if (errno == ERANGE) error(p, "integer literal " + text + " is too large");
    }
    t.value = text;
    tokens_.push_back(std::move(t));
    return q;
  }

  static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Escapes decode as Python's "unicode-escape" codec does, which is what
  // jinja2 applies to string literals; unknown escapes keep their backslash.
  size_t lex_string(size_t p) {
    char quote = src_[p];
    std::string out;
    size_t q = p + 1;
    while (true) {
      if (q >= src_.size()) error(p, "string literal is never closed");
      char c = src_[q];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++q;
        continue;
      }
      if (q + 1 >= src_.size()) error(p, "string literal is never closed");
      char e = src_[q + 1];
      q += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (size_t k = 0; k < n; ++k) {
            int h = q + k < src_.size() ? hex_value(src_[q + k]) : -1;
            if (h < 0) error(q - 2, std::string("truncated \\") + e + " escape in string literal");
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          if (cp > 0x10FFFF) error(q - 2, "escape is not a valid code point");
          append_utf8(out, cp);
          q += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && q < src_.size() && src_[q] >= '0' && src_[q] <= '7'; ++k, ++q)
              cp = cp * 8 + static_cast<uint32_t>(src_[q] - '0');
            append_utf8(out, cp);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    push(TokenType::string, p, std::move(out));
    return q + 1;
  }

  std::string src_;
  const std::string& origin_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

std::string normalize_newlines(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();  // keep_trailing_newline=False
  return out;
}

}  // namespace

std::vector<Token> tokenize(const std::string& source, const std::string& origin) {
  return Lexer(normalize_newlines(source), origin).run();
}

}  // namespace flint::jinja
