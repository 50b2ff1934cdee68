#include "server/metrics.h"

#include <fmt/format.h>

#include <algorithm>

namespace flint::server {

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto bucket = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{le=\"+Inf\"}} {}\n{}_sum {}\n{}_count {}\n", name, count_, name, sum_, name, count_);
}

ServerMetrics::ServerMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
             80.0}),
      tpot_({0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
             0.075, 0.1,    0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1.0,  2.5}),
      latency_({0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                240.0, 480.0}) {}

void ServerMetrics::request_done(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{endpoint, status}];
}

void ServerMetrics::first_token(double seconds) {
  std::lock_guard lock(mutex_);
  ttft_.observe(seconds);
}

void ServerMetrics::per_output_token(double seconds) {
  std::lock_guard lock(mutex_);
  tpot_.observe(seconds);
}

void ServerMetrics::request_latency(double seconds) {
  std::lock_guard lock(mutex_);
  latency_.observe(seconds);
}

std::string ServerMetrics::render(const EngineStats& e) const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, value);
  };
  {
    std::lock_guard lock(mutex_);
    out +=
        "# HELP flint_requests_total HTTP API requests by endpoint and status code.\n"
        "# TYPE flint_requests_total counter\n";
    for (const auto& [key, count] : requests_)
      out += fmt::format("flint_requests_total{{endpoint=\"{}\",status=\"{}\"}} {}\n", key.first, key.second, count);
    ttft_.render(out, "flint_time_to_first_token_seconds", "Time from request arrival to its first token.");
    tpot_.render(out, "flint_time_per_output_token_seconds",
                 "Mean time between the output tokens of one choice (after the first).");
    latency_.render(out, "flint_e2e_request_latency_seconds", "Time from request arrival to its last byte.");
  }
  metric("flint_prompt_tokens_total", "counter", "Prompt tokens of accepted requests.", e.prompt_tokens);
  metric("flint_generation_tokens_total", "counter", "Generated tokens.", e.generated_tokens);
  metric("flint_computed_tokens_total", "counter", "Tokens run through the model (prefill, recompute, decode).",
         e.computed_tokens);
  metric("flint_engine_steps_total", "counter", "Engine steps (forward passes).", e.steps);
  metric("flint_preemptions_total", "counter", "Sequences preempted for KV blocks (recomputed later).", e.preemptions);
  out +=
      "# HELP flint_engine_requests_total Engine requests (one per choice) by outcome.\n"
      "# TYPE flint_engine_requests_total counter\n";
  out += fmt::format("flint_engine_requests_total{{outcome=\"finished\"}} {}\n", e.requests_finished);
  out += fmt::format("flint_engine_requests_total{{outcome=\"cancelled\"}} {}\n", e.requests_cancelled);
  out += fmt::format("flint_engine_requests_total{{outcome=\"failed\"}} {}\n", e.requests_failed);
  metric("flint_num_requests_running", "gauge", "Sequences holding KV blocks.", e.running);
  metric("flint_num_requests_waiting", "gauge", "Sequences accepted and waiting (queued or preempted).", e.waiting);
  metric("flint_kv_blocks_used", "gauge", "KV cache blocks in use.", e.kv_blocks_used);
  metric("flint_kv_blocks_total", "gauge", "KV cache blocks in the pool.", e.kv_blocks_total);
  metric("flint_kv_cache_usage_ratio", "gauge", "Fraction of KV cache blocks in use.",
         e.kv_blocks_total > 0 ? static_cast<double>(e.kv_blocks_used) / e.kv_blocks_total : 0.0);
  return out;
}

}  // namespace flint::server
