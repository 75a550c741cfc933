// The no-network sandbox, entered in a forked child so the test process keeps its network:
// inside, socket() and connect() fail with EACCES while files still work.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

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

// A local server's sandbox: accept() keeps working on the one listening Unix socket it opened
// before entering, and on nothing else; new sockets of every family stay refused.
namespace {

enum ServerChildResult { kServerOk = 0, kSetupFailed = 20, kUnixAcceptFailed = 21, kInetAccepted = 22,
                         kInetCreated = 23, kUnixCreated = 24, kConnectionDead = 25, kWrongFdAccepted = 26 };

int server_child_body(const std::string& path) {
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listener, 4) != 0)
    return kSetupFailed;
  // A network listener that existed before (loopback only): accepting on it must be refused.
  const int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (tcp < 0 || ::bind(tcp, reinterpret_cast<sockaddr*>(&in), sizeof in) != 0 || ::listen(tcp, 1) != 0) return kSetupFailed;
  // A client already waiting in the backlog.
  const int client = ::socket(AF_UNIX, SOCK_STREAM, 0);
  if (client < 0 || ::connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return kSetupFailed;
  try {
    hearth::privacy::enter_no_network_sandbox(listener);
  } catch (...) {
    return kEnterFailed;
  }
  if (::socket(AF_INET, SOCK_STREAM, 0) >= 0 || errno != EACCES) return kInetCreated;
  if (::socket(AF_UNIX, SOCK_STREAM, 0) >= 0) return kUnixCreated;
  if (::accept4(tcp, nullptr, nullptr, 0) >= 0 || errno != EACCES) return kInetAccepted;
  if (::accept(client, nullptr, nullptr) >= 0 || errno != EACCES) return kWrongFdAccepted;
  const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (conn < 0) return kUnixAcceptFailed;
  char c = 'x';
  if (::write(client, &c, 1) != 1 || ::read(conn, &c, 1) != 1 || c != 'x') return kConnectionDead;
  return kServerOk;
}

}  // namespace

TEST(Sandbox, UnixSocketServerAcceptsOnlyOnItsListeningSocket) {
  const std::string path = "/tmp/hearth_sandbox_" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(server_child_body(path));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ::unlink(path.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "child died with signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), kServerOk);
}

TEST(Sandbox, AcceptExceptionIsOnlyForAListeningUnixSocket) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // Refused before any filter is installed, so this process keeps its network.
  EXPECT_THROW(hearth::privacy::enter_no_network_sandbox(fds[0]), std::exception);
  const int tcp = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(tcp, 0);
  EXPECT_THROW(hearth::privacy::enter_no_network_sandbox(tcp), std::exception);
  EXPECT_FALSE(hearth::privacy::in_no_network_sandbox());
  ::close(tcp);
  ::close(fds[0]);
  ::close(fds[1]);
}
