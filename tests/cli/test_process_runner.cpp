// The runner every CLI test goes through: a flint that does not finish is
// killed at the timeout and reported, instead of hanging the test.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <chrono>

#include "support/process_runner.h"

namespace flint::testing {
namespace {

TEST(ProcessRunner, KillsAChildStillRunningAtTheTimeout) {
  const auto start = std::chrono::steady_clock::now();
  // `flint serve` runs until it is told to stop.
  const ProcessResult r = run_process(flint_binary(), {"serve", "--model", "dummy:tiny", "--port", "0"}, 1);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_TRUE(r.timed_out) << r.err;
  EXPECT_EQ(r.exit_code, 128 + 9);  // SIGKILL
  EXPECT_GE(seconds, 1);
  EXPECT_LT(seconds, 10);
}

TEST(ProcessRunner, RunFlintFailsTheTestWhenFlintTimesOut) {
  EXPECT_NONFATAL_FAILURE(run_flint({"serve", "--model", "dummy:tiny", "--port", "0"}, 1),
                          "did not finish within 1 s; killed");
}

}  // namespace
}  // namespace flint::testing
