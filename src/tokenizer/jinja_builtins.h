// tokenizer/jinja_builtins.h — jinja2's filters and tests, the Python methods
// of str/list/dict that templates call, and the globals transformers adds.
//
// Contract:
// - Each function behaves as its jinja2 / Python counterpart does on the
//   values of jinja_value.h, and throws ValueError where Python would raise.
// - Methods that mutate (list.append, dict.update, ...) are refused, as
//   ImmutableSandboxedEnvironment refuses them.
// - is_known_filter / is_known_test list exactly what apply_filter /
//   apply_test implement; the parser rejects other names up front.
#pragma once

#include <string_view>

#include "tokenizer/jinja_value.h"

namespace flint::jinja {

bool is_known_filter(std::string_view name);
bool is_known_test(std::string_view name);

// `call_filter` lets filters like map/select apply other filters and tests.
Value apply_filter(std::string_view name, const Value& input, const CallArgs& args);
bool apply_test(std::string_view name, const Value& input, const CallArgs& args);

// obj.name(args) for str, list and dict methods; obj is the bound self.
Value call_method(const Value& self, const std::string& name, const CallArgs& args);
// Whether obj.name is a method (jinja2 prefers attributes over dict keys).
bool has_method(const Value& self, std::string_view name);

// obj.name and obj[key] as jinja2's sandboxed getattr/getitem resolve them.
Value get_attribute(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// The items a for loop visits: list items, dict keys, str characters.
Array iterate(const Value& v);

// Python operators on values.
Value binary_op(std::string_view op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);

}  // namespace flint::jinja
