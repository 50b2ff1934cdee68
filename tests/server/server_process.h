// tests/server/server_process.h — runs the real `flint serve` on a free
// loopback port and talks to it over real HTTP.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace flint::testing {

// `flint serve --model dummy:tiny --port 0 <args>`; the constructor returns
// once the server listens (or fails the test). The destructor always stops it:
// SIGTERM, then SIGKILL if it has not exited within 20 s.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& args = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  bool ready() const { return port_ > 0; }
  // Sends SIGTERM and waits; returns the exit code (128 + signal if killed).
  int stop(double timeout_seconds = 20);
  void signal(int sig);
  int wait(double timeout_seconds);  // -1 on timeout
  std::string log() const;           // stdout + stderr so far

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  int out_fd_ = -1;
  std::thread reader_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string log_;
  bool eof_ = false;
};

struct HttpReply {
  int status = 0;  // 0: no response (connection failed)
  std::string body;
  std::string content_type;
  std::string error;            // why there is no response
  nlohmann::json json() const;  // parsed body; fails the test if not JSON
};

HttpReply http_get(int port, const std::string& path, const std::map<std::string, std::string>& headers = {});
HttpReply http_post(int port, const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers = {});

// A streamed POST: the data of each server-sent event, in order (the "[DONE]"
// marker included). `on_event` may return false to hang up mid-stream.
struct StreamReply {
  int status = 0;
  std::vector<std::string> events;
  bool hung_up = false;
};
StreamReply http_post_stream(int port, const std::string& path, const std::string& body,
                             const std::function<bool(const std::string&)>& on_event = {});

// Prometheus text -> value of one sample line ("name{labels}"), or -1.
double metric_value(const std::string& metrics, const std::string& sample);

}  // namespace flint::testing
