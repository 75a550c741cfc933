// The local endpoint of `hearth serve`: a Unix domain stream socket that only its owner can
// reach (mode 0600, and each connecting process's uid checked), never a network listener. It is
// created before the no-network sandbox is entered; accepting on it stays allowed inside.
#pragma once
#include <atomic>
#include <filesystem>

namespace hearth::engine {

class UnixSocketListener {
 public:
  // Binds and listens at `path`. A stale socket file left by a server that died is replaced;
  // kInvalidArgument when something else is there, a server is already listening, or the path
  // is too long for a socket address.
  explicit UnixSocketListener(std::filesystem::path path);
  ~UnixSocketListener();  // closes the socket and removes its file
  UnixSocketListener(const UnixSocketListener&) = delete;
  UnixSocketListener& operator=(const UnixSocketListener&) = delete;

  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return path_; }

  // Waits for a client of this user and returns its connection (the caller closes it); -1 once
  // stop() was called. Connections from other users are closed at once.
  int accept_client();
  // Wakes accept_client() for good (callable from another thread).
  void stop();

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::atomic<bool> stopped_{false};
};

}  // namespace hearth::engine
