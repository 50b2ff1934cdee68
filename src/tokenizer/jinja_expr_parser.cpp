// Expressions: jinja2's precedence climbing, from conditional expressions
// down to literals; filters and tests bind tighter than arithmetic.
#include "tokenizer/jinja_expr_parser.h"

#include "tokenizer/jinja_builtins.h"

namespace flint::jinja {

// expr (, expr)* -> a tuple when a comma appears.
ExprPtr ExprParser::parse_tuple(bool with_condexpr, const std::set<std::string>& extra_ends) {
  const Token& start = cur();
  ExprPtr first = parse_expression(with_condexpr);
  if (!is_op(",")) return first;
  auto tuple = make(Expr::Kind::tuple, start);
  tuple->args.push_back(std::move(first));
  while (is_op(",")) {
    next();
    if (cur().type == TokenType::block_end || cur().type == TokenType::var_end || is_op(")") ||
        (cur().type == TokenType::name && extra_ends.count(cur().value)))
      break;
    tuple->args.push_back(parse_expression(with_condexpr));
  }
  return tuple;
}

ExprPtr ExprParser::parse_expression(bool with_condexpr) {
  DepthGuard guard(*this);
  ExprPtr expr = parse_or();
  if (!with_condexpr) return expr;
  while (is_name("if")) {
    const Token& t = next();
    auto cond = make(Expr::Kind::condition, t);
    ExprPtr test = parse_or();
    ExprPtr otherwise;
    if (is_name("else")) {
      next();
      otherwise = parse_expression(true);
    }
    cond->args.push_back(std::move(expr));
    cond->args.push_back(std::move(test));
    cond->args.push_back(std::move(otherwise));
    expr = std::move(cond);
  }
  return expr;
}

ExprPtr ExprParser::logical(const char* op, ExprPtr left, ExprPtr right, const Token& at) {
  auto e = make(Expr::Kind::logical, at);
  e->name = op;
  e->args.push_back(std::move(left));
  e->args.push_back(std::move(right));
  return e;
}

ExprPtr ExprParser::parse_or() {
  ExprPtr left = parse_and();
  while (is_name("or")) {
    const Token& t = next();
    left = logical("or", std::move(left), parse_and(), t);
  }
  return left;
}

ExprPtr ExprParser::parse_and() {
  ExprPtr left = parse_not();
  while (is_name("and")) {
    const Token& t = next();
    left = logical("and", std::move(left), parse_not(), t);
  }
  return left;
}

ExprPtr ExprParser::parse_not() {
  if (is_name("not")) {
    DepthGuard guard(*this);
    const Token& t = next();
    auto e = make(Expr::Kind::unary, t);
    e->name = "not";
    e->args.push_back(parse_not());
    return e;
  }
  return parse_compare();
}

ExprPtr ExprParser::parse_compare() {
  const Token& start = cur();
  ExprPtr first = parse_math1();
  ExprPtr cmp;
  while (true) {
    std::string op;
    if (cur().type == TokenType::op &&
        (cur().value == "==" || cur().value == "!=" || cur().value == "<" || cur().value == ">" ||
         cur().value == "<=" || cur().value == ">=")) {
      op = next().value;
    } else if (is_name("in")) {
      next();
      op = "in";
    } else if (is_name("not") && peek(1).type == TokenType::name && peek(1).value == "in") {
      next();
      next();
      op = "not in";
    } else {
      break;
    }
    if (!cmp) {
      cmp = make(Expr::Kind::compare, start);
      cmp->args.push_back(std::move(first));
    }
    cmp->ops.push_back(op);
    cmp->args.push_back(parse_math1());
  }
  return cmp ? std::move(cmp) : std::move(first);
}

ExprPtr ExprParser::binary(const std::string& op, ExprPtr left, ExprPtr right, const Token& at) {
  auto e = make(Expr::Kind::binary, at);
  e->name = op;
  e->args.push_back(std::move(left));
  e->args.push_back(std::move(right));
  return e;
}

ExprPtr ExprParser::parse_math1() {
  ExprPtr left = parse_concat();
  while (is_op("+") || is_op("-")) {
    const Token& t = next();
    left = binary(t.value, std::move(left), parse_concat(), t);
  }
  return left;
}

ExprPtr ExprParser::parse_concat() {
  ExprPtr left = parse_math2();
  while (is_op("~")) {
    const Token& t = next();
    left = binary("~", std::move(left), parse_math2(), t);
  }
  return left;
}

ExprPtr ExprParser::parse_math2() {
  ExprPtr left = parse_pow();
  while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
    const Token& t = next();
    left = binary(t.value, std::move(left), parse_pow(), t);
  }
  return left;
}

ExprPtr ExprParser::parse_pow() {
  ExprPtr left = parse_unary(true);
  while (is_op("**")) {
    const Token& t = next();
    left = binary("**", std::move(left), parse_unary(true), t);
  }
  return left;
}

ExprPtr ExprParser::parse_unary(bool with_filter) {
  DepthGuard guard(*this);
  ExprPtr node;
  if (is_op("-") || is_op("+")) {
    const Token& t = next();
    node = make(Expr::Kind::unary, t);
    node->name = t.value;
    node->args.push_back(parse_unary(false));
  } else {
    node = parse_primary();
  }
  node = parse_postfix(std::move(node));
  if (with_filter) node = parse_filter_expr(std::move(node));
  return node;
}

ExprPtr ExprParser::parse_primary() {
  const Token& t = cur();
  if (t.type == TokenType::name) {
    next();
    if (t.value == "true" || t.value == "True") return literal(Value(true), t);
    if (t.value == "false" || t.value == "False") return literal(Value(false), t);
    if (t.value == "none" || t.value == "None") return literal(Value::none(), t);
    auto e = make(Expr::Kind::name, t);
    e->name = t.value;
    return e;
  }
  if (t.type == TokenType::string) {
    std::string s = next().value;
    while (cur().type == TokenType::string) s += next().value;  // adjacent literals concatenate
    return literal(Value(std::move(s)), t);
  }
  if (t.type == TokenType::integer) return literal(Value(next().int_value), t);
  if (t.type == TokenType::floating) return literal(Value(next().float_value), t);
  if (is_op("(")) {
    next();
    if (is_op(")")) {
      next();
      return make(Expr::Kind::tuple, t);
    }
    ExprPtr inner = parse_tuple(true);
    expect_op(")");
    return inner;
  }
  if (is_op("[")) {
    next();
    auto list = make(Expr::Kind::list, t);
    while (!is_op("]")) {
      if (!list->args.empty()) expect_op(",");
      if (is_op("]")) break;
      list->args.push_back(parse_expression(true));
    }
    next();
    return list;
  }
  if (is_op("{")) {
    next();
    auto dict = make(Expr::Kind::dict, t);
    while (!is_op("}")) {
      if (!dict->entries.empty()) expect_op(",");
      if (is_op("}")) break;
      ExprPtr key = parse_expression(true);
      expect_op(":");
      dict->entries.emplace_back(std::move(key), parse_expression(true));
    }
    next();
    return dict;
  }
  error(t, "unexpected " + describe(t) + " in expression");
}

ExprPtr ExprParser::literal(Value v, const Token& at) {
  auto e = make(Expr::Kind::literal, at);
  e->value = std::move(v);
  return e;
}

ExprPtr ExprParser::parse_postfix(ExprPtr node) {
  while (true) {
    const Token& t = cur();
    if (is_op(".")) {
      next();
      auto e = make(Expr::Kind::getattr, t);
      if (cur().type == TokenType::integer) {  // foo.0 is foo[0] in jinja2
        e->kind = Expr::Kind::getitem;
        e->args.push_back(std::move(node));
        e->args.push_back(literal(Value(next().int_value), t));
      } else {
        e->name = expect_name();
        e->args.push_back(std::move(node));
      }
      node = std::move(e);
    } else if (is_op("[")) {
      next();
      node = parse_subscript(std::move(node), t);
      expect_op("]");
    } else if (is_op("(")) {
      node = parse_call(std::move(node), t);
    } else {
      return node;
    }
  }
}

ExprPtr ExprParser::parse_subscript(ExprPtr obj, const Token& at) {
  ExprPtr parts[3];
  bool is_slice = false;
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      if (!is_op(":")) break;
      next();
      is_slice = true;
    }
    if (!is_op(":") && !is_op("]")) parts[i] = parse_expression(true);
    else if (i == 0 && is_op("]")) error(cur(), "expected an index inside '[]'");
  }
  auto e = make(is_slice ? Expr::Kind::slice : Expr::Kind::getitem, at);
  e->args.push_back(std::move(obj));
  e->args.push_back(std::move(parts[0]));
  if (is_slice) {
    e->args.push_back(std::move(parts[1]));
    e->args.push_back(std::move(parts[2]));
  }
  return e;
}

// Parses "(args, key=value)" into e->args (after any already there) and e->kwargs.
void ExprParser::parse_call_args(Expr& e) {
  expect_op("(");
  bool first = true;
  while (!is_op(")")) {
    if (!first) expect_op(",");
    first = false;
    if (is_op(")")) break;
    if (is_op("*") || is_op("**")) error(cur(), "unsupported construct: *args / **kwargs in a call");
    if (cur().type == TokenType::name && peek(1).type == TokenType::op && peek(1).value == "=") {
      std::string key = next().value;
      next();
      e.kwargs.emplace_back(std::move(key), parse_expression(true));
    } else {
      if (!e.kwargs.empty()) error(cur(), "positional argument after a keyword argument");
      e.args.push_back(parse_expression(true));
    }
  }
  next();
}

ExprPtr ExprParser::parse_call(ExprPtr callee, const Token& at) {
  auto e = make(Expr::Kind::call, at);
  e->args.push_back(std::move(callee));
  parse_call_args(*e);
  return e;
}

ExprPtr ExprParser::parse_filter(ExprPtr input, const Token& at) {
  auto e = make(Expr::Kind::filter, at);
  e->name = expect_name();
  while (is_op(".")) {
    next();
    e->name += '.';
    e->name += expect_name();
  }
  if (!is_known_filter(e->name)) error(at, "unsupported filter '" + e->name + "'");
  e->args.push_back(std::move(input));
  if (is_op("(")) parse_call_args(*e);
  return e;
}

ExprPtr ExprParser::parse_filter_expr(ExprPtr node) {
  while (true) {
    if (is_op("|")) {
      next();
      node = parse_filter(std::move(node), cur());
    } else if (is_name("is")) {
      node = parse_test(std::move(node));
    } else if (is_op("(")) {
      node = parse_call(std::move(node), cur());
    } else {
      return node;
    }
  }
}

ExprPtr ExprParser::parse_test(ExprPtr input) {
  const Token& is = next();
  auto e = make(Expr::Kind::test, is);
  if (is_name("not")) {
    next();
    e->negated = true;
  }
  const Token& name_tok = cur();
  e->name = expect_name();
  if (!is_known_test(e->name)) error(name_tok, "unsupported test '" + e->name + "'");
  e->args.push_back(std::move(input));
  if (is_op("(")) {
    parse_call_args(*e);
  } else if ((cur().type == TokenType::name || cur().type == TokenType::string || cur().type == TokenType::integer ||
              cur().type == TokenType::floating || is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) error(cur(), "tests cannot be chained with 'is'");
    e->args.push_back(parse_postfix(parse_primary()));  // "x is divisibleby 3"
  }
  return e;
}

}  // namespace flint::jinja
