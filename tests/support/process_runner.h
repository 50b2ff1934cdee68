// tests/support/process_runner.h — runs a program as a child process, as a user
// would from a shell, and collects what it prints.
//
// No shell is involved: the arguments reach the program exactly as given. The
// child reads an empty stdin (/dev/null), waits passively in OpenMP (it shares
// the cores with the test) and gets SIGTERM if the test process dies first.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace flint::testing {

struct ProcessResult {
  int exit_code = -1;      // 128 + the signal's number when a signal ended it
  std::string out;         // all it wrote to stdout
  std::string err;         // all it wrote to stderr
  bool timed_out = false;  // still running at the deadline: killed with SIGKILL (exit_code 137)
};

// Runs `binary args...` to completion, reading stdout and stderr apart (both
// at once, so neither pipe can fill and block the child). A child still
// running after `timeout_seconds` is killed with SIGKILL and reaped, and what
// it printed until then is kept. It fails no test itself: callers judge
// `timed_out`.
ProcessResult run_process(const std::filesystem::path& binary, const std::vector<std::string>& args,
                          double timeout_seconds = 60);

// The flint binary of this build.
std::filesystem::path flint_binary();

// run_process(flint_binary(), args, timeout_seconds), failing the test if
// flint has to be killed.
ProcessResult run_flint(const std::vector<std::string>& args, double timeout_seconds = 60);

// The two halves of run_process, for a child that outlives one call
// (ServerProcess). spawn_process starts `binary args...` with stdout and stderr
// on the given descriptors (the same one merges them) and returns its pid;
// wait_process waits up to `timeout_seconds` for it to exit and returns its
// exit code as above, or -1 if it is still running.
pid_t spawn_process(const std::filesystem::path& binary, const std::vector<std::string>& args, int stdout_fd,
                    int stderr_fd);
int wait_process(pid_t pid, double timeout_seconds);

}  // namespace flint::testing
