// tokenizer/jinja_ast.h — the syntax tree the parser builds and the evaluator
// walks. Nodes are immutable after parsing, so one parsed template can render
// on many threads at once.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace flint::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    literal,    // value
    name,       // name
    list,       // args = items
    tuple,      // args = items
    dict,       // kwargs-like pairs in entries
    getattr,    // args[0] . name
    getitem,    // args[0] [ args[1] ]
    slice,      // args[0] [ args[1] : args[2] : args[3] ] (null = omitted)
    call,       // args[0] ( args[1..], kwargs )
    filter,     // args[0] | name ( args[1..], kwargs )
    test,       // args[0] is [not] name ( args[1..], kwargs ); negated
    unary,      // name in {"not", "-", "+"}, args[0]
    binary,     // args[0] name args[1]: + - * / // % ** ~
    logical,    // args[0] name args[1]: and / or (short-circuit)
    compare,    // args[0] ops[0] args[1] ops[1] args[2] ... (chained like Python)
    condition,  // args[0] if args[1] else args[2] (args[2] may be null)
  };

  Kind kind = Kind::literal;
  int line = 0;
  int column = 0;
  Value value;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::pair<ExprPtr, ExprPtr>> entries;  // dict literal
  std::vector<std::string> ops;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind {
    text,         // text
    output,       // {{ expr }}
    if_chain,     // branches: (cond, body)...; else_body
    for_loop,     // targets in expr [if filter] body [else else_body]
    set,          // targets (or ns.attr via attr) = expr
    set_block,    // {% set target %}body{% endset %}
    macro,        // name(params) body
    with_block,   // {% with a = x, ... %} body
    filter_block, // {% filter expr %} body: expr applies to the body text
    break_loop,
    continue_loop,
  };

  Kind kind = Kind::text;
  int line = 0;
  int column = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::string attr;  // set ns.attr = ...
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro params / with assignments (default may be null)
};

}  // namespace flint::jinja
