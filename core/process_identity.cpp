#include "core/process_identity.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>
#include <string>

namespace hearth {
namespace {

// The start time of `pid`, or -1 when it cannot be read (no such process) or the process has
// exited and waits only to be reaped (a zombie).
int64_t start_ticks_of(int64_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  // The command name (field 2) is in parentheses and may hold spaces: count from after it.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 3 && (field == "Z" || field == "X")) return -1;
    if (i == 22) return std::stoll(field);
  }
  return -1;
}

}  // namespace

ProcessIdentity ProcessIdentity::current() {
  const int64_t pid = ::getpid();
  return {pid, start_ticks_of(pid)};
}

bool ProcessIdentity::alive() const {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) return false;
  const int64_t ticks = start_ticks_of(pid);
  return ticks >= 0 && ticks == start_ticks;
}

}  // namespace hearth
