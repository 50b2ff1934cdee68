// Walks the syntax tree: statements write to the output, expressions compute
// Values. Scoping follows jinja2: a for-loop iteration, macro call, with-block
// and generation-block get their own scope; if-blocks do not (hence
// namespace() for state that must outlive a loop).
#include <fmt/format.h>

#include <unordered_map>

#include "core/error.h"
#include "tokenizer/jinja_builtins.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/jinja_template.h"

namespace flint::jinja {
namespace {

struct Scope {
  explicit Scope(Scope* p) : parent(p) {}
  const Value* lookup(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
  std::unordered_map<std::string, Value> vars;
  Scope* parent;
};

enum class Flow { normal, break_loop, continue_loop };

class Evaluator {
 public:
  Evaluator(const std::string& origin, const RenderLimits& limits) : origin_(origin), limits_(limits) {}

  std::string run(const Body& body, const Object& context) {
    Scope root(nullptr);
    root.vars["range"] = Value::function("range", [](const CallArgs& a) { return range(a); });
    root.vars["namespace"] = Value::function("namespace", [](const CallArgs& a) { return make_namespace(a); });
    root.vars["dict"] = Value::function("dict", [](const CallArgs& a) {
      Object o;
      for (const auto& [k, v] : a.keyword) o.set(k, v);
      return Value(std::move(o));
    });
    for (const auto& [k, v] : context.items()) root.vars[k] = v;
    root_ = &root;
    std::string out;
    exec(body, root, out);
    return out;
  }

 private:
  [[noreturn]] void error(int line, int column, const std::string& message) const {
    fail({.file = origin_, .field = "chat_template"}, "line {}, column {}: {}", line, column, message);
  }

  static Value range(const CallArgs& a) {
    if (!a.keyword.empty() || a.positional.empty() || a.positional.size() > 3)
      throw ValueError("range() takes 1 to 3 integer arguments");
    for (const Value& v : a.positional)
      if (!v.is_int() && !v.is_bool()) throw ValueError("range() arguments must be integers");
    int64_t start = 0, stop = a.positional[0].as_int(), step = 1;
    if (a.positional.size() >= 2) {
      start = a.positional[0].as_int();
      stop = a.positional[1].as_int();
    }
    if (a.positional.size() == 3) step = a.positional[2].as_int();
    if (step == 0) throw ValueError("range() arg 3 must not be zero");
    Array out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      // Sandboxed jinja2 caps range() too (MAX_RANGE = 100000).
      if (out.size() >= 100000) throw ValueError("range() is too big (more than 100000 items)");
      out.emplace_back(i);
    }
    return Value(std::move(out));
  }

  static Value make_namespace(const CallArgs& a) {
    Object o;
    for (const Value& v : a.positional) {
      if (!v.is_object()) throw ValueError("namespace() takes keyword arguments or a dict");
      for (const auto& [k, item] : v.as_object().items()) o.set(k, item);
    }
    for (const auto& [k, v] : a.keyword) o.set(k, v);
    return Value::make_namespace(std::move(o));
  }

  void append(std::string& out, const std::string& text, int line, int column) {
    out += text;
    if (out.size() > limits_.max_output_bytes)
      error(line, column, fmt::format("output is larger than {} bytes", limits_.max_output_bytes));
  }

  // ---- statements ---------------------------------------------------------

  Flow exec(const Body& body, Scope& scope, std::string& out) {
    for (const NodePtr& n : body) {
      Flow f = exec_node(*n, scope, out);
      if (f != Flow::normal) return f;
    }
    return Flow::normal;
  }

  Flow exec_node(const Node& n, Scope& scope, std::string& out) {
    try {
      return exec_node_inner(n, scope, out);
    } catch (const ValueError& e) {
      error(n.line, n.column, e.what());
    }
  }

  Flow exec_node_inner(const Node& n, Scope& scope, std::string& out) {
    switch (n.kind) {
      case Node::Kind::text: append(out, n.text, n.line, n.column); return Flow::normal;
      case Node::Kind::output: append(out, to_str(eval(*n.expr, scope)), n.line, n.column); return Flow::normal;
      case Node::Kind::if_chain:
        for (const auto& [cond, body] : n.branches)
          if (truthy(eval(*cond, scope))) return exec(body, scope, out);
        return exec(n.else_body, scope, out);
      case Node::Kind::for_loop: exec_for(n, scope, out); return Flow::normal;
      case Node::Kind::set: assign(n, eval(*n.expr, scope), scope); return Flow::normal;
      case Node::Kind::set_block: {
        std::string captured;
        Scope inner(&scope);
        exec(n.body, inner, captured);
        scope.vars[n.targets[0]] = Value(std::move(captured));
        return Flow::normal;
      }
      case Node::Kind::macro: define_macro(n, scope); return Flow::normal;
      case Node::Kind::with_block: {
        Scope inner(&scope);
        for (const auto& [name, expr] : n.params) inner.vars[name] = eval(*expr, scope);
        return exec(n.body, inner, out);
      }
      case Node::Kind::filter_block: {
        std::string captured;
        Scope inner(&scope);
        exec(n.body, inner, captured);
        append(out, to_str(apply_chain(*n.expr, Value(std::move(captured)), scope)), n.line, n.column);
        return Flow::normal;
      }
      case Node::Kind::break_loop: return Flow::break_loop;
      case Node::Kind::continue_loop: return Flow::continue_loop;
    }
    return Flow::normal;
  }

  void assign(const Node& n, Value value, Scope& scope) {
    if (!n.attr.empty()) {
      const Value* target = scope.lookup(n.targets[0]);
      if (!target || !target->is_namespace())
        throw ValueError(fmt::format("cannot assign attribute '{}' on '{}': it is not a namespace()", n.attr,
                                     n.targets[0]));
      target->namespace_object().set(n.attr, std::move(value));
      return;
    }
    if (n.targets.size() == 1) {
      scope.vars[n.targets[0]] = std::move(value);
      return;
    }
    Array items = iterate(value);
    if (items.size() != n.targets.size())
      throw ValueError(fmt::format("cannot unpack {} values into {} names", items.size(), n.targets.size()));
    for (size_t i = 0; i < items.size(); ++i) scope.vars[n.targets[i]] = items[i];
  }

  void bind_targets(const Node& n, const Value& item, Scope& scope) {
    if (n.targets.size() == 1) {
      scope.vars[n.targets[0]] = item;
      return;
    }
    Array parts = iterate(item);
    if (parts.size() != n.targets.size())
      throw ValueError(fmt::format("cannot unpack {} values into {} loop variables", parts.size(), n.targets.size()));
    for (size_t i = 0; i < parts.size(); ++i) scope.vars[n.targets[i]] = parts[i];
  }

  void count_iteration(const Node& n) {
    if (++iterations_ > limits_.max_loop_iterations)
      error(n.line, n.column, fmt::format("more than {} loop iterations", limits_.max_loop_iterations));
  }

  void exec_for(const Node& n, Scope& scope, std::string& out) {
    Array items = iterate(eval(*n.expr, scope));
    if (n.filter) {
      Array kept;
      for (Value& item : items) {
        count_iteration(n);
        Scope probe(&scope);
        bind_targets(n, item, probe);
        if (truthy(eval(*n.filter, probe))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    const int64_t length = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < length; ++i) {
      count_iteration(n);
      Scope inner(&scope);
      bind_targets(n, items[static_cast<size_t>(i)], inner);
      Object loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(length - i));
      loop.set("revindex0", Value(length - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == length - 1));
      loop.set("length", Value(length));
      loop.set("depth", Value(int64_t{1}));
      loop.set("depth0", Value(int64_t{0}));
      loop.set("previtem", i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
      loop.set("nextitem", i + 1 < length ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
      inner.vars["loop"] = Value(std::move(loop));
      if (exec(n.body, inner, out) == Flow::break_loop) break;
    }
    if (length == 0) {
      Scope inner(&scope);
      exec(n.else_body, inner, out);
    }
  }

  void define_macro(const Node& n, Scope& scope) {
    const Node* macro = &n;
    scope.vars[n.text] = Value::function(n.text, [this, macro](const CallArgs& a) { return call_macro(*macro, a); });
  }

  Value call_macro(const Node& m, const CallArgs& a) {
    if (a.positional.size() > m.params.size())
      throw ValueError(fmt::format("macro '{}' takes not more than {} argument(s)", m.text, m.params.size()));
    if (++call_depth_ > limits_.max_call_depth) {
      --call_depth_;
      throw ValueError(fmt::format("macro calls nest deeper than {}", limits_.max_call_depth));
    }
    struct Unwind {
      int& depth;
      ~Unwind() { --depth; }
    } unwind{call_depth_};
    // Macros see the template's top-level names, not the caller's locals.
    Scope inner(root_);
    for (const auto& [k, v] : a.keyword) {
      bool known = false;
      for (const auto& p : m.params) known = known || p.first == k;
      if (!known) throw ValueError(fmt::format("macro '{}' has no argument named '{}'", m.text, k));
    }
    for (size_t i = 0; i < m.params.size(); ++i) {
      const auto& [name, def] = m.params[i];
      if (i < a.positional.size()) inner.vars[name] = a.positional[i];
      else if (const Value* v = a.kwarg(name)) inner.vars[name] = *v;
      else if (def) inner.vars[name] = eval(*def, inner);
      else inner.vars[name] = Value::undefined(fmt::format("parameter '{}' was not provided", name));
    }
    std::string out;
    exec(m.body, inner, out);
    return Value(std::move(out));
  }

  // ---- expressions --------------------------------------------------------

  Value eval(const Expr& e, Scope& scope) {
    try {
      return eval_inner(e, scope);
    } catch (const ValueError& err) {
      error(e.line, e.column, err.what());
    }
  }

  CallArgs eval_args(const Expr& e, size_t first, Scope& scope) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i], scope));
    for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v, scope));
    return a;
  }

  Value apply_chain(const Expr& e, Value body, Scope& scope) {
    Value input = e.args[0] ? apply_chain(*e.args[0], std::move(body), scope) : std::move(body);
    return apply_filter(e.name, input, eval_args(e, 1, scope));
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return less(a, b) || equals(a, b);
    if (op == ">=") return less(b, a) || equals(a, b);
    if (op == "in") return contains(b, a);
    return !contains(b, a);  // not in
  }

  Value eval_inner(const Expr& e, Scope& scope) {
    switch (e.kind) {
      case Expr::Kind::literal: return e.value;
      case Expr::Kind::name: {
        const Value* v = scope.lookup(e.name);
        return v ? *v : Value::undefined(fmt::format("'{}' is undefined", e.name));
      }
      case Expr::Kind::list:
      case Expr::Kind::tuple: {
        Array items;
        for (const ExprPtr& item : e.args) items.push_back(eval(*item, scope));
        return Value(std::move(items));
      }
      case Expr::Kind::dict: {
        Object o;
        for (const auto& [k, v] : e.entries) {
          Value key = eval(*k, scope);
          if (!key.is_string()) throw ValueError("unsupported construct: dict literal with a non-string key");
          o.set(key.as_string(), eval(*v, scope));
        }
        return Value(std::move(o));
      }
      case Expr::Kind::getattr: return get_attribute(eval(*e.args[0], scope), e.name);
      case Expr::Kind::getitem: return get_item(eval(*e.args[0], scope), eval(*e.args[1], scope));
      case Expr::Kind::slice: {
        Value obj = eval(*e.args[0], scope);
        auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i], scope) : Value::none(); };
        return get_slice(obj, part(1), part(2), part(3));
      }
      case Expr::Kind::call: {
        Value callee = eval(*e.args[0], scope);
        CallArgs a = eval_args(e, 1, scope);
        if (callee.kind() == Value::Kind::callable) return callee.as_callable().call(a);
        if (callee.kind() == Value::Kind::method) return call_method(callee.method_self(), callee.method_name(), a);
        if (callee.is_undefined()) callee.fail_undefined();
        throw ValueError(fmt::format("'{}' object is not callable", type_name(callee)));
      }
      case Expr::Kind::filter: return apply_filter(e.name, eval(*e.args[0], scope), eval_args(e, 1, scope));
      case Expr::Kind::test: {
        bool r = apply_test(e.name, eval(*e.args[0], scope), eval_args(e, 1, scope));
        return Value(e.negated ? !r : r);
      }
      case Expr::Kind::unary: {
        Value v = eval(*e.args[0], scope);
        if (e.name == "not") return Value(!truthy(v));
        if (v.is_undefined()) v.fail_undefined();
        if (!v.is_number()) throw ValueError(fmt::format("bad operand type for unary {}: '{}'", e.name, type_name(v)));
        if (e.name == "+") return v.is_float() ? v : Value(v.as_int());
        if (v.is_float()) return Value(-v.as_double());
        if (v.as_int() == INT64_MIN) throw ValueError("integer overflow");
        return Value(-v.as_int());
      }
      case Expr::Kind::binary: return binary_op(e.name, eval(*e.args[0], scope), eval(*e.args[1], scope));
      case Expr::Kind::logical: {
        Value left = eval(*e.args[0], scope);
        if (e.name == "and" ? !truthy(left) : truthy(left)) return left;
        return eval(*e.args[1], scope);
      }
      case Expr::Kind::compare: {
        Value left = eval(*e.args[0], scope);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], scope);
          if (!compare(e.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::condition:
        if (truthy(eval(*e.args[1], scope))) return eval(*e.args[0], scope);
        if (e.args[2]) return eval(*e.args[2], scope);
        return Value::undefined("the condition was false and there is no else branch");
    }
    return Value();
  }

  const std::string& origin_;
  const RenderLimits& limits_;
  Scope* root_ = nullptr;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
};

}  // namespace

Template Template::parse(const std::string& source, std::string origin) {
  Template t;
  t.origin_ = std::move(origin);
  t.body_ = std::make_shared<const Body>(jinja::parse(tokenize(source, t.origin_), t.origin_));
  return t;
}

std::string Template::render(const Object& context, const RenderLimits& limits) const {
  return Evaluator(origin_, limits).run(*body_, context);
}

}  // namespace flint::jinja
