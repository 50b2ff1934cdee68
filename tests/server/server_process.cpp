#include "server_process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "support/process_runner.h"

namespace flint::testing {

using namespace std::chrono_literals;

ServerProcess::ServerProcess(const std::vector<std::string>& args) {
  std::vector<std::string> serve = {"serve", "--model", "dummy:tiny", "--port", "0"};
  serve.insert(serve.end(), args.begin(), args.end());
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return;
  }
  out_fd_ = fds[0];
  pid_ = spawn_process(flint_binary(), serve, fds[1], fds[1]);  // one log, in the order it was written
  close(fds[1]);
  reader_ = std::thread([this] {
    char buf[4096];
    while (true) {
      const ssize_t n = read(out_fd_, buf, sizeof buf);
      std::lock_guard lock(mutex_);
      if (n <= 0) {
        eof_ = true;
        changed_.notify_all();
        return;
      }
      log_.append(buf, static_cast<size_t>(n));
      changed_.notify_all();
    }
  });
  // The server prints "listening on http://HOST:PORT" once it accepts requests.
  auto listening_port = [&]() -> int {
    const size_t at = log_.find("listening on http://");
    if (at == std::string::npos) return 0;
    const size_t eol = log_.find('\n', at);
    if (eol == std::string::npos) return 0;
    const size_t colon = log_.rfind(':', eol);
    return colon > at ? std::atoi(log_.c_str() + colon + 1) : 0;
  };
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, 60s, [&] { return eof_ || listening_port() > 0; });
  port_ = listening_port();
  if (port_ <= 0) ADD_FAILURE() << "flint serve did not start; its output:\n" << log_;
}

ServerProcess::~ServerProcess() {
  // Every test also checks that the server shuts down cleanly (exit 0: no
  // crash, no sanitizer report).
  if (pid_ > 0 && exit_code_ < 0 && stop() != 0) ADD_FAILURE() << "flint serve exited with " << exit_code_;
  if (exit_code_ > 0) ADD_FAILURE() << "flint serve's output:\n" << log();
  if (reader_.joinable()) reader_.join();
  if (out_fd_ >= 0) close(out_fd_);
}

void ServerProcess::signal(int sig) {
  if (pid_ > 0 && exit_code_ < 0) kill(pid_, sig);
}

int ServerProcess::wait(double timeout_seconds) {
  if (exit_code_ < 0) exit_code_ = wait_process(pid_, timeout_seconds);
  return exit_code_;
}

int ServerProcess::stop(double timeout_seconds) {
  if (pid_ <= 0) return -1;
  signal(SIGTERM);
  int code = wait(timeout_seconds);
  if (code < 0) {
    ADD_FAILURE() << "flint serve did not exit within " << timeout_seconds << " s of SIGTERM; killing it";
    kill(pid_, SIGKILL);
    code = wait(10);
  }
  return code;
}

std::string ServerProcess::log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

nlohmann::json HttpReply::json() const {
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << body.substr(0, 500);
    return nullptr;
  }
}

namespace {

std::unique_ptr<httplib::Client> client(int port) {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_connection_timeout(5);
  c->set_read_timeout(30);
  c->set_write_timeout(30);
  return c;
}

httplib::Headers to_headers(const std::map<std::string, std::string>& h) {
  httplib::Headers out;
  for (const auto& [k, v] : h) out.emplace(k, v);
  return out;
}

HttpReply reply_of(const httplib::Result& r) {
  HttpReply out;
  if (!r) {
    out.error = httplib::to_string(r.error());
    return out;
  }
  out.status = r->status;
  out.body = r->body;
  out.content_type = r->get_header_value("Content-Type");
  return out;
}

}  // namespace

HttpReply http_get(int port, const std::string& path, const std::map<std::string, std::string>& headers) {
  return reply_of(client(port)->Get(path.c_str(), to_headers(headers)));
}

HttpReply http_post(int port, const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers) {
  return reply_of(client(port)->Post(path.c_str(), to_headers(headers), body, "application/json"));
}

StreamReply http_post_stream(int port, const std::string& path, const std::string& body,
                             const std::function<bool(const std::string&)>& on_event) {
  StreamReply out;
  std::string buffer;
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.headers = {{"Content-Type", "application/json"}, {"Accept", "text/event-stream"}};
  req.body = body;
  req.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
    buffer.append(data, len);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      if (event.rfind("data: ", 0) == 0) event.erase(0, 6);
      out.events.push_back(event);
      if (on_event && !on_event(event)) {
        out.hung_up = true;
        return false;
      }
    }
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  auto c = client(port);
  c->send(req, res, error);
  out.status = res.status > 0 ? res.status : 0;
  if (!out.hung_up && out.status == 0) ADD_FAILURE() << "stream request failed: " << httplib::to_string(error);
  if (out.status != 200 && out.events.empty()) out.events.push_back(res.body);
  return out;
}

double metric_value(const std::string& metrics, const std::string& sample) {
  size_t pos = 0;
  while ((pos = metrics.find(sample + " ", pos)) != std::string::npos) {
    if (pos == 0 || metrics[pos - 1] == '\n') return std::stod(metrics.substr(pos + sample.size() + 1));
    pos += sample.size();
  }
  return -1;
}

}  // namespace flint::testing
