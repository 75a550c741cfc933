#include "engine/serve_protocol.h"

#include <ctime>

#include "core/error.h"
#include "core/json_fields.h"

namespace hearth::engine {
namespace {

constexpr int64_t kMaxTokens = 1 << 20;

void read_sampling(JsonFields& f, GenerationOptions& o) {
  double temperature = o.sampling.temperature, top_p = o.sampling.top_p;
  f.read("temperature", temperature, 0.0, 100.0);
  f.read("top_p", top_p, 0.0, 1.0);
  o.sampling.temperature = static_cast<float>(temperature);
  o.sampling.top_p = static_cast<float>(top_p);
  f.read("seed", o.sampling.seed);
}

std::vector<ChatMessage> read_messages(const Json& j) {
  require(j.is_array() && !j.empty(), ErrorCode::kInvalidArgument,
          "\"messages\" must be a non-empty array of {\"role\", \"content\"} objects");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < j.size(); ++i) {
    ChatMessage m;
    JsonFields f(j[i], "message " + std::to_string(i));
    f.read("role", m.role);
    f.read("content", m.content);
    std::string name;
    f.read("name", name);  // OpenAI's optional speaker name: accepted, not used
    f.finish();
    require(m.role == "system" || m.role == "user" || m.role == "assistant", ErrorCode::kInvalidArgument,
            "message " + std::to_string(i) + ": role must be \"system\", \"user\" or \"assistant\", got \"" + m.role + "\"");
    out.push_back(std::move(m));
  }
  return out;
}

void read_ttt(JsonFields& f, ServeRequest& r) {
  const Json ttt = f.object("ttt");
  if (!ttt.is_null()) r.ttt = TttSettings::from_json(ttt, "\"ttt\"");
  f.read("context", r.context);
  f.read("keep_as", r.keep_as);
}

// The OpenAI chat-completions shape.
ServeCommand parse_openai(const Json& j, const std::string& fallback_id) {
  ServeCommand c;
  c.openai = true;
  c.stream = false;  // OpenAI's default
  c.id = fallback_id;
  c.request.chat = true;
  c.request.messages = read_messages(j.at("messages"));
  Json rest = j;
  rest.erase("messages");  // an array, read above
  JsonFields f(rest, "chat-completions request");
  f.read("id", c.id);
  std::string model;
  f.read("model", model);  // the server has one base: any name is accepted
  int64_t n = 1;
  f.read("n", n, 1, 1);
  f.object("stream_options");
  c.request.options.max_tokens = 128;
  int64_t max_tokens = c.request.options.max_tokens;
  f.read("max_tokens", max_tokens, 0, kMaxTokens);
  f.read("max_completion_tokens", max_tokens, 0, kMaxTokens);
  c.request.options.max_tokens = static_cast<int>(max_tokens);
  c.request.options.sampling.temperature = 1.0f;  // OpenAI's default
  c.request.options.sampling.top_p = 1.0f;
  c.request.options.sampling.top_k = 0;
  read_sampling(f, c.request.options);
  f.read("stream", c.stream);
  f.read("user", c.request.user);
  f.read("adapter", c.request.adapter);
  f.read("version", c.request.version, 0, INT64_MAX);
  read_ttt(f, c.request);
  f.finish();
  return c;
}

ServeCommand parse_native(const Json& j, const std::string& fallback_id) {
  ServeCommand c;
  c.id = fallback_id;
  JsonFields f(j, "request");
  f.read("id", c.id);
  std::string op = "generate", cancel;
  f.read("op", op);
  f.read("cancel", cancel);
  if (!cancel.empty()) {
    c.kind = ServeCommand::Kind::kCancel;
    c.id = cancel;
    f.finish();
    return c;
  }
  if (op == "generate") {
    ServeRequest& r = c.request;
    f.read("prompt", r.prompt);
    f.read("prefix", r.prefix);
    f.read("chat", r.chat);
    std::string system;
    f.read("system", system);
    if (r.chat) {
      if (!system.empty()) r.messages.push_back({"system", system});
      r.messages.push_back({"user", r.prompt});
      require(r.prefix.empty(), ErrorCode::kInvalidArgument, "with \"chat\": true the shared prefix is \"system\", not \"prefix\"");
    } else {
      require(system.empty(), ErrorCode::kInvalidArgument, "\"system\" needs \"chat\": true");
    }
    int64_t max_tokens = r.options.max_tokens;
    f.read("max_tokens", max_tokens, 0, kMaxTokens);
    r.options.max_tokens = static_cast<int>(max_tokens);
    read_sampling(f, r.options);
    f.read("top_k", r.options.sampling.top_k, 0, 1 << 30);
    double penalty = r.options.sampling.repeat_penalty;
    f.read("repeat_penalty", penalty, 0.0, 100.0);
    r.options.sampling.repeat_penalty = static_cast<float>(penalty);
    bool ignore_stop = false;
    f.read("ignore_stop", ignore_stop);
    r.options.stop_at_stop_tokens = !ignore_stop;
    f.read("stream", c.stream);
    f.read("user", r.user);
    f.read("adapter", r.adapter);
    f.read("version", r.version, 0, INT64_MAX);
    read_ttt(f, r);
    f.finish();
    return c;
  }
  f.read("user", c.user);
  f.read("adapter", c.adapter);
  f.read("key", c.key);
  f.read("version", c.version, 0, INT64_MAX);
  f.read("scale", c.scale, 0.0, 100.0);
  f.finish();
  if (op == "load_adapter") {
    c.kind = ServeCommand::Kind::kLoadAdapter;
    require(!c.user.empty() && !c.adapter.empty(), ErrorCode::kInvalidArgument, "load_adapter needs \"user\" and \"adapter\"");
  } else if (op == "unload_adapter" || op == "scale_adapter") {
    c.kind = op == "unload_adapter" ? ServeCommand::Kind::kUnloadAdapter : ServeCommand::Kind::kScaleAdapter;
    require(!c.key.empty(), ErrorCode::kInvalidArgument, op + " needs \"key\" (as load_adapter or \"adapters\" gave it)");
  } else if (op == "adapters") {
    c.kind = ServeCommand::Kind::kListAdapters;
  } else {
    fail(ErrorCode::kInvalidArgument, "unknown op \"" + op +
                                          "\"; use generate (the default), load_adapter, unload_adapter, scale_adapter or adapters");
  }
  return c;
}

std::string finish_reason(const std::string& stop_reason) {
  if (stop_reason == "stop_token") return "stop";
  if (stop_reason == "cancelled") return "cancelled";
  return "length";
}

Json openai_chunk(const ServeCommand& c, const std::string& model, Json delta, Json finish) {
  return {{"id", "chatcmpl-" + c.id},
          {"object", "chat.completion.chunk"},
          {"created", static_cast<int64_t>(std::time(nullptr))},
          {"model", model},
          {"choices", Json::array({{{"index", 0}, {"delta", std::move(delta)}, {"finish_reason", std::move(finish)}}})}};
}

}  // namespace

ServeCommand parse_serve_command(std::string_view line, const std::string& fallback_id) {
  const Json j = parse_json(line, "request line");
  require(j.is_object(), ErrorCode::kInvalidArgument, "a request must be a JSON object, one per line");
  return j.contains("messages") ? parse_openai(j, fallback_id) : parse_native(j, fallback_id);
}

Json reply_id_of(std::string_view line) {
  try {
    const Json j = Json::parse(line);
    if (j.is_object()) {
      for (const char* key : {"id", "cancel"})
        if (j.contains(key) && j[key].is_string()) return j[key];
    }
  } catch (const std::exception&) {
    // Not JSON: the reply carries no id.
  }
  return nullptr;
}

Json text_reply(const ServeCommand& c, std::string_view text, const std::string& model) {
  if (c.openai) return openai_chunk(c, model, {{"role", "assistant"}, {"content", std::string(text)}}, nullptr);
  return {{"id", c.id}, {"event", "token"}, {"text", std::string(text)}};
}

Json done_reply(const ServeCommand& c, const GenerationResult& r, const std::optional<TttReport>& ttt,
                const std::string& model) {
  const int64_t completion = static_cast<int64_t>(r.tokens.size());
  if (c.openai) {
    const Json usage = {{"prompt_tokens", r.prompt_tokens}, {"completion_tokens", completion},
                        {"total_tokens", r.prompt_tokens + completion}};
    if (c.stream) {
      Json chunk = openai_chunk(c, model, Json::object(), finish_reason(r.stop_reason));
      chunk["usage"] = usage;
      return chunk;
    }
    return {{"id", "chatcmpl-" + c.id},
            {"object", "chat.completion"},
            {"created", static_cast<int64_t>(std::time(nullptr))},
            {"model", model},
            {"choices", Json::array({{{"index", 0},
                                      {"message", {{"role", "assistant"}, {"content", r.text}}},
                                      {"finish_reason", finish_reason(r.stop_reason)}}})},
            {"usage", usage}};
  }
  Json out = {{"id", c.id},
              {"event", "done"},
              {"text", r.text},
              {"tokens", completion},
              {"prompt_tokens", r.prompt_tokens},
              {"stop_reason", r.stop_reason},
              {"prefill_seconds", r.prefill_seconds},
              {"decode_seconds", r.decode_seconds}};
  if (ttt) out["ttt"] = ttt->to_json();
  return out;
}

Json error_reply(const Json& id, bool openai, const std::string& message) {
  if (openai) return {{"id", id}, {"error", {{"message", message}, {"type", "invalid_request_error"}}}};
  return {{"id", id}, {"event", "error"}, {"error", message}};
}

Json ok_reply(const ServeCommand& c, Json fields) {
  Json out = {{"id", c.id}, {"event", "ok"}};
  for (auto& [k, v] : fields.items()) out[k] = v;
  return out;
}

}  // namespace hearth::engine
