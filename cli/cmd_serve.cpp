// `hearth serve`: a long-running local server over one base model and many users' adapters.
// JSON-lines requests on stdin/stdout and, with --socket, on an owner-only Unix domain socket;
// always inside the no-network sandbox. The protocol is in engine/serve_protocol.h.
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/engine_options.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/json.h"
#include "engine/serve_host.h"
#include "engine/server.h"
#include "engine/unix_socket_listener.h"
#include "privacy/sandbox.h"
#include "trainer/stop_signal.h"

namespace hearth::cli {
namespace {

struct ServeCommand {
  ModelOptions model;
  std::string key_file, socket;
  bool no_key = false, no_stdin = false;
  engine::ServerOptions server;

  void run() {
    require(!no_stdin || !socket.empty(), ErrorCode::kInvalidArgument,
            "--no-stdin needs --socket PATH: the server would have no way to be asked anything");
    const engine::BaseModelSpec spec = model.base_spec();  // names checked before anything is opened
    // The socket first: inside the sandbox no socket can be created, only accepted on.
    std::unique_ptr<engine::UnixSocketListener> listener;
    if (!socket.empty()) listener = std::make_unique<engine::UnixSocketListener>(socket);
    engine::Engine e(engine_options(key_file, /*with_key=*/!no_key, /*sandbox=*/false));
    e.load_base(spec);
    if (listener) {
      privacy::enter_no_network_sandbox(listener->fd());
    } else {
      privacy::enter_no_network_sandbox();
    }
    std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not end the server
    trainer::install_stop_signal_handlers();
    engine::Server server(e, this->server);
    server.start();
    const Json ready = {{"event", "ready"},
                        {"model", model.model},
                        {"socket", socket.empty() ? Json() : Json(socket)},
                        {"sandbox", privacy::in_no_network_sandbox()},
                        {"sockets_blocked", privacy::socket_creation_blocked()}};
    if (!no_stdin) {
      std::fputs((ready.dump() + "\n").c_str(), stdout);
      std::fflush(stdout);
    }
    spdlog::info("serving {}{}", model.model, socket.empty() ? " on stdin" : " on stdin and " + socket);
    engine::ServeHostOptions ho;
    ho.use_stdin = !no_stdin;
    ho.listener = listener.get();
    ho.model = model.model;
    ho.stop_requested = [] { return trainer::stop_requested(); };
    engine::run_serve_host(server, ho);
    server.stop();
  }
};

CommandRegistration serve_command("serve", [](CLI::App& app) {
  auto cmd = std::make_shared<ServeCommand>();
  CLI::App* sub = app.add_subcommand("serve", "serve many users' adapters over one base: JSON lines on stdin and a Unix socket");
  cmd->model.add_to(*sub, /*with_adapter=*/false);
  sub->add_option("--key-file", cmd->key_file, "unlock the vault with this key file (mode 600) instead of a passphrase");
  sub->add_flag("--no-key", cmd->no_key, "open the home without its key: the bare base and test-time adapters only");
  sub->add_option("--socket", cmd->socket, "also listen on this Unix socket path (created with mode 600)");
  sub->add_flag("--no-stdin", cmd->no_stdin, "with --socket: do not read requests from stdin");
  auto& s = cmd->server;
  sub->add_option("--max-batch", s.max_batch, "requests that step together")->capture_default_str()->check(CLI::Range(1, 256));
  sub->add_option("--adapter-memory-mb", s.adapter_memory_mb, "memory for loaded adapters; the least recently used go beyond it")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  sub->add_option("--prefill-chunk", s.prefill_chunk, "prompt tokens a request adds per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  sub->callback([cmd] { cmd->run(); });
});

}  // namespace
}  // namespace hearth::cli
