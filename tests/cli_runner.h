// Runs the real `hearth` binary in tests and captures its exit code, stdout and stderr.
#pragma once
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "test_helpers.h"

namespace hearth::testing {

struct CliResult {
  int exit_code = -1;  // -1 if killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

// Runs `hearth args...` with extra environment assignments (e.g. "HEARTH_PASSPHRASE=x").
inline CliResult run_hearth(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  static int counter = 0;
  auto dir = std::filesystem::temp_directory_path() / ("hearth_cli_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto out = dir / ("out" + std::to_string(counter));
  const auto err = dir / ("err" + std::to_string(counter++));
  std::string cmd;
  for (const auto& e : env) cmd += e + " ";
  cmd += shell_quote(HEARTH_CLI_PATH);
  for (const auto& a : args) cmd += " " + shell_quote(a);
  cmd += " </dev/null >" + shell_quote(out.string()) + " 2>" + shell_quote(err.string());
  int status = std::system(cmd.c_str());
  CliResult r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// Starts `program args...` in the background with stdout and stderr to `log` (appended) and
// stdin from /dev/null; returns its pid, for tests that signal or kill it. Reap it with wait_for().
inline pid_t spawn_program(const char* program, const std::vector<std::string>& args, const std::filesystem::path& log,
                           const std::vector<std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  for (const std::string& e : env) ::putenv(const_cast<char*>(e.c_str()));
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  const int null_in = ::open("/dev/null", O_RDONLY);
  ::dup2(null_in, 0);
  std::vector<char*> argv{const_cast<char*>(program)};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(program, argv.data());
  ::_exit(127);
}

// spawn_program for the hearth binary.
inline pid_t spawn_hearth(const std::vector<std::string>& args, const std::filesystem::path& log,
                          const std::vector<std::string>& env = {}) {
  return spawn_program(HEARTH_CLI_PATH, args, log, env);
}

// Waits for a spawned process; its exit code, or -signal when a signal ended it.
inline int wait_for(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

// The number of non-empty lines in s.
inline int count_lines(const std::string& s) {
  int n = 0;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) n += !line.empty();
  return n;
}

// The number of lines in s that start with "error".
inline int count_error_lines(const std::string& s) {
  int n = 0;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) n += line.rfind("error", 0) == 0;
  return n;
}

// The JSON object a --json command prints as its last line (it nests objects: the line, not the
// last brace).
inline Json last_json_line(const std::string& out) {
  const std::string trimmed = out.substr(0, out.find_last_not_of('\n') + 1);
  return parse_json(trimmed.substr(trimmed.rfind('\n') + 1), "command output");
}

// The first `lines` non-empty lines of tinystories' valid_a.txt, written to `path`.
inline void write_text_slice(const std::filesystem::path& path, int lines) {
  std::ifstream in(asset_path("data/tinystories/valid_a.txt"));
  std::ofstream out(path);
  std::string line;
  for (int n = 0; n < lines && std::getline(in, line);)
    if (!line.empty()) out << line << "\n", ++n;
}

}  // namespace hearth::testing
