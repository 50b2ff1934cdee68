// flint bench (offline) on the CPU with dummy:tiny: the JSON it writes, the
// medians of --repeat, and its errors on bad options.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/process_runner.h"
#include "support/test_support.h"

namespace flint::testing {
namespace {

TEST(CliBench, RepeatReportsTheMedianOfEveryRun) {
  TempDir dir;
  const std::string json_path = (dir / "bench.json").string();
  const auto r = run_flint({"bench", "--model", "dummy:tiny", "--batch", "1,2", "--input-len", "8", "--output-len", "4",
                            "--repeat", "3", "--json", json_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("medians of 3 runs"), std::string::npos) << r.out;
  std::ifstream in(json_path);
  const nlohmann::json j = nlohmann::json::parse(in);
  ASSERT_EQ(j["results"].size(), 2u);
  for (const nlohmann::json& res : j["results"]) {
    for (const char* field : {"prefill_ms", "tpot_ms"}) {
      std::vector<double> runs = res[std::string(field) + "_runs"].get<std::vector<double>>();
      ASSERT_EQ(runs.size(), 3u) << field;
      for (double v : runs) EXPECT_GT(v, 0.0) << field;
      std::sort(runs.begin(), runs.end());
      EXPECT_DOUBLE_EQ(res[field].get<double>(), runs[1]) << field << ": the median of the three runs";
    }
    EXPECT_NEAR(res["decode_tok_per_s"].get<double>(), res["batch"].get<double>() * 1e3 / res["tpot_ms"].get<double>(),
                1e-9 * res["decode_tok_per_s"].get<double>());
  }
}

TEST(CliBench, BadOptionsNameTheOption) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--repeat", "0"},
                                               std::vector<std::string>{"--batch", "1,x"},
                                               std::vector<std::string>{"--output-len", "1"}}) {
    std::vector<std::string> cmd = {"bench", "--model", "dummy:tiny"};
    cmd.insert(cmd.end(), args.begin(), args.end());
    const auto r = run_flint(cmd);
    EXPECT_NE(r.exit_code, 0) << args[0];
    EXPECT_NE(r.err.find(args[0]), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace flint::testing
