#include "tokenizer/jinja_parser.h"

#include <set>

#include "core/error.h"
#include "tokenizer/jinja_expr_parser.h"

namespace flint::jinja {
namespace {

class Parser : public ExprParser {
 public:
  using ExprParser::ExprParser;

  Body parse_template() {
    Body body = parse_body({});
    if (cur().type != TokenType::eof) error(cur(), "unexpected '{% " + peek(1).value + " %}'");
    return body;
  }

 private:
  // ---- statements ---------------------------------------------------------

  // Parses until a {% name %} with name in `ends`; leaves the position on that name.
  Body parse_body(const std::set<std::string>& ends) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == TokenType::eof) {
        if (!ends.empty()) {
          std::string expected;
          for (const std::string& e : ends) expected += (expected.empty() ? "'{% " : ", '{% ") + e + " %}'";
          error(t, "unexpected end of template: a block is not closed (expected " + expected + ")");
        }
        return body;
      }
      if (t.type == TokenType::text) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::text;
        n->text = next().value;
        body.push_back(std::move(n));
      } else if (t.type == TokenType::var_begin) {
        next();
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::output;
        n->line = t.line;
        n->column = t.column;
        n->expr = parse_tuple(true);
        if (cur().type != TokenType::var_end) error(cur(), "expected '}}', got " + describe(cur()));
        next();
        body.push_back(std::move(n));
      } else if (t.type == TokenType::block_begin) {
        const Token& name = peek(1);
        if (name.type != TokenType::name) error(name, "expected a tag name after '{%'");
        if (ends.count(name.value)) {
          next();
          return body;
        }
        next();
        body.push_back(parse_statement());
      } else {
        error(t, "unexpected " + describe(t));
      }
    }
  }

  NodePtr node(Node::Kind kind, const Token& at) {
    auto n = std::make_unique<Node>();
    n->kind = kind;
    n->line = at.line;
    n->column = at.column;
    return n;
  }

  NodePtr parse_statement() {
    const Token& tag = next();
    const std::string& name = tag.value;
    if (name == "if") return parse_if(tag);
    if (name == "for") return parse_for(tag);
    if (name == "set") return parse_set(tag);
    if (name == "macro") return parse_macro(tag);
    if (name == "with") return parse_with(tag);
    if (name == "filter") return parse_filter_block(tag);
    if (name == "generation") {
      // transformers' AssistantTracker tag: renders its body in its own scope.
      auto n = node(Node::Kind::with_block, tag);
      expect_block_end();
      n->body = parse_body({"endgeneration"});
      next();
      expect_block_end();
      return n;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error(tag, "'{% " + name + " %}' outside of a for loop");
      auto n = node(name == "break" ? Node::Kind::break_loop : Node::Kind::continue_loop, tag);
      expect_block_end();
      return n;
    }
    if (name.rfind("end", 0) == 0 || name == "elif" || name == "else")
      error(tag, "unexpected '{% " + name + " %}' (no open block it could close)");
    error(tag, "unsupported tag '{% " + name + " %}'");
  }

  NodePtr parse_if(const Token& tag) {
    auto n = node(Node::Kind::if_chain, tag);
    while (true) {
      ExprPtr cond = parse_tuple(false);
      expect_block_end();
      Body body = parse_body({"elif", "else", "endif"});
      n->branches.emplace_back(std::move(cond), std::move(body));
      const Token& t = next();
      if (t.value == "elif") continue;
      if (t.value == "else") {
        expect_block_end();
        n->else_body = parse_body({"endif"});
        next();
      }
      expect_block_end();
      return n;
    }
  }

  NodePtr parse_for(const Token& tag) {
    auto n = node(Node::Kind::for_loop, tag);
    bool paren = is_op("(");
    if (paren) next();
    n->targets.push_back(expect_name());
    while (is_op(",")) {
      next();
      if (cur().type != TokenType::name) break;
      n->targets.push_back(expect_name());
    }
    if (paren) expect_op(")");
    if (!is_name("in")) error(cur(), "expected 'in' in for loop, got " + describe(cur()));
    next();
    n->expr = parse_tuple(false, {"if", "recursive"});
    if (is_name("if")) {
      next();
      n->filter = parse_expression(true);
    }
    if (is_name("recursive")) error(cur(), "unsupported construct: recursive for loop");
    expect_block_end();
    ++loop_depth_;
    n->body = parse_body({"endfor", "else"});
    --loop_depth_;
    if (next().value == "else") {
      expect_block_end();
      n->else_body = parse_body({"endfor"});
      next();
    }
    expect_block_end();
    return n;
  }

  NodePtr parse_set(const Token& tag) {
    auto n = node(Node::Kind::set, tag);
    n->targets.push_back(expect_name());
    if (is_op(".")) {
      next();
      n->attr = expect_name();
    } else {
      while (is_op(",")) {
        next();
        n->targets.push_back(expect_name());
      }
    }
    if (is_op("=")) {
      next();
      n->expr = parse_tuple(true);
      expect_block_end();
      return n;
    }
    if (is_op("|")) error(cur(), "unsupported construct: filter on a block set");
    if (n->targets.size() != 1 || !n->attr.empty())
      error(cur(), "expected '=' in set, got " + describe(cur()));
    expect_block_end();
    n->kind = Node::Kind::set_block;
    n->body = parse_body({"endset"});
    next();
    expect_block_end();
    return n;
  }

  NodePtr parse_macro(const Token& tag) {
    auto n = node(Node::Kind::macro, tag);
    n->text = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!n->params.empty()) expect_op(",");
      if (is_op(")")) break;
      std::string param = expect_name();
      ExprPtr def;
      if (is_op("=")) {
        next();
        def = parse_expression(true);
      }
      n->params.emplace_back(std::move(param), std::move(def));
    }
    next();
    expect_block_end();
    int saved = loop_depth_;
    loop_depth_ = 0;
    n->body = parse_body({"endmacro"});
    loop_depth_ = saved;
    next();
    if (cur().type == TokenType::name) next();  // {% endmacro name %}
    expect_block_end();
    return n;
  }

  NodePtr parse_with(const Token& tag) {
    auto n = node(Node::Kind::with_block, tag);
    while (cur().type != TokenType::block_end) {
      if (!n->params.empty()) expect_op(",");
      std::string target = expect_name();
      expect_op("=");
      n->params.emplace_back(std::move(target), parse_expression(true));
    }
    next();
    n->body = parse_body({"endwith"});
    next();
    expect_block_end();
    return n;
  }

  NodePtr parse_filter_block(const Token& tag) {
    auto n = node(Node::Kind::filter_block, tag);
    ExprPtr chain;  // innermost argument stays null: the body's text goes there
    do {
      if (chain) next();
      chain = parse_filter(std::move(chain), cur());
    } while (is_op("|"));
    n->expr = std::move(chain);
    expect_block_end();
    n->body = parse_body({"endfilter"});
    next();
    expect_block_end();
    return n;
  }
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& origin) {
  return Parser(tokens, origin).parse_template();
}

}  // namespace flint::jinja
