// The no-network sandbox, entered in a forked child so the test process keeps its network:
// inside, socket() and connect() fail with EACCES while files still work.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "privacy/sandbox.h"

namespace {

// Exit codes of the child, so the parent can say what went wrong.
enum ChildResult { kOk = 0, kEnterFailed = 10, kInetOpened = 11, kInet6Opened = 12, kUnixOpened = 13,
                   kWrongErrno = 14, kFileFailed = 15, kNotFlagged = 16, kProbeMissed = 17 };

int child_body() {
  try {
    hearth::privacy::enter_no_network_sandbox();
  } catch (...) {
    return kEnterFailed;
  }
  if (!hearth::privacy::in_no_network_sandbox()) return kNotFlagged;
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s >= 0) return kInetOpened;
  if (errno != EACCES) return kWrongErrno;
  if (::socket(AF_INET6, SOCK_DGRAM, 0) >= 0) return kInet6Opened;
  if (::socket(AF_UNIX, SOCK_STREAM, 0) >= 0) return kUnixOpened;
  if (!hearth::privacy::socket_creation_blocked()) return kProbeMissed;
  std::FILE* f = std::tmpfile();  // ordinary file work continues
  if (f == nullptr) return kFileFailed;
  std::fclose(f);
  return kOk;
}

}  // namespace

TEST(Sandbox, SocketFailsInsideAForkedChild) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(child_body());
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "child died with signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), kOk);
  // The parent is untouched.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(s, 0);
  if (s >= 0) ::close(s);
  EXPECT_FALSE(hearth::privacy::in_no_network_sandbox());
  EXPECT_FALSE(hearth::privacy::socket_creation_blocked());  // the probe sees open sockets too
}
