#include "engine/serve_session.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include "core/error.h"

namespace hearth::engine {

ServeSession::ServeSession(Server& server, int in_fd, int out_fd, std::string model, std::string client)
    : server_(server), in_fd_(in_fd), out_fd_(out_fd), model_(std::move(model)), client_(std::move(client)) {}

ServeSession::~ServeSession() {
  std::lock_guard<std::mutex> lock(open_mu_);
  for (const auto& [id, server_id] : open_) server_.cancel(server_id);
}

void ServeSession::run(bool wait_at_end, const std::atomic<bool>* stop) {
  std::string buffer, line;
  bool overlong = false;
  char chunk[65536];
  auto stopping = [&] { return stop != nullptr && stop->load(); };
  while (!stopping()) {
    pollfd p{in_fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, 200);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    const ssize_t n = ::read(in_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buffer.append(chunk, size_t(n));
    size_t start = 0;
    for (size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
      if (overlong) {
        overlong = false;  // the end of a line already answered as too long
        continue;
      }
      line.assign(buffer, start, nl - start);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") != std::string::npos) handle_line(line);
    }
    buffer.erase(0, start);
    if (buffer.size() > kMaxLineBytes && !overlong) {
      write(error_reply(nullptr, false, "a request line is longer than " + std::to_string(kMaxLineBytes >> 20) +
                                            " MiB; it is skipped (send shorter requests)"));
      overlong = true;
    }
    if (overlong) buffer.clear();
  }
  std::unique_lock<std::mutex> lock(open_mu_);
  if (!wait_at_end || stopping())
    for (const auto& [id, server_id] : open_) server_.cancel(server_id);
  open_cv_.wait(lock, [&] { return open_.empty(); });
}

void ServeSession::handle_line(const std::string& line) {
  ServeCommand c;
  try {
    c = parse_serve_command(line, client_ + "-" + std::to_string(++counter_));
  } catch (const std::exception& e) {
    const bool openai = line.find("\"messages\"") != std::string::npos;
    write(error_reply(reply_id_of(line), openai, e.what()));
    return;
  }
  try {
    switch (c.kind) {
      case ServeCommand::Kind::kGenerate: return generate(std::move(c));
      case ServeCommand::Kind::kCancel: {
        std::lock_guard<std::mutex> lock(open_mu_);
        auto it = open_.find(c.id);
        require(it != open_.end(), ErrorCode::kNotFound, "no open request \"" + c.id + "\" to cancel");
        server_.cancel(it->second);
        return;
      }
      case ServeCommand::Kind::kLoadAdapter: {
        const std::string key = server_.load_adapter(c.user, c.adapter, c.version, c.scale);
        return write(ok_reply(c, {{"op", "load_adapter"}, {"key", key}}));
      }
      case ServeCommand::Kind::kUnloadAdapter:
        server_.unload_adapter(c.key);
        return write(ok_reply(c, {{"op", "unload_adapter"}, {"key", c.key}}));
      case ServeCommand::Kind::kScaleAdapter:
        server_.set_adapter_scale(c.key, c.scale);
        return write(ok_reply(c, {{"op", "scale_adapter"}, {"key", c.key}, {"scale", c.scale}}));
      case ServeCommand::Kind::kListAdapters: {
        Json list = Json::array();
        for (const LoadedAdapterInfo& a : server_.adapters())
          list.push_back({{"key", a.key}, {"method", a.method}, {"rank", a.rank}, {"scale", a.scale},
                          {"bytes", a.bytes}, {"requests", a.requests}});
        return write(ok_reply(c, {{"op", "adapters"}, {"adapters", list}}));
      }
    }
  } catch (const std::exception& e) {
    write(error_reply(c.id, c.openai, e.what()));
  }
}

void ServeSession::generate(ServeCommand command) {
  {
    std::lock_guard<std::mutex> lock(open_mu_);
    require(open_.count(command.id) == 0, ErrorCode::kInvalidArgument,
            "request id \"" + command.id + "\" is already open in this session; use another id");
  }
  auto c = std::make_shared<const ServeCommand>(command);
  ServeEvents events;
  if (c->stream) events.on_text = [this, c](std::string_view text) { write(text_reply(*c, text, model_)); };
  events.on_done = [this, c](const GenerationResult& r, const std::optional<TttReport>& ttt) {
    write(done_reply(*c, r, ttt, model_));
    request_ended(c->id);
  };
  events.on_error = [this, c](const std::string& message) {
    write(error_reply(c->id, c->openai, message));
    request_ended(c->id);
  };
  // Registered before submit returns, so a request that ends at once finds its entry.
  std::lock_guard<std::mutex> lock(open_mu_);
  open_[c->id] = server_.submit(command.request, std::move(events));
}

void ServeSession::request_ended(const std::string& id) {
  std::lock_guard<std::mutex> lock(open_mu_);
  open_.erase(id);
  open_cv_.notify_all();
}

void ServeSession::write(const Json& reply) {
  const std::string line = reply.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> lock(write_mu_);
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(out_fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away; its requests are cancelled when its input ends
    done += size_t(n);
  }
}

}  // namespace hearth::engine
