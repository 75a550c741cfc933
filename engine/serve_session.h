// One client of `hearth serve`: JSON-lines requests read from a file descriptor (stdin or an
// accepted Unix-socket connection), each dispatched to the Server, its replies written back as
// lines. A bad line gets one error reply and the session goes on reading.
#pragma once
#include <cstdint>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>

#include "engine/serve_protocol.h"
#include "engine/server.h"

namespace hearth::engine {

class ServeSession {
 public:
  // Reads from in_fd and writes to out_fd (not owned). `model` names the base in OpenAI replies;
  // `client` names this session in ids the server assigns ("stdin-3", "socket2-1").
  ServeSession(Server& server, int in_fd, int out_fd, std::string model, std::string client);
  ~ServeSession();

  // Reads lines until end of input, a read error or `stop` (checked a few times a second). Then,
  // with wait_at_end and no stop, waits until this session's requests have ended; otherwise
  // cancels them first (the client went away, or the server is stopping).
  void run(bool wait_at_end, const std::atomic<bool>* stop = nullptr);

  // Lines longer than this get an error reply and are skipped.
  static constexpr size_t kMaxLineBytes = 4 << 20;

 private:
  void handle_line(const std::string& line);
  void generate(ServeCommand command);
  void write(const Json& reply);
  void request_ended(const std::string& id);

  Server& server_;
  int in_fd_, out_fd_;
  std::string model_, client_;
  int64_t counter_ = 0;
  std::mutex write_mu_;
  std::mutex open_mu_;
  std::condition_variable open_cv_;
  std::map<std::string, uint64_t> open_;  // client id -> server id
};

}  // namespace hearth::engine
