// tokenizer/jinja_parser.h — tokens -> syntax tree, for the Jinja subset that
// chat templates use.
//
// Contract:
// - Supported statements: if/elif/else, for (tuple targets, "if" filter,
//   else, loop.*), set (name, tuple, ns.attr, block form), macro, with,
//   filter blocks, break/continue (transformers enables loopcontrols), and
//   transformers' {% generation %} (rendered as its body).
// - Expressions follow jinja2's grammar and precedence: conditional
//   expressions, or/and/not, chained comparisons, in / not in, + - ~ * / // %
//   **, unary -/+, filters and "is" tests (which bind tighter than arithmetic),
//   calls with keyword arguments, attribute/subscript/slice, and literals.
// - Anything else — an unknown tag ({% import %}, {% call %}, {% include %}
//   ...), an unknown filter or test, *args/**kwargs — throws flint::Error that
//   names the construct with its line and column. Nesting deeper than
//   kMaxNesting is an error, not a stack overflow.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace flint::jinja {

inline constexpr int kMaxNesting = 100;

Body parse(const std::vector<Token>& tokens, const std::string& origin);

}  // namespace flint::jinja
