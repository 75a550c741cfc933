#include "engine/unix_socket_listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hearth::engine {
namespace {

sockaddr_un address_of(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string s = path.string();
  require(!s.empty() && s.size() < sizeof(addr.sun_path), ErrorCode::kInvalidArgument,
          "socket path \"" + s + "\" is longer than " + std::to_string(sizeof(addr.sun_path) - 1) +
              " bytes; choose a shorter --socket path");
  std::memcpy(addr.sun_path, s.data(), s.size());
  return addr;
}

// True when a server answers at `addr` (then the path is not ours to replace).
bool someone_listens(const sockaddr_un& addr) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}

}  // namespace

UnixSocketListener::UnixSocketListener(std::filesystem::path path) : path_(std::move(path)) {
  const sockaddr_un addr = address_of(path_);
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    require(S_ISSOCK(st.st_mode), ErrorCode::kInvalidArgument,
            "\"" + path_.string() + "\" exists and is not a socket; choose another --socket path");
    require(!someone_listens(addr), ErrorCode::kInvalidArgument,
            "a server is already listening at \"" + path_.string() + "\"; stop it or choose another --socket path");
    ::unlink(path_.c_str());  // left by a server that died
  }
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  require(fd_ >= 0, ErrorCode::kIo, std::string("cannot create a Unix socket: ") + std::strerror(errno));
  // Owner-only from the moment the file exists: the umask covers bind, chmod makes it explicit.
  const mode_t old_mask = ::umask(0177);
  const int bound = ::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(old_mask);
  if (bound != 0 || ::chmod(path_.c_str(), 0600) != 0 || ::listen(fd_, 16) != 0) {
    const int err = bound != 0 ? bind_errno : errno;
    ::close(fd_);
    if (bound == 0) ::unlink(path_.c_str());
    fail(ErrorCode::kIo, "cannot listen at \"" + path_.string() + "\": " + std::strerror(err) +
                             " (is its folder writable and on a local file system?)");
  }
}

UnixSocketListener::~UnixSocketListener() {
  stop();
  if (fd_ >= 0) ::close(fd_);
  ::unlink(path_.c_str());
}

int UnixSocketListener::accept_client() {
  while (!stopped_) {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return -1;  // stop() shut the socket down
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == ::getuid()) return c;
    ::close(c);  // another user's process (the file mode should already have kept it out)
  }
  return -1;
}

void UnixSocketListener::stop() {
  if (stopped_.exchange(true)) return;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // wakes a blocked accept
}

}  // namespace hearth::engine
