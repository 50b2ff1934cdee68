// Python semantics of values: attribute and item lookup, slicing, iteration,
// operators and the str/list/dict methods that chat templates call.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "tokenizer/jinja_builtins.h"

namespace flint::jinja {
namespace {

// A result bigger than this is refused: templates must not blow up memory.
constexpr size_t kMaxValueBytes = size_t{64} << 20;

template <size_t N>
bool in_list(std::string_view name, const std::string_view (&names)[N]) {
  return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

constexpr std::string_view kStrMethods[] = {
    "strip", "lstrip", "rstrip", "split", "startswith", "endswith", "upper", "lower", "title", "capitalize",
    "replace", "find", "count", "join", "splitlines", "isdigit", "isalpha", "isalnum", "isspace", "islower",
    "isupper", "format"};
constexpr std::string_view kDictMethods[] = {
    "items", "keys", "values", "get", "copy", "pop", "popitem", "update", "setdefault", "clear", "fromkeys"};
constexpr std::string_view kListMethods[] = {
    "index", "count", "copy", "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"};
constexpr std::string_view kMutating[] = {"pop",    "popitem", "update", "setdefault", "clear",
                                                               "append", "extend",  "insert", "remove",     "reverse",
                                                               "sort",   "fromkeys"};

const Value& arg_at(const CallArgs& args, size_t i, std::string_view name, const Value& fallback) {
  if (i < args.positional.size()) return args.positional[i];
  if (const Value* v = args.kwarg(name)) return *v;
  return fallback;
}

std::string require_str(const Value& v, std::string_view what) {
  if (!v.is_string()) throw ValueError(fmt::format("{} must be str, not {}", what, type_name(v)));
  return v.as_string();
}

// Python ints never overflow; int64 ones here must say so instead of wrapping.
int64_t checked_op(char op, int64_t a, int64_t b) {
  int64_t r = 0;
  bool overflow = op == '+' ? __builtin_add_overflow(a, b, &r)
                  : op == '-' ? __builtin_sub_overflow(a, b, &r)
                              : __builtin_mul_overflow(a, b, &r);
  if (overflow) throw ValueError("integer overflow (Python ints are unbounded; this template needs bigger numbers)");
  return r;
}

Value repeat(const Value& seq, int64_t times) {
  if (times <= 0) return seq.is_string() ? Value(std::string()) : Value(Array{});
  size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_array().size() * 16;
  if (unit != 0 && static_cast<uint64_t>(times) > kMaxValueBytes / unit)
    throw ValueError("sequence repetition result is too large");
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += seq.as_string();
    return Value(std::move(out));
  }
  Array out;
  for (int64_t i = 0; i < times; ++i) out.insert(out.end(), seq.as_array().begin(), seq.as_array().end());
  return Value(std::move(out));
}

std::string ascii_map(const std::string& s, int (*fn)(int)) {
  std::string out = s;
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(fn(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> split_whitespace(const std::string& s, int64_t maxsplit) {
  std::vector<char32_t> cps = decode_utf8(s);
  std::vector<std::string> out;
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && is_python_space(cps[i])) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      size_t e = cps.size();
      while (e > i && is_python_space(cps[e - 1])) --e;
      out.push_back(encode_utf8(cps, i, e));
      break;
    }
    size_t j = i;
    while (j < cps.size() && !is_python_space(cps[j])) ++j;
    out.push_back(encode_utf8(cps, i, j));
    i = j;
  }
  return out;
}

Value str_method(const std::string& s, const std::string& name, const CallArgs& args) {
  static const Value none = Value::none();
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Value& chars = arg_at(args, 0, "chars", none);
    std::optional<std::string> set;
    if (!chars.is_none()) set = require_str(chars, "strip arg");
    return Value(python_strip(s, set, name != "rstrip", name != "lstrip"));
  }
  if (name == "split") {
    const Value& sep = arg_at(args, 0, "sep", none);
    int64_t maxsplit = arg_at(args, 1, "maxsplit", Value(-1)).as_int();
    std::vector<std::string> parts;
    if (sep.is_none()) {
      parts = split_whitespace(s, maxsplit);
    } else {
      std::string d = require_str(sep, "separator");
      if (d.empty()) throw ValueError("empty separator");
      size_t start = 0;
      while (true) {
        size_t at = s.find(d, start);
        if (at == std::string::npos || (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit)) break;
        parts.push_back(s.substr(start, at - start));
        start = at + d.size();
      }
      parts.push_back(s.substr(start));
    }
    Array out;
    for (auto& p : parts) out.emplace_back(std::move(p));
    return Value(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    const Value& what = arg_at(args, 0, "prefix", none);
    std::vector<std::string> options;
    if (what.is_array())
      for (const Value& v : what.as_array()) options.push_back(require_str(v, name + " arg"));
    else
      options.push_back(require_str(what, name + " first arg"));
    for (const std::string& o : options) {
      bool hit = name == "startswith" ? s.compare(0, o.size(), o) == 0
                                      : s.size() >= o.size() && s.compare(s.size() - o.size(), o.size(), o) == 0;
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (name == "upper") return Value(ascii_map(s, ::toupper));
  if (name == "lower") return Value(ascii_map(s, ::tolower));
  if (name == "title" || name == "capitalize") {
    std::string out = s;
    bool start = true;
    for (char& c : out) {
      unsigned char u = static_cast<unsigned char>(c);
      if (u >= 0x80) continue;
      bool letter = std::isalpha(u);
      c = static_cast<char>(start && letter ? std::toupper(u) : std::tolower(u));
      if (name == "title") start = !letter;
      else start = false;
    }
    return Value(std::move(out));
  }
  if (name == "replace") {
    std::string from = require_str(arg_at(args, 0, "old", none), "replace arg 1");
    std::string to = require_str(arg_at(args, 1, "new", none), "replace arg 2");
    int64_t count = arg_at(args, 2, "count", Value(-1)).as_int();
    std::string out;
    if (from.empty()) {  // Python inserts `to` around every character
      std::vector<char32_t> cps = decode_utf8(s);
      for (size_t i = 0; i <= cps.size(); ++i) {
        if (count < 0 || static_cast<int64_t>(i) < count) out += to;
        if (i < cps.size()) append_utf8(out, cps[i]);
        if (out.size() > kMaxValueBytes) throw ValueError("replace result is too large");
      }
      return Value(std::move(out));
    }
    size_t start = 0;
    for (int64_t n = 0; count < 0 || n < count; ++n) {
      size_t at = s.find(from, start);
      if (at == std::string::npos) break;
      out += s.substr(start, at - start) + to;
      start = at + from.size();
      if (out.size() > kMaxValueBytes) throw ValueError("replace result is too large");
    }
    return Value(out + s.substr(start));
  }
  if (name == "find" || name == "count") {
    std::string sub = require_str(arg_at(args, 0, "sub", none), name + " arg");
    if (name == "find") {
      size_t at = s.find(sub);
      return Value(at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(python_len(s.substr(0, at))));
    }
    if (sub.empty()) return Value(static_cast<int64_t>(python_len(s) + 1));
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& v : iterate(arg_at(args, 0, "iterable", none))) {
      if (!first) out += s;
      first = false;
      out += require_str(v, "sequence item");
    }
    return Value(std::move(out));
  }
  if (name == "splitlines") {
    Array out;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n' || s[i] == '\r') {
        out.emplace_back(s.substr(start, i - start));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        start = i + 1;
      }
    if (start < s.size()) out.emplace_back(s.substr(start));
    return Value(std::move(out));
  }
  if (name.rfind("is", 0) == 0) {
    if (s.empty()) return Value(false);
    bool cased = false;
    for (unsigned char c : s) {
      bool ok = name == "isdigit"   ? std::isdigit(c)
                : name == "isalpha" ? std::isalpha(c)
                : name == "isalnum" ? std::isalnum(c)
                : name == "isspace" ? std::isspace(c)
                : name == "islower" ? !std::isupper(c)
                                    : !std::islower(c);
      if (!ok) return Value(false);
      cased = cased || std::isalpha(c);
    }
    return Value(name == "islower" || name == "isupper" ? cased : true);
  }
  throw ValueError(fmt::format("unsupported construct: str.{}()", name));
}

}  // namespace

bool has_method(const Value& self, std::string_view name) {
  if (self.is_string()) return in_list(name, kStrMethods);
  if (self.is_object()) return in_list(name, kDictMethods);
  if (self.is_array()) return in_list(name, kListMethods);
  return false;
}

Value call_method(const Value& self, const std::string& name, const CallArgs& args) {
  if (in_list(name, kMutating) || (self.is_array() && name == "pop") || (self.is_object() && name == "pop"))
    throw ValueError(fmt::format("access to {}.{}() is unsafe: the template sandbox is immutable", type_name(self), name));
  static const Value none = Value::none();
  if (self.is_string()) return str_method(self.as_string(), name, args);
  if (self.is_object()) {
    const Object& o = self.as_object();
    if (name == "copy") return self;
    if (name == "get") {
      const Value* v = o.find(require_str(arg_at(args, 0, "key", none), "dict key"));
      return v ? *v : arg_at(args, 1, "default", none);
    }
    Array out;
    for (const auto& [k, v] : o.items()) {
      if (name == "keys") out.emplace_back(k);
      else if (name == "values") out.push_back(v);
      else out.emplace_back(Array{Value(k), v});
    }
    return Value(std::move(out));
  }
  if (self.is_array()) {
    const Array& a = self.as_array();
    if (name == "copy") return self;
    const Value& x = arg_at(args, 0, "value", none);
    int64_t count = 0;
    for (size_t i = 0; i < a.size(); ++i)
      if (equals(a[i], x)) {
        if (name == "index") return Value(static_cast<int64_t>(i));
        ++count;
      }
    if (name == "index") throw ValueError(fmt::format("{} is not in list", to_repr(x)));
    return Value(count);
  }
  throw ValueError(fmt::format("'{}' object has no method '{}'", type_name(self), name));
}

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) obj.fail_undefined();
  if (has_method(obj, name)) return Value::method(obj, name);
  if (obj.is_object() || obj.is_namespace()) {
    const Object& o = obj.is_object() ? obj.as_object() : obj.namespace_object();
    if (const Value* v = o.find(name)) return *v;
  }
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(obj), name));
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) obj.fail_undefined();
  if (key.is_string()) {
    if (obj.is_object() || obj.is_namespace()) {
      const Object& o = obj.is_object() ? obj.as_object() : obj.namespace_object();
      if (const Value* v = o.find(key.as_string())) return *v;
    }
    return get_attribute(obj, key.as_string());  // jinja2 falls back to getattr
  }
  if ((key.is_int() || key.is_bool()) && (obj.is_array() || obj.is_string())) {
    int64_t i = key.as_int();
    if (obj.is_array()) {
      int64_t n = static_cast<int64_t>(obj.as_array().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.as_array()[static_cast<size_t>(i)];
    } else {
      std::vector<char32_t> cps = decode_utf8(obj.as_string());
      int64_t n = static_cast<int64_t>(cps.size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value(encode_utf8(cps, static_cast<size_t>(i), static_cast<size_t>(i) + 1));
    }
  }
  return Value::undefined(fmt::format("'{} object' has no element {}", type_name(obj), to_repr(key)));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) obj.fail_undefined();
  auto index = [](const Value& v, const char* what) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_int() && !v.is_bool()) throw ValueError(fmt::format("slice {} must be an integer or None", what));
    return v.as_int();
  };
  std::optional<int64_t> b = index(start, "start"), e = index(stop, "stop"), s = index(step, "step");
  int64_t st = s.value_or(1);
  if (st == 0) throw ValueError("slice step cannot be zero");
  if (!obj.is_array() && !obj.is_string())
    return Value::undefined(fmt::format("'{} object' cannot be sliced", type_name(obj)));
  std::vector<char32_t> cps;
  if (obj.is_string()) cps = decode_utf8(obj.as_string());
  int64_t n = static_cast<int64_t>(obj.is_array() ? obj.as_array().size() : cps.size());
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v < 0 ? *v + n : *v;
    return st > 0 ? std::clamp<int64_t>(x, 0, n) : std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t lo = clamp(b, st > 0 ? 0 : n - 1), hi = clamp(e, st > 0 ? n : -1);
  Array items;
  std::vector<char32_t> chars;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) {
    if (obj.is_array()) items.push_back(obj.as_array()[static_cast<size_t>(i)]);
    else chars.push_back(cps[static_cast<size_t>(i)]);
  }
  if (obj.is_string()) return Value(encode_utf8(chars, 0, chars.size()));
  return Value(std::move(items));
}

Array iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::undefined: return {};
    case Value::Kind::array: return v.as_array();
    case Value::Kind::object: {
      Array keys;
      for (const auto& [k, item] : v.as_object().items()) keys.emplace_back(k);
      return keys;
    }
    case Value::Kind::string: {
      Array chars;
      std::vector<char32_t> cps = decode_utf8(v.as_string());
      for (size_t i = 0; i < cps.size(); ++i) chars.emplace_back(encode_utf8(cps, i, i + 1));
      return chars;
    }
    default: throw ValueError(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (item.is_undefined()) item.fail_undefined();
    if (!item.is_string())
      throw ValueError(fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
    return container.as_string().find(item.as_string()) != std::string::npos;
  }
  if (container.is_object()) return item.is_string() && container.as_object().find(item.as_string()) != nullptr;
  for (const Value& v : iterate(container))
    if (equals(v, item)) return true;
  return false;
}

Value binary_op(std::string_view op, const Value& a, const Value& b) {
  if (op == "~") return Value(to_str(a) + to_str(b));
  if (a.is_undefined()) a.fail_undefined();
  if (b.is_undefined()) b.fail_undefined();
  bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) return Value(checked_op('+', a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      if (a.as_string().size() + b.as_string().size() > kMaxValueBytes) throw ValueError("string is too large");
      return Value(a.as_string() + b.as_string());
    }
    if (a.is_array() && b.is_array()) {
      Array out = a.as_array();
      out.insert(out.end(), b.as_array().begin(), b.as_array().end());
      return Value(std::move(out));
    }
  } else if (op == "-") {
    if (ints) return Value(checked_op('-', a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() - b.as_double());
  } else if (op == "*") {
    if (ints) return Value(checked_op('*', a.as_int(), b.as_int()));
    if (nums) return Value(a.as_double() * b.as_double());
    if ((a.is_string() || a.is_array()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_array()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
  } else if (op == "/" || op == "//" || op == "%") {
    if (nums) {
      if (b.as_double() == 0.0)
        throw ValueError(op == "%" ? "integer modulo by zero" : "division by zero");
      if (op == "/") return Value(a.as_double() / b.as_double());
      if (ints) {
        int64_t x = a.as_int(), y = b.as_int();
        if (x == INT64_MIN && y == -1) throw ValueError("integer overflow");
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value(op == "//" ? q : m);
      }
      double x = a.as_double(), y = b.as_double();
      if (op == "//") return Value(std::floor(x / y));
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value(m);
    }
    if (op == "%" && a.is_string()) throw ValueError("unsupported construct: printf-style string formatting ('%')");
  } else if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), result = 1;
      for (int64_t e = b.as_int(); e > 0; --e) {
        result = checked_op('*', result, base);
        if (result == 0 || result == 1) break;  // 0**n, 1**n; (-1)**n handled below
      }
      if (base == -1) result = (b.as_int() % 2) ? -1 : 1;
      return Value(result);
    }
    if (nums) return Value(std::pow(a.as_double(), b.as_double()));
  }
  throw ValueError(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b)));
}

}  // namespace flint::jinja
