#include "engine/serve_host.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <list>
#include <mutex>
#include <thread>

#include "engine/serve_session.h"

namespace hearth::engine {
namespace {

// The socket's clients: one thread each, ended by the host's stop flag.
class SocketClients {
 public:
  SocketClients(Server& server, std::string model, const std::atomic<bool>& stop)
      : server_(server), model_(std::move(model)), stop_(stop) {}

  void add(int fd) {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string name = "socket" + std::to_string(++count_);
    threads_.emplace_back([this, fd, name] {
      ServeSession session(server_, fd, fd, model_, name);
      session.run(/*wait_at_end=*/false, &stop_);
      ::close(fd);
    });
  }

  // Waits for the clients' threads (the stop flag ends their sessions).
  void join_all() {
    for (;;) {
      std::thread t;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (threads_.empty()) return;
        t = std::move(threads_.front());
        threads_.pop_front();
      }
      t.join();
    }
  }

 private:
  Server& server_;
  std::string model_;
  const std::atomic<bool>& stop_;
  std::mutex mu_;
  std::list<std::thread> threads_;
  int count_ = 0;
};

}  // namespace

void run_serve_host(Server& server, const ServeHostOptions& options) {
  std::atomic<bool> stdin_done{!options.use_stdin}, stop{false};
  std::thread stdin_thread;
  if (options.use_stdin) {
    stdin_thread = std::thread([&] {
      ServeSession session(server, STDIN_FILENO, STDOUT_FILENO, options.model, "stdin");
      session.run(/*wait_at_end=*/true, &stop);
      stdin_done = true;
    });
  }
  SocketClients clients(server, options.model, stop);
  std::thread accept_thread;
  if (options.listener) {
    accept_thread = std::thread([&] {
      for (int fd; (fd = options.listener->accept_client()) >= 0;) clients.add(fd);
    });
  }
  // Without a socket the server ends with its input; with one it serves until stopped.
  auto should_stop = [&] {
    if (options.stop_requested && options.stop_requested()) return true;
    return options.listener == nullptr && stdin_done.load();
  };
  while (!should_stop()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop = true;  // every session cancels its open requests and ends within a poll interval
  if (options.listener) {
    options.listener->stop();
    accept_thread.join();
    clients.join_all();
  }
  if (stdin_thread.joinable()) stdin_thread.join();
}

}  // namespace hearth::engine
