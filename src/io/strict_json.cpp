#include "io/strict_json.h"

#include <set>
#include <vector>

namespace flint {

std::string printable(std::string_view text, size_t max_chars) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F)
      out += c;
    else
      out += fmt::format("\\x{:02x}", u);
  }
  return out;
}

std::string_view json_type_name(const nlohmann::ordered_json& value) {
  switch (value.type()) {
    case nlohmann::ordered_json::value_t::object: return "an object";
    case nlohmann::ordered_json::value_t::array: return "an array";
    case nlohmann::ordered_json::value_t::string: return "a string";
    case nlohmann::ordered_json::value_t::boolean: return "a boolean";
    case nlohmann::ordered_json::value_t::number_unsigned: return "a number";
    case nlohmann::ordered_json::value_t::number_integer: return "a negative integer";
    case nlohmann::ordered_json::value_t::number_float: return "a floating-point number";
    case nlohmann::ordered_json::value_t::null: return "null";
    default: return "an unexpected JSON value";
  }
}

nlohmann::ordered_json parse_strict_json(std::string_view text, const ErrorContext& context) {
  using json = nlohmann::ordered_json;
  // One set of seen keys per open object; arrays need no entry because keys
  // only occur directly inside objects.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto on_event = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && duplicate.empty() && !open_objects.back().insert(parsed.get<std::string>()).second)
          duplicate = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  };
  json result;
  try {
    result = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    // nlohmann prefixes "[json.exception.parse_error.101] "; the rest says where.
    std::string_view what = e.what();
    if (const size_t close = what.find("] "); what.starts_with("[json.exception") && close != std::string_view::npos)
      what.remove_prefix(close + 2);
    fail(context, "not valid JSON: {}", printable(what, 300));
  }
  FLINT_CHECK(duplicate.empty(), context, "key '{}' appears more than once in one JSON object", printable(duplicate));
  return result;
}

}  // namespace flint
