// Runs the real `hearth` binary in tests and captures its exit code, stdout and stderr.
#pragma once
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_helpers.h"

namespace hearth::testing {

struct CliResult {
  int exit_code = -1;  // -1 if killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

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

// A `hearth` process started in the background, for tests that signal it.
class BackgroundHearth {
 public:
  BackgroundHearth(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    static int counter = 0;
    auto dir = std::filesystem::temp_directory_path() / ("hearth_cli_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    out_ = dir / ("bg_out" + std::to_string(counter));
    err_ = dir / ("bg_err" + std::to_string(counter++));
    std::vector<std::string> argv_s{HEARTH_CLI_PATH};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) env_s.emplace_back(*e);
    env_s.insert(env_s.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~BackgroundHearth() {
    if (pid_ > 0 && !finished_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
  }
  BackgroundHearth(const BackgroundHearth&) = delete;
  BackgroundHearth& operator=(const BackgroundHearth&) = delete;

  pid_t pid() const { return pid_; }
  // Whether it is still running (reaps it when it has ended).
  bool running() {
    if (finished_ || pid_ <= 0) return false;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) record(status);
    return !finished_;
  }
  // Sends SIGKILL if it still runs; true when the signal reached a running process.
  bool kill_now() {
    if (!running()) return false;
    ::kill(pid_, SIGKILL);
    wait();
    return result_.signal == SIGKILL;
  }
  // Waits for the end; the exit code, signal and output.
  const CliResult& wait() {
    if (!finished_ && pid_ > 0) {
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      record(status);
    }
    return result_;
  }

 private:
  void record(int status) {
    finished_ = true;
    if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) result_.signal = WTERMSIG(status);
    result_.out = slurp(out_);
    result_.err = slurp(err_);
  }

  pid_t pid_ = -1;
  bool finished_ = false;
  CliResult result_;
  std::filesystem::path out_, err_;
};

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

}  // namespace hearth::testing
