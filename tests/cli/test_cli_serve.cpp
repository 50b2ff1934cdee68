// flint serve's KV-cache sizing options: the ones that cannot apply fail
// before anything listens, with one line naming the option.
#include <gtest/gtest.h>

#include <string>

#include "support/process_runner.h"

namespace flint::testing {
namespace {

TEST(CliServe, GpuMemoryFractionIsForCudaOnly) {
  const ProcessResult r =
      run_flint({"serve", "--model", "dummy:tiny", "--device", "cpu", "--gpu-memory-fraction", "0.5"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--gpu-memory-fraction"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("listening"), std::string::npos) << r.err;
}

TEST(CliServe, NegativeKvCacheSizeIsRefused) {
  const ProcessResult r = run_flint({"serve", "--model", "dummy:tiny", "--kv-cache-gib", "-1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--kv-cache-gib"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flint::testing
