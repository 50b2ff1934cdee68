// tokenizer/jinja_expr_parser.h — the expression half of the Jinja parser
// (jinja_parser.cpp parses statements on top of it). Internal to the parser.
//
// Contract: one ExprParser walks one token vector; the statement parser
// derives from it so that both share the position and the nesting bound.
// Expressions follow jinja2's grammar and precedence (see jinja_parser.h).
#pragma once

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_parser.h"

namespace flint::jinja {

class ExprParser {
 public:
  ExprParser(const std::vector<Token>& tokens, const std::string& origin) : toks_(tokens), origin_(origin) {}

 protected:
  // Depth of nested expressions/blocks, bounded so hostile input cannot
  // exhaust the stack.
  struct DepthGuard {
    explicit DepthGuard(ExprParser& p) : parser(p) {
      if (++parser.depth_ > kMaxNesting)
        parser.error(parser.cur(), "template nesting is deeper than " + std::to_string(kMaxNesting) + " levels");
    }
    ~DepthGuard() { --parser.depth_; }
    ExprParser& parser;
  };

  [[noreturn]] void error(const Token& at, const std::string& message) const {
    fail({.file = origin_, .field = "chat_template"}, "line {}, column {}: {}", at.line, at.column, message);
  }

  const Token& cur() const { return toks_[pos_]; }
  const Token& peek(size_t n) const { return toks_[std::min(pos_ + n, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(std::string_view op) const { return cur().type == TokenType::op && cur().value == op; }
  bool is_name(std::string_view name) const { return cur().type == TokenType::name && cur().value == name; }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::eof: return "end of template";
      case TokenType::block_end: return "'%}'";
      case TokenType::var_end: return "'}}'";
      case TokenType::text: return "template text";
      case TokenType::string: return "string literal";
      default: return "'" + t.value + "'";
    }
  }

  void expect_op(std::string_view op) {
    if (!is_op(op)) error(cur(), "expected '" + std::string(op) + "', got " + describe(cur()));
    next();
  }
  std::string expect_name() {
    if (cur().type != TokenType::name) error(cur(), "expected a name, got " + describe(cur()));
    return next().value;
  }
  void expect_block_end() {
    if (cur().type != TokenType::block_end) error(cur(), "expected '%}', got " + describe(cur()));
    next();
  }

  ExprPtr make(Expr::Kind kind, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = at.line;
    e->column = at.column;
    return e;
  }

  ExprPtr parse_tuple(bool with_condexpr, const std::set<std::string>& extra_ends = {});
  ExprPtr parse_expression(bool with_condexpr);
  ExprPtr parse_filter(ExprPtr input, const Token& at);

  int loop_depth_ = 0;  // for-loops around the current statement (break/continue need one)

 private:
  ExprPtr logical(const char* op, ExprPtr left, ExprPtr right, const Token& at);
  ExprPtr parse_or();
  ExprPtr parse_and();
  ExprPtr parse_not();
  ExprPtr parse_compare();
  ExprPtr binary(const std::string& op, ExprPtr left, ExprPtr right, const Token& at);
  ExprPtr parse_math1();
  ExprPtr parse_concat();
  ExprPtr parse_math2();
  ExprPtr parse_pow();
  ExprPtr parse_unary(bool with_filter);
  ExprPtr parse_primary();
  ExprPtr literal(Value v, const Token& at);
  ExprPtr parse_postfix(ExprPtr node);
  ExprPtr parse_subscript(ExprPtr obj, const Token& at);
  void parse_call_args(Expr& e);
  ExprPtr parse_call(ExprPtr callee, const Token& at);
  ExprPtr parse_filter_expr(ExprPtr node);
  ExprPtr parse_test(ExprPtr input);

  const std::vector<Token>& toks_;
  const std::string& origin_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace flint::jinja
