// jinja2's filters and tests, with transformers' tojson override.
#include "tokenizer/jinja_builtins.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

namespace flint::jinja {
namespace {

constexpr std::string_view kFilters[] = {
    "abs",  "capitalize", "count",   "d",      "default", "e",      "escape",  "first",      "float",
    "int",  "items",      "join",    "last",   "length",  "list",   "lower",   "map",        "max",
    "min",  "reject",     "rejectattr", "replace", "reverse", "round", "safe",  "select",     "selectattr",
    "sort", "string",     "sum",     "title",  "tojson",  "trim",   "unique",  "upper",      "indent"};

constexpr std::string_view kTests[] = {
    "defined", "undefined", "none",  "boolean", "true",     "false",     "integer", "float", "number",
    "string",  "mapping",   "iterable", "sequence", "callable", "sameas", "equalto", "eq",    "ne",
    "lt",      "le",        "gt",    "ge",      "lessthan", "greaterthan", "in",   "odd",   "even",
    "divisibleby", "lower", "upper", "escaped"};

const Value kNone = Value::none();

// Argument `i` (after the filtered value), by position or keyword.
const Value& arg(const CallArgs& a, size_t i, std::string_view name, const Value& fallback = kNone) {
  if (i < a.positional.size()) return a.positional[i];
  if (const Value* v = a.kwarg(name)) return *v;
  return fallback;
}

CallArgs rest_args(const CallArgs& a, size_t from) {
  CallArgs out;
  for (size_t i = from; i < a.positional.size(); ++i) out.positional.push_back(a.positional[i]);
  out.keyword = a.keyword;
  return out;
}

// jinja2's make_attrgetter: "a.b.0" walks attributes and integer indexes.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = numeric ? get_item(cur, Value(static_cast<int64_t>(std::stoll(part)))) : get_item(cur, Value(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

std::string lower_ascii(std::string s) {
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x80) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Sorting key of sort/unique/min/max: case-insensitive strings unless asked.
Value sort_key(const Value& v, bool case_sensitive, const Value& attribute) {
  Value key = attribute.is_string() ? attr_path(v, attribute.as_string()) : v;
  if (!case_sensitive && key.is_string()) return Value(lower_ascii(key.as_string()));
  return key;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value tojson(const Value& input, const CallArgs& a) {
  // transformers: json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)
  JsonDumpOptions o;
  o.ensure_ascii = truthy(arg(a, 0, "ensure_ascii", Value(false)));
  const Value& indent = arg(a, 1, "indent");
  if (indent.is_int()) o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 1000)), ' ');
  else if (indent.is_string()) o.indent = indent.as_string();
  else if (!indent.is_none()) throw ValueError("tojson: indent must be an int, a str or None");
  if (o.indent) o.item_separator.assign(1, ',');
  const Value& seps = arg(a, 2, "separators");
  if (seps.is_array()) {
    if (seps.as_array().size() != 2 || !seps.as_array()[0].is_string() || !seps.as_array()[1].is_string())
      throw ValueError("tojson: separators must be a pair of strings");
    o.item_separator = seps.as_array()[0].as_string();
    o.key_separator = seps.as_array()[1].as_string();
  } else if (!seps.is_none()) {
    throw ValueError("tojson: separators must be a (item, key) pair");
  }
  o.sort_keys = truthy(arg(a, 3, "sort_keys", Value(false)));
  return Value(to_json(input, o));
}

Value select_like(std::string_view name, const Value& input, const CallArgs& a) {
  bool attr = name == "selectattr" || name == "rejectattr";
  bool keep_if = name == "select" || name == "selectattr";
  size_t test_at = attr ? 1 : 0;
  std::string attribute = attr ? to_str(arg(a, 0, "attr")) : "";
  Array out;
  for (const Value& item : iterate(input)) {
    Value subject = attr ? attr_path(item, attribute) : item;
    bool pass;
    if (a.positional.size() > test_at) {
      pass = apply_test(to_str(a.positional[test_at]), subject, rest_args(a, test_at + 1));
    } else {
      pass = truthy(subject);
    }
    if (pass == keep_if) out.push_back(item);
  }
  return Value(std::move(out));
}

Value to_int(const Value& v, const Value& fallback) {
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float()) {
    double d = std::trunc(v.as_double());
    if (!std::isfinite(d) || std::fabs(d) > 9.2e18) return fallback;
    return Value(static_cast<int64_t>(d));
  }
  if (v.is_string()) {
    std::string s = python_strip(v.as_string(), std::nullopt, true, true);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    char* end = nullptr;
    errno = 0;
    long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end && *end == '\0' && errno == 0) return Value(static_cast<int64_t>(i));
    double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == '\0') return to_int(Value(d), fallback);
  }
  return fallback;
}

}  // namespace

bool is_known_filter(std::string_view name) {
  return std::find(std::begin(kFilters), std::end(kFilters), name) != std::end(kFilters);
}

bool is_known_test(std::string_view name) {
  return std::find(std::begin(kTests), std::end(kTests), name) != std::end(kTests);
}

Value apply_filter(std::string_view name, const Value& v, const CallArgs& a) {
  if (name == "default" || name == "d") {
    bool use_default = v.is_undefined() || (truthy(arg(a, 1, "boolean", Value(false))) && !truthy(v));
    return use_default ? arg(a, 0, "default_value", Value(std::string())) : v;
  }
  if (name == "tojson") return tojson(v, a);
  if (name == "safe") return v;
  if (name == "string") return Value(to_str(v));
  if (name == "trim") {
    const Value& chars = arg(a, 0, "chars");
    return Value(python_strip(to_str(v), chars.is_none() ? std::nullopt : std::optional(to_str(chars)), true, true));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize")
    return call_method(Value(to_str(v)), std::string(name), {});
  if (name == "replace") {
    CallArgs m;
    m.positional = {Value(to_str(arg(a, 0, "old"))), Value(to_str(arg(a, 1, "new"))), arg(a, 2, "count", Value(-1))};
    return call_method(Value(to_str(v)), "replace", m);
  }
  if (name == "e" || name == "escape") return Value(html_escape(to_str(v)));
  if (name == "length" || name == "count") {
    if (v.is_string()) return Value(static_cast<int64_t>(python_len(v.as_string())));
    if (v.is_array()) return Value(static_cast<int64_t>(v.as_array().size()));
    if (v.is_object()) return Value(static_cast<int64_t>(v.as_object().size()));
    if (v.is_undefined()) return Value(int64_t{0});
    throw ValueError(fmt::format("object of type '{}' has no len()", type_name(v)));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value(Array{});
    if (!v.is_object()) throw ValueError("Can only get item pairs from a mapping.");
    return call_method(v, "items", {});
  }
  if (name == "list") return Value(iterate(v));
  if (name == "first" || name == "last") {
    Array items = iterate(v);
    if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    std::string sep = to_str(arg(a, 0, "d", Value(std::string())));
    const Value& attribute = arg(a, 1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      if (!first) out += sep;
      first = false;
      out += to_str(attribute.is_none() ? item : attr_path(item, to_str(attribute)));
    }
    return Value(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr")
    return select_like(name, v, a);
  if (name == "map") {
    Array out;
    const Value* attribute = a.kwarg("attribute");
    for (const Value& item : iterate(v)) {
      if (attribute) {
        Value got = attr_path(item, to_str(*attribute));
        const Value* def = a.kwarg("default");
        out.push_back(got.is_undefined() && def ? *def : got);
      } else if (!a.positional.empty()) {
        out.push_back(apply_filter(to_str(a.positional[0]), item, rest_args(a, 1)));
      } else {
        out.push_back(item);
      }
    }
    return Value(std::move(out));
  }
  if (name == "unique") {
    bool cs = truthy(arg(a, 0, "case_sensitive", Value(false)));
    const Value& attribute = arg(a, 1, "attribute");
    Array out, keys;
    for (const Value& item : iterate(v)) {
      Value key = sort_key(item, cs, attribute);
      if (std::none_of(keys.begin(), keys.end(), [&](const Value& k) { return equals(k, key); })) {
        keys.push_back(key);
        out.push_back(item);
      }
    }
    return Value(std::move(out));
  }
  if (name == "sort" || name == "min" || name == "max") {
    bool sort = name == "sort";
    bool reverse = sort && truthy(arg(a, 0, "reverse", Value(false)));
    bool cs = truthy(arg(a, sort ? 1 : 0, "case_sensitive", Value(false)));
    const Value& attribute = arg(a, sort ? 2 : 1, "attribute");
    Array items = iterate(v);
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return reverse ? less(sort_key(y, cs, attribute), sort_key(x, cs, attribute))
                     : less(sort_key(x, cs, attribute), sort_key(y, cs, attribute));
    });
    if (sort) return Value(std::move(items));
    if (items.empty()) return Value::undefined(fmt::format("No {} item, sequence was empty.", name));
    return name == "min" ? items.front() : items.back();
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<char32_t> cps = decode_utf8(v.as_string());
      std::reverse(cps.begin(), cps.end());
      return Value(encode_utf8(cps, 0, cps.size()));
    }
    Array items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "sum") {
    const Value& attribute = arg(a, 0, "attribute");
    Value total = arg(a, 1, "start", Value(int64_t{0}));
    for (const Value& item : iterate(v))
      total = binary_op("+", total, attribute.is_none() ? item : attr_path(item, to_str(attribute)));
    return total;
  }
  if (name == "abs") {
    if (v.is_int() || v.is_bool()) {
      if (v.as_int() == INT64_MIN) throw ValueError("integer overflow");
      return Value(static_cast<int64_t>(std::llabs(v.as_int())));
    }
    if (v.is_float()) return Value(std::fabs(v.as_double()));
    throw ValueError(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
  }
  if (name == "int") return to_int(v, arg(a, 0, "default", Value(int64_t{0})));
  if (name == "float") {
    if (v.is_number()) return Value(v.as_double());
    Value fallback = arg(a, 0, "default", Value(0.0));
    if (!v.is_string()) return fallback;
    std::string s = python_strip(v.as_string(), std::nullopt, true, true);
    char* end = nullptr;
    double d = std::strtod(s.c_str(), &end);
    return !s.empty() && end && *end == '\0' ? Value(d) : fallback;
  }
  if (name == "round") {
    if (!v.is_number()) throw ValueError(fmt::format("round: expected a number, got {}", type_name(v)));
    int64_t precision = arg(a, 0, "precision", Value(int64_t{0})).as_int();
    std::string method = to_str(arg(a, 1, "method", Value("common")));
    double scale = std::pow(10.0, static_cast<double>(precision)), x = v.as_double() * scale;
    double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
    return Value(r / scale);
  }
  if (name == "indent") {
    Value width = arg(a, 0, "width", Value(int64_t{4}));
    std::string pad = width.is_string() ? width.as_string() : std::string(static_cast<size_t>(std::clamp<int64_t>(width.as_int(), 0, 1000)), ' ');
    bool first = truthy(arg(a, 1, "first", Value(false))), blank = truthy(arg(a, 2, "blank", Value(false)));
    std::string s = to_str(v), out;
    size_t start = 0;
    for (bool is_first = true;; is_first = false) {
      size_t nl = s.find('\n', start);
      std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if ((!is_first || first) && (blank || !python_strip(line, std::nullopt, true, true).empty())) out += pad;
      out += line;
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
    }
    return Value(std::move(out));
  }
  throw ValueError(fmt::format("unsupported filter '{}'", name));
}

bool apply_test(std::string_view name, const Value& v, const CallArgs& a) {
  const Value& other = arg(a, 0, "b");
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_object();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_array() || v.is_object();
  if (name == "sequence") return v.is_string() || v.is_array() || v.is_object();
  if (name == "callable") return v.is_callable();
  if (name == "sameas")
    return v.kind() == other.kind() && (v.is_none() || ((v.is_bool() || v.is_int()) && v.as_int() == other.as_int()));
  if (name == "equalto" || name == "eq") return equals(v, other);
  if (name == "ne") return !equals(v, other);
  if (name == "lt" || name == "lessthan") return less(v, other);
  if (name == "le") return !less(other, v);
  if (name == "gt" || name == "greaterthan") return less(other, v);
  if (name == "ge") return !less(v, other);
  if (name == "in") return contains(other, v);
  if (name == "escaped") return false;
  if (name == "lower" || name == "upper") {
    if (!v.is_string()) return false;
    return truthy(call_method(v, name == "lower" ? "islower" : "isupper", {}));
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!v.is_int() && !v.is_bool()) throw ValueError(fmt::format("test '{}' needs an integer", name));
    int64_t d = name == "divisibleby" ? arg(a, 0, "num", Value(int64_t{1})).as_int() : 2;
    if (d == 0) throw ValueError("integer modulo by zero");
    int64_t m = v.as_int() % d;
    return name == "odd" ? m != 0 : m == 0;
  }
  throw ValueError(fmt::format("unsupported test '{}'", name));
}

}  // namespace flint::jinja
