// `flint bench serve` against a real `flint serve`.
#include <gtest/gtest.h>

#include <fstream>

#include "server_process.h"
#include "support/process_runner.h"
#include "support/test_support.h"

namespace flint::testing {
namespace {

TEST(BenchServe, DrivesAServerAndReportsExactLengths) {
  ServerProcess server({"--num-kv-blocks", "64", "--max-num-batched-tokens", "256"});
  ASSERT_TRUE(server.ready());
  TempDir dir;
  const std::string json_path = (dir / "bench.json").string();
  const ProcessResult r =
      run_flint({"bench", "serve", "--url", "http://127.0.0.1:" + std::to_string(server.port()), "--concurrency", "4",
                 "--num-requests", "8", "--input-len", "16", "--output-len", "6", "--json", json_path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("request throughput"), std::string::npos) << r.out;
  std::ifstream in(json_path);
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j["model"], "dummy:tiny");
  EXPECT_EQ(j["completed"], 8);
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["length_mismatches"], 0);
  EXPECT_EQ(j["input_tokens"], 8 * 16);
  EXPECT_EQ(j["output_tokens"], 8 * 6);
  EXPECT_GT(j["output_tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["ttft_ms"]["p50"].get<double>(), 0);
  EXPECT_GT(j["tpot_ms"]["p99"].get<double>(), 0);
  EXPECT_GE(j["tpot_ms"]["p99"].get<double>(), j["tpot_ms"]["p50"].get<double>());
}

TEST(BenchServe, ReportsErrorsOfAnUnreachableServer) {
  const ProcessResult r = run_flint({"bench", "serve", "--url", "http://127.0.0.1:1", "--num-requests", "1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--url"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace flint::testing
