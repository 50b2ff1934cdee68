// runtime/stop_checker.h — finds stop strings in a stream of text deltas.
//
// Contract:
// - push() returns the text that can no longer be part of a stop string and
//   holds back the longest tail that is a proper prefix of some stop string,
//   so a stop string split across any number of pushes is still found.
// - Generation stops at the first stop string to be completed (smallest end
//   offset; on a tie the longer one, which starts earlier). Everything before
//   its start is emitted, the stop string and anything after it are not, and
//   Result::stopped is true. This choice makes the output independent of how
//   the text was cut into deltas. Pushes after a stop emit nothing.
// - flush() hands back the held tail at the end of generation (no stop string
//   matched). Concatenating every emit and the flush gives the input text
//   without any change when nothing matched.
// - Matching is byte-wise. With UTF-8 input deltas and UTF-8 stop strings the
//   emitted pieces are UTF-8 too: a held tail starts where a stop string's
//   first (lead) byte matched, which is a character boundary.
// - An empty stop list passes every push straight through; an empty stop
//   string is rejected (flint::Error, field "stop").
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace flint {

class StopChecker {
 public:
  explicit StopChecker(std::vector<std::string> stops);

  struct Result {
    std::string emit;
    bool stopped = false;
  };
  Result push(std::string_view text);
  std::string flush();

  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // a proper prefix of some stop string, never a whole one
  bool stopped_ = false;
};

}  // namespace flint
