// The no-network sandbox: a seccomp filter under which the process can no longer create,
// connect or accept sockets of any family. It cannot be lifted once entered.
#pragma once

namespace hearth::privacy {

// Installs the filter on every thread of the process (TSYNC) with no_new_privs set.
// Afterwards socket(), connect(), bind(), listen(), accept(), accept4() and io_uring_setup()
// fail with EACCES (io_uring: EPERM); socketpair() stays allowed because a pair of connected
// local sockets cannot reach anything outside the process tree. System calls of other
// architectures (32-bit x86 int 0x80, x32) kill the process, so the filter cannot be bypassed.
// Throws kInternal when the kernel refuses the filter.
void enter_no_network_sandbox();

// The same filter, except that accept() and accept4() stay allowed on `listening_unix_socket`
// alone: a local server (hearth serve) keeps taking connections on the Unix socket it opened
// before, while every other socket call, and accept on any other descriptor, still fails.
// kInvalidArgument unless the descriptor is a listening AF_UNIX socket.
void enter_no_network_sandbox(int listening_unix_socket);

// True once enter_no_network_sandbox() succeeded in this process.
bool in_no_network_sandbox();

// Tries to create an IPv4, an IPv6 and a local (AF_UNIX) socket right now, closing any that
// opens; true when every attempt fails with EACCES. Sandboxed commands report it as
// "sockets_blocked", so a test of the real binary sees the filter at work (outside the
// sandbox they do not probe: Hearth opens no sockets).
bool socket_creation_blocked();

}  // namespace hearth::privacy
