// flint bench serve: drives an OpenAI-compatible server (Flint, vLLM, ...) with
// streamed /v1/completions requests and reports throughput and latency.
//
// Each request's prompt is exactly --input-len token ids (random ids in
// [3, 259), valid in every Llama vocabulary), sent as a token-id prompt so
// that no tokenizer can change its length, with max_tokens = --output-len,
// ignore_eos = true and temperature 0, so that every output is --output-len
// tokens long. Token counts come from the server's usage (stream_options.
// include_usage); a request whose counts differ is reported.
#include "tools/flint/cmd_bench_serve.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/error.h"

namespace flint::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct BenchServeOptions {
  std::string url = "http://127.0.0.1:8000";
  std::string model;  // empty: the first model of GET /v1/models
  std::string api_key;
  int32_t concurrency = 1;
  int32_t num_requests = 16;
  int32_t input_len = 128;
  int32_t output_len = 128;
  uint64_t seed = 0;
  double timeout = 600;
  std::string json_path;
};

struct Outcome {
  bool ok = false;
  std::string error;
  double ttft = 0, latency = 0;
  int64_t prompt_tokens = 0, output_tokens = 0;
  std::vector<double> itl;  // gaps between token chunks after the first
};

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// numpy's default (linear) percentile.
double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = p / 100.0 * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

struct Target {
  std::string origin;  // scheme://host:port
  std::string prefix;  // path before /v1/...
};

Target parse_url(const std::string& url) {
  const size_t scheme = url.rfind("http://", 0) == 0 ? 7 : url.rfind("https://", 0) == 0 ? 8 : 0;
  const size_t slash = scheme == 0 ? std::string::npos : url.find('/', scheme);
  const std::string origin = url.substr(0, slash);
  FLINT_CHECK(scheme > 0 && origin.size() > scheme, ErrorContext{.field = "--url"},
              "expected http://HOST:PORT[/PATH], got '{}'", url);
  std::string prefix = slash == std::string::npos ? "" : url.substr(slash);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (prefix.size() >= 3 && prefix.compare(prefix.size() - 3, 3, "/v1") == 0) prefix.resize(prefix.size() - 3);
  return {origin, prefix};
}

std::unique_ptr<httplib::Client> make_client(const Target& t, const BenchServeOptions& o) {
  auto c = std::make_unique<httplib::Client>(t.origin);
  c->set_connection_timeout(10);
  const auto timeout = static_cast<time_t>(std::ceil(o.timeout));
  c->set_read_timeout(timeout);
  c->set_write_timeout(timeout);
  if (!o.api_key.empty()) c->set_bearer_token_auth(o.api_key);
  return c;
}

std::string first_model(const Target& t, const BenchServeOptions& o) {
  auto c = make_client(t, o);
  auto r = c->Get((t.prefix + "/v1/models").c_str());
  FLINT_CHECK(r, ErrorContext{.field = "--url"}, "cannot reach {}: {}", o.url, httplib::to_string(r.error()));
  FLINT_CHECK(r->status == 200, ErrorContext{.field = "--url"}, "GET /v1/models answered {}: {}", r->status,
              r->body.substr(0, 300));
  try {
    return json::parse(r->body).at("data").at(0).at("id").get<std::string>();
  } catch (const json::exception& e) {
    fail({.field = "--url"}, "GET /v1/models: unexpected answer ({}): {}", e.what(), r->body.substr(0, 300));
  }
}

Outcome run_one(httplib::Client& client, const Target& t, const std::string& body) {
  Outcome out;
  std::string buffer, error;
  bool first = true;
  Clock::time_point last_chunk;
  int64_t chunks = 0;
  const auto start = Clock::now();
  httplib::Request req;
  req.method = "POST";
  req.path = t.prefix + "/v1/completions";
  req.headers = {{"Content-Type", "application/json"}, {"Accept", "text/event-stream"}};
  req.body = body;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    buffer.append(data, len);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) != 0) continue;  // comments, other fields
      event.erase(0, 6);
      if (event == "[DONE]") continue;
      const auto now = Clock::now();
      json j;
      try {
        j = json::parse(event);
      } catch (const json::exception&) {
        error = "a stream event is not JSON: " + event.substr(0, 200);
        return false;
      }
      if (j.contains("error")) {
        error = j["error"].value("message", std::string("error event"));
        continue;
      }
      if (j.contains("usage") && j["usage"].is_object()) {
        out.prompt_tokens = j["usage"].value("prompt_tokens", int64_t{0});
        out.output_tokens = j["usage"].value("completion_tokens", int64_t{0});
      }
      if (!j.contains("choices") || j["choices"].empty()) continue;
      ++chunks;
      if (first) {
        out.ttft = seconds(now - start);
        first = false;
      } else {
        out.itl.push_back(seconds(now - last_chunk));
      }
      last_chunk = now;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent = client.send(req, res, err);
  out.latency = seconds(Clock::now() - start);
  if (!sent) {
    out.error = error.empty() ? "request failed: " + httplib::to_string(err) : error;
  } else if (res.status != 200) {
    out.error = fmt::format("HTTP {}: {}", res.status, (res.body.empty() ? buffer : res.body).substr(0, 300));
  } else if (!error.empty()) {
    out.error = error;
  } else if (first) {
    out.error = "the stream carried no tokens";
  } else {
    if (out.output_tokens == 0) out.output_tokens = chunks;  // a server without usage in streams
    out.ok = true;
  }
  return out;
}

void run_bench_serve(const BenchServeOptions& o) {
  FLINT_CHECK(o.concurrency >= 1, ErrorContext{.field = "--concurrency"}, "must be at least 1");
  FLINT_CHECK(o.num_requests >= 1, ErrorContext{.field = "--num-requests"}, "must be at least 1");
  FLINT_CHECK(o.input_len >= 1, ErrorContext{.field = "--input-len"}, "must be at least 1");
  FLINT_CHECK(o.output_len >= 1, ErrorContext{.field = "--output-len"}, "must be at least 1");
  const Target target = parse_url(o.url);
  const std::string model = o.model.empty() ? first_model(target, o) : o.model;

  std::mt19937_64 rng(o.seed);
  std::uniform_int_distribution<int32_t> token(3, 258);
  std::vector<std::string> bodies;
  for (int32_t i = 0; i < o.num_requests; ++i) {
    std::vector<int32_t> prompt(static_cast<size_t>(o.input_len));
    for (int32_t& t : prompt) t = token(rng);
    bodies.push_back(json{{"model", model},
                          {"prompt", prompt},
                          {"max_tokens", o.output_len},
                          {"temperature", 0},
                          {"ignore_eos", true},
                          {"stream", true},
                          {"stream_options", {{"include_usage", true}}}}
                         .dump());
  }

  fmt::print("bench serve: {} ({}), {} requests, concurrency {}, input {} tokens, output {} tokens\n", o.url, model,
             o.num_requests, o.concurrency, o.input_len, o.output_len);
  std::vector<Outcome> outcomes(static_cast<size_t>(o.num_requests));
  std::atomic<int32_t> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int32_t w = 0; w < std::min(o.concurrency, o.num_requests); ++w)
    workers.emplace_back([&] {
      auto client = make_client(target, o);
      for (int32_t i; (i = next++) < o.num_requests;)
        outcomes[static_cast<size_t>(i)] = run_one(*client, target, bodies[static_cast<size_t>(i)]);
    });
  for (std::thread& t : workers) t.join();
  const double duration = seconds(Clock::now() - start);

  std::vector<double> ttft, tpot, itl, latency;
  int64_t completed = 0, errors = 0, mismatched = 0, in_tokens = 0, out_tokens = 0;
  std::string first_error;
  for (const Outcome& r : outcomes) {
    if (!r.ok) {
      ++errors;
      if (first_error.empty()) first_error = r.error;
      continue;
    }
    ++completed;
    in_tokens += r.prompt_tokens;
    out_tokens += r.output_tokens;
    if ((r.prompt_tokens != 0 && r.prompt_tokens != o.input_len) || r.output_tokens != o.output_len) ++mismatched;
    ttft.push_back(r.ttft * 1e3);
    latency.push_back(r.latency * 1e3);
    if (r.output_tokens > 1) tpot.push_back((r.latency - r.ttft) * 1e3 / static_cast<double>(r.output_tokens - 1));
    for (double g : r.itl) itl.push_back(g * 1e3);
  }

  auto stats = [](const std::vector<double>& v) {
    return json{{"mean", mean(v)}, {"p50", percentile(v, 50)}, {"p90", percentile(v, 90)}, {"p99", percentile(v, 99)}};
  };
  const json report = {{"url", o.url},
                       {"model", model},
                       {"concurrency", o.concurrency},
                       {"num_requests", o.num_requests},
                       {"input_len", o.input_len},
                       {"output_len", o.output_len},
                       {"duration_s", duration},
                       {"completed", completed},
                       {"errors", errors},
                       {"first_error", first_error},
                       {"length_mismatches", mismatched},
                       {"input_tokens", in_tokens},
                       {"output_tokens", out_tokens},
                       {"request_throughput", static_cast<double>(completed) / duration},
                       {"output_tokens_per_s", static_cast<double>(out_tokens) / duration},
                       {"total_tokens_per_s", static_cast<double>(in_tokens + out_tokens) / duration},
                       {"ttft_ms", stats(ttft)},
                       {"tpot_ms", stats(tpot)},
                       {"itl_ms", stats(itl)},
                       {"e2e_latency_ms", stats(latency)}};

  fmt::print("duration {:.2f} s | completed {} | errors {}\n", duration, completed, errors);
  if (!first_error.empty()) fmt::print("first error: {}\n", first_error);
  if (mismatched > 0)
    fmt::print("warning: {} requests did not have {} prompt and {} output tokens\n", mismatched, o.input_len,
               o.output_len);
  fmt::print("request throughput {:.2f} req/s | output {:.1f} tok/s | total {:.1f} tok/s\n",
             report["request_throughput"].get<double>(), report["output_tokens_per_s"].get<double>(),
             report["total_tokens_per_s"].get<double>());
  for (const char* name : {"ttft_ms", "tpot_ms", "itl_ms", "e2e_latency_ms"}) {
    const json& s = report[name];
    fmt::print("{:<15} mean {:>9.2f}  p50 {:>9.2f}  p90 {:>9.2f}  p99 {:>9.2f}\n", name, s["mean"].get<double>(),
               s["p50"].get<double>(), s["p90"].get<double>(), s["p99"].get<double>());
  }
  if (!o.json_path.empty()) {
    std::ofstream out(o.json_path);
    out << report.dump(2) << "\n";
    FLINT_CHECK(out.good(), ErrorContext{.file = o.json_path}, "cannot write");
  }
  FLINT_CHECK(completed > 0, "every request failed; the first: {}", first_error);
}

}  // namespace

void add_bench_serve(CLI::App& bench) {
  auto o = std::make_shared<BenchServeOptions>();
  CLI::App* cmd = bench.add_subcommand("serve", "load-test an OpenAI-compatible server (streamed completions)");
  cmd->add_option("--url", o->url, "the server, http://HOST:PORT")->capture_default_str();
  cmd->add_option("--model", o->model, "model name to request (default: the server's first)");
  cmd->add_option("--api-key", o->api_key, "sent as 'Authorization: Bearer KEY'");
  cmd->add_option("--concurrency", o->concurrency, "requests in flight at once")->capture_default_str();
  cmd->add_option("--num-requests", o->num_requests, "requests in total")->capture_default_str();
  cmd->add_option("--input-len", o->input_len, "prompt tokens per request")->capture_default_str();
  cmd->add_option("--output-len", o->output_len, "output tokens per request")->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed of the random prompts")->capture_default_str();
  cmd->add_option("--timeout", o->timeout, "seconds one request may take")->capture_default_str();
  cmd->add_option("--json", o->json_path, "write the figures as JSON");
  cmd->callback([o] { run_bench_serve(*o); });
}

}  // namespace flint::cli
