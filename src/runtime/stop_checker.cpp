#include "runtime/stop_checker.h"

#include <algorithm>

#include "core/error.h"

namespace flint {

StopChecker::StopChecker(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (size_t i = 0; i < stops_.size(); ++i)
    FLINT_CHECK(!stops_[i].empty(), ErrorContext{.field = "stop"}, "stop string {} is empty", i);
}

StopChecker::Result StopChecker::push(std::string_view text) {
  if (stopped_) return {.emit = {}, .stopped = true};
  if (stops_.empty()) return {.emit = std::string(text), .stopped = false};

  std::string buffer = std::move(held_);
  held_.clear();
  buffer.append(text);

  // The match that ends first; for one stop string its first occurrence is
  // also the one that ends first.
  size_t best_end = std::string::npos;
  size_t best_start = 0;
  for (const std::string& stop : stops_) {
    const size_t start = buffer.find(stop);
    if (start == std::string::npos) continue;
    const size_t end = start + stop.size();
    if (end < best_end || (end == best_end && start < best_start)) {
      best_end = end;
      best_start = start;
    }
  }
  if (best_end != std::string::npos) {
    stopped_ = true;
    buffer.resize(best_start);
    return {.emit = std::move(buffer), .stopped = true};
  }

  // Hold the longest suffix that could still grow into a stop string. Every
  // later start of a possible match lies inside it, so the rest is safe to emit.
  size_t hold = 0;
  for (const std::string& stop : stops_) {
    const size_t longest = std::min(buffer.size(), stop.size() - 1);
    for (size_t n = longest; n > hold; --n) {
      if (std::string_view(buffer).substr(buffer.size() - n) == std::string_view(stop).substr(0, n)) {
        hold = n;
        break;
      }
    }
  }
  held_ = buffer.substr(buffer.size() - hold);
  buffer.resize(buffer.size() - hold);
  return {.emit = std::move(buffer), .stopped = false};
}

std::string StopChecker::flush() {
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace flint
