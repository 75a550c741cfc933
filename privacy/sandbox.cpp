#include "privacy/sandbox.h"

#include <seccomp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace hearth::privacy {

namespace {

std::atomic<bool> g_sandboxed{false};

struct FilterFree {
  void operator()(void* ctx) const { seccomp_release(static_cast<scmp_filter_ctx>(ctx)); }
};

void check(int rc, const char* what) {
  if (rc < 0) fail(ErrorCode::kInternal, std::string("seccomp: cannot ") + what + ": " + std::strerror(-rc));
}

// allowed_accept_fd < 0: accept is refused on every descriptor.
void install_filter(int allowed_accept_fd) {
  std::unique_ptr<void, FilterFree> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) fail(ErrorCode::kInternal, "seccomp: cannot create a filter");
  auto* f = static_cast<scmp_filter_ctx>(ctx.get());
  // The filter must cover threads that already exist (OpenMP and LibTorch pools).
  check(seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1), "enable thread sync");
  check(seccomp_attr_set(f, SCMP_FLTATR_CTL_NNP, 1), "set no_new_privs");
  const int denied[] = {SCMP_SYS(socket), SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen)};
  for (int sys : denied) check(seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), sys, 0), "add a socket rule");
  for (int sys : {SCMP_SYS(accept), SCMP_SYS(accept4)}) {
    if (allowed_accept_fd < 0) {
      check(seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), sys, 0), "add a socket rule");
    } else {
      // The descriptor is compared as the kernel passes it (an int in a 64-bit register).
      check(seccomp_rule_add(f, SCMP_ACT_ERRNO(EACCES), sys, 1, SCMP_A0(SCMP_CMP_NE, scmp_datum_t(allowed_accept_fd))),
            "add an accept rule");
    }
  }
  // io_uring can open sockets without passing through socket(2).
  check(seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(io_uring_setup), 0), "add the io_uring rule");
  check(seccomp_load(f), "load the filter");
  g_sandboxed = true;
}

}  // namespace

void enter_no_network_sandbox() { install_filter(-1); }

void enter_no_network_sandbox(int listening_unix_socket) {
  int domain = 0, listening = 0;
  socklen_t len = sizeof domain;
  const bool unix_socket = ::getsockopt(listening_unix_socket, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == AF_UNIX;
  len = sizeof listening;
  const bool accepts = ::getsockopt(listening_unix_socket, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
  require(listening_unix_socket >= 0 && unix_socket && accepts, ErrorCode::kInvalidArgument,
          "the sandbox may keep accept() only for a listening Unix-domain socket; descriptor " +
              std::to_string(listening_unix_socket) + " is not one");
  install_filter(listening_unix_socket);
}

bool in_no_network_sandbox() { return g_sandboxed; }

bool socket_creation_blocked() {
  bool blocked = true;
  for (int family : {AF_INET, AF_INET6, AF_UNIX}) {
    const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) ::close(fd);
    blocked = blocked && fd < 0 && errno == EACCES;
  }
  return blocked;
}

}  // namespace hearth::privacy
