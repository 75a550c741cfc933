// The long-running part of `hearth serve`: the stdin/stdout session and every client of the Unix
// socket, each on a thread of its own, in front of one Server, until the input ends (when there is
// no socket) or a stop is asked for (SIGINT / SIGTERM, or stop_requested()).
#pragma once
#include <functional>
#include <string>

#include "engine/server.h"
#include "engine/unix_socket_listener.h"

namespace hearth::engine {

struct ServeHostOptions {
  bool use_stdin = true;                  // read requests from stdin, reply on stdout
  UnixSocketListener* listener = nullptr; // also serve the socket's clients (not owned)
  std::string model;                      // the base's name in OpenAI-style replies
  std::function<bool()> stop_requested;   // polled a few times a second
};

// Returns once every session has ended. Requests of a client that disconnects are cancelled;
// requests read from stdin are answered before stdin's session ends.
void run_serve_host(Server& server, const ServeHostOptions& options);

}  // namespace hearth::engine
