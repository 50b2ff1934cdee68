// tokenizer/jinja_value.h — the values a chat template computes with.
//
// Contract:
// - A Value models the Python object jinja2 would hold for it inside
//   transformers' ImmutableSandboxedEnvironment: None, bool, int, float, str,
//   list (and tuples), dict (insertion-ordered, string keys), namespace,
//   callables, bound methods, and jinja2's default Undefined.
// - Lists and dicts are immutable once built (the sandbox forbids mutation);
//   copies share storage. Namespaces are the one mutable kind, shared by
//   reference as in Python.
// - to_str / to_repr / to_json reproduce Python's str(), repr() and
//   json.dumps byte for byte for these kinds (floats in shortest round-trip
//   form, json.dumps's escaping and indent layout).
// - Operations a Python program would reject throw jinja::ValueError; the
//   evaluator adds the template location and turns it into flint::Error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace flint::jinja {

// A failure inside an operation on values; carries no location yet.
class ValueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value;
using Array = std::vector<Value>;

// An insertion-ordered str -> Value map, as a Python 3.7+ dict.
class Object {
 public:
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value value);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* kwarg(std::string_view name) const;
};

struct Callable {
  std::string name;
  std::function<Value(const CallArgs&)> call;
};

class Value {
 public:
  enum class Kind { undefined, none, boolean, integer, floating, string, array, object, ns, callable, method };

  Value() = default;  // Undefined
  static Value undefined(std::string hint) {
    Value v;
    v.str_ = std::move(hint);
    return v;
  }
  static Value none() { return Value(Kind::none); }
  Value(bool b) : kind_(Kind::boolean), int_(b) {}
  Value(int64_t i) : kind_(Kind::integer), int_(i) {}
  Value(int i) : kind_(Kind::integer), int_(i) {}
  Value(double f) : kind_(Kind::floating), float_(f) {}
  Value(std::string s) : kind_(Kind::string), str_(std::move(s)) {}
  Value(const char* s) : kind_(Kind::string), str_(s) {}
  Value(Array a) : kind_(Kind::array), array_(std::make_shared<const Array>(std::move(a))) {}
  Value(Object o) : kind_(Kind::object), object_(std::make_shared<Object>(std::move(o))) {}
  static Value make_namespace(Object o) {
    Value v(std::move(o));
    v.kind_ = Kind::ns;
    return v;
  }
  static Value function(std::string name, std::function<Value(const CallArgs&)> fn);
  // A method of a str/list/dict looked up by attribute, called later.
  static Value method(Value self, std::string name);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::undefined; }
  bool is_none() const { return kind_ == Kind::none; }
  bool is_bool() const { return kind_ == Kind::boolean; }
  bool is_int() const { return kind_ == Kind::integer; }
  bool is_float() const { return kind_ == Kind::floating; }
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }
  bool is_namespace() const { return kind_ == Kind::ns; }
  bool is_callable() const { return kind_ == Kind::callable || kind_ == Kind::method; }

  bool as_bool() const { return int_ != 0; }
  int64_t as_int() const { return int_; }  // also bools (True == 1)
  double as_double() const { return is_float() ? float_ : static_cast<double>(int_); }
  const std::string& as_string() const { return str_; }
  const std::string& undefined_hint() const { return str_; }
  const Array& as_array() const { return *array_; }
  const Object& as_object() const { return *object_; }
  Object& namespace_object() const { return *object_; }
  const Callable& as_callable() const { return *callable_; }
  const Value& method_self() const { return *bound_; }
  const std::string& method_name() const { return str_; }

  // Throws the error jinja2's Undefined raises when used (name, attribute).
  [[noreturn]] void fail_undefined() const;

 private:
  explicit Value(Kind k) : kind_(k) {}

  Kind kind_ = Kind::undefined;
  int64_t int_ = 0;
  double float_ = 0.0;
  std::string str_;  // string, undefined hint, method name
  std::shared_ptr<const Array> array_;
  std::shared_ptr<Object> object_;  // object or namespace
  std::shared_ptr<const Callable> callable_;
  std::shared_ptr<const Value> bound_;
};

// Python's type name as jinja2 prints it in messages ("str", "dict", ...).
std::string type_name(const Value& v);

bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python's a < b for numbers, strings and lists; throws ValueError otherwise.
bool less(const Value& a, const Value& b);

std::string to_str(const Value& v);   // str(v); Undefined prints as ""
std::string to_repr(const Value& v);  // repr(v)
std::string python_float_repr(double f);

struct JsonDumpOptions {
  std::optional<std::string> indent;  // None: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// json.dumps(v, ...) as Python writes it.
std::string to_json(const Value& v, const JsonDumpOptions& options);

Value from_json(const nlohmann::ordered_json& j);

// Python str helpers on UTF-8 text, counting code points as Python does.
bool is_python_space(char32_t c);
std::vector<char32_t> decode_utf8(std::string_view s);
std::string encode_utf8(const std::vector<char32_t>& cps, size_t begin, size_t end);
void append_utf8(std::string& out, char32_t c);
size_t python_len(const std::string& s);
// s.strip(chars) / lstrip / rstrip; chars nullopt = Python whitespace.
std::string python_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);

}  // namespace flint::jinja
