// server/metrics.h — what GET /metrics reports, in Prometheus' text format.
// Internal to server/.
//
// Contract: thread-safe; recording is a short critical section (no
// allocation once an endpoint/status pair has been seen). render() writes the
// server's counters and histograms plus the engine's gauges and counters from
// an EngineStats snapshot. Names are listed in docs/SERVING.md.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "runtime/engine.h"

namespace flint::server {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // "# TYPE name histogram" and its _bucket/_sum/_count lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void request_done(const std::string& endpoint, int status);
  void first_token(double seconds);       // time to first token of a request
  void per_output_token(double seconds);  // mean time between tokens of one choice
  void request_latency(double seconds);   // arrival to last byte
  std::string render(const EngineStats& engine) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  Histogram ttft_, tpot_, latency_;
};

}  // namespace flint::server
