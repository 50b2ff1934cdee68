// io/strict_json.h — JSON parsing for files Flint does not trust (internal to io/).
//
// Contract:
// - parse_strict_json() parses `text` and rejects, with a flint::Error carrying
//   `context`, what nlohmann would otherwise let through silently: a key repeated
//   within one object (nlohmann keeps the last one, so a hostile header could
//   show one reader a tensor and hide it from another). Objects keep file order.
// - Syntax errors become flint::Error too; no nlohmann exception escapes.
// - printable() makes untrusted text safe to put in a one-line error message.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/error.h"

namespace flint {

nlohmann::ordered_json parse_strict_json(std::string_view text, const ErrorContext& context);

// `text` with control and non-ASCII bytes escaped (\xNN) and cut to `max_chars`.
std::string printable(std::string_view text, size_t max_chars = 120);

// "an object", "an array", "a string", "a negative integer", ... for messages.
std::string_view json_type_name(const nlohmann::ordered_json& value);

}  // namespace flint
