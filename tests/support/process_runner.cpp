#include "support/process_runner.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <system_error>
#include <thread>

extern char** environ;

namespace flint::testing {

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

int exit_code_of(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

[[noreturn]] void throw_errno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

// Reads each open descriptor of `fds` into its string until all reach end of
// file (closing them) or `deadline` passes; false at the deadline.
bool read_to_eof(std::array<int, 2>& fds, const std::array<std::string*, 2>& into, Clock::time_point deadline) {
  while (fds[0] >= 0 || fds[1] >= 0) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    std::array<pollfd, 2> polled = {pollfd{fds[0], POLLIN, 0}, pollfd{fds[1], POLLIN, 0}};  // poll skips fd -1
    if (poll(polled.data(), polled.size(), static_cast<int>(std::min<long long>(left, INT_MAX))) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll");
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (polled[i].revents == 0) continue;
      char buf[4096];
      const ssize_t n = read(fds[i], buf, sizeof buf);
      if (n > 0) {
        into[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i]);
        fds[i] = -1;
      }
    }
  }
  return true;
}

}  // namespace

pid_t spawn_process(const std::filesystem::path& binary, const std::vector<std::string>& args, int stdout_fd,
                    int stderr_fd) {
  // Everything the child needs is made here: between fork and exec a child of
  // a threaded process may only call async-signal-safe functions (no malloc).
  std::vector<std::string> argv_s = {binary.string()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; *e != nullptr; ++e) env_s.emplace_back(*e);
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) env_s.emplace_back("OMP_WAIT_POLICY=passive");
  std::vector<char*> argv, envp;
  for (std::string& a : argv_s) argv.push_back(a.data());
  for (std::string& e : env_s) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) throw_errno("open /dev/null");
  const pid_t parent = getpid();
  const std::string exec_failed = "cannot execute " + argv_s[0] + "\n";

  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);  // the test died before prctl took effect
    dup2(null_fd, 0);
    dup2(stdout_fd, 1);
    dup2(stderr_fd, 2);
    if (stdout_fd > 2) close(stdout_fd);
    if (stderr_fd > 2 && stderr_fd != stdout_fd) close(stderr_fd);
    execve(argv[0], argv.data(), envp.data());
    (void)!write(2, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  const int fork_errno = errno;
  close(null_fd);
  if (pid < 0) {
    errno = fork_errno;
    throw_errno("fork");
  }
  return pid;
}

int wait_process(pid_t pid, double timeout_seconds) {
  const Clock::time_point deadline = deadline_after(timeout_seconds);
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return exit_code_of(status);
    if (r < 0 && errno != EINTR) return -1;  // not our child (or already reaped)
    if (Clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

ProcessResult run_process(const std::filesystem::path& binary, const std::vector<std::string>& args,
                          double timeout_seconds) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe2");
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    errno = e;
    throw_errno("pipe2");
  }
  std::array<int, 2> fds = {out_pipe[0], err_pipe[0]};
  pid_t pid = -1;
  try {
    pid = spawn_process(binary, args, out_pipe[1], err_pipe[1]);
  } catch (...) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) close(fd);
    throw;
  }
  close(out_pipe[1]);
  close(err_pipe[1]);

  ProcessResult result;
  const Clock::time_point deadline = deadline_after(timeout_seconds);
  const std::array<std::string*, 2> into = {&result.out, &result.err};
  if (read_to_eof(fds, into, deadline)) {
    // Both streams closed; the child normally exits with them.
    result.exit_code = wait_process(pid, std::chrono::duration<double>(deadline - Clock::now()).count());
  }
  if (result.exit_code < 0) {
    result.timed_out = true;
    kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    result.exit_code = exit_code_of(status);
    // What it wrote before the kill; a grandchild holding a pipe open is not waited for.
    read_to_eof(fds, into, deadline_after(1));
  }
  for (int fd : fds)
    if (fd >= 0) close(fd);
  return result;
}

std::filesystem::path flint_binary() { return FLINT_CLI_PATH; }

ProcessResult run_flint(const std::vector<std::string>& args, double timeout_seconds) {
  ProcessResult r = run_process(flint_binary(), args, timeout_seconds);
  if (r.timed_out) {
    std::string command = "flint";
    for (const std::string& a : args) command += " " + a;
    ADD_FAILURE() << command << " did not finish within " << timeout_seconds << " s; killed. stdout:\n"
                  << r.out << "\nstderr:\n"
                  << r.err;
  }
  return r;
}

}  // namespace flint::testing
