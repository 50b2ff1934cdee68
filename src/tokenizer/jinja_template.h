// tokenizer/jinja_template.h — a parsed Jinja template that renders as jinja2
// does in transformers' environment (trim_blocks, lstrip_blocks, sandboxed,
// default Undefined).
//
// Contract:
// - parse() reads the whole template up front: syntax errors and unsupported
//   constructs throw flint::Error naming the origin file, line and column.
// - render() is const and thread-safe; it fills in jinja2's own globals
//   (range, namespace, dict) under the caller's context. Runtime errors (a
//   type error, an undefined value used as a dict, ...) throw flint::Error
//   with the line and column of the expression at fault.
// - Rendering is bounded: output size, total loop iterations and macro
//   recursion have limits (RenderLimits); exceeding one is an error.
// - Undefined names behave as jinja2's default Undefined: they print as "",
//   are false, iterate as empty, and `is defined` is false; an attribute,
//   item or arithmetic on them is an error.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace flint::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{64} << 20;
  int64_t max_loop_iterations = 10'000'000;
  int max_call_depth = 64;
};

class Template {
 public:
  static Template parse(const std::string& source, std::string origin);

  std::string render(const Object& context, const RenderLimits& limits = {}) const;
  const std::string& origin() const { return origin_; }

 private:
  std::shared_ptr<const Body> body_;
  std::string origin_;
};

}  // namespace flint::jinja
