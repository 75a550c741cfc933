#include "storage/training_example.h"

#include "core/error.h"
#include "core/json.h"

namespace hearth::storage {

const char* example_format_name(ExampleFormat format) {
  return format == ExampleFormat::kChat ? "chat" : "completion";
}

ExampleFormat parse_example_format(std::string_view name) {
  if (name == "chat") return ExampleFormat::kChat;
  if (name == "completion") return ExampleFormat::kCompletion;
  fail(ErrorCode::kCorruptFile, "unknown example format \"" + std::string(name) + "\"");
}

namespace {

ChatMessage parse_message(const Json& m, const std::string& where) {
  require(m.is_object(), ErrorCode::kCorruptFile, where + ": every message must be an object");
  json_reject_unknown_fields(m, {"role", "content", "name"}, where + ": message");
  ChatMessage msg{json_get<std::string>(m, "role", where), json_get<std::string>(m, "content", where)};
  require(msg.role == "system" || msg.role == "user" || msg.role == "assistant" || msg.role == "tool",
          ErrorCode::kCorruptFile, where + ": unknown role \"" + msg.role + "\" (use system, user, assistant or tool)");
  return msg;
}

}  // namespace

TrainingExample parse_example_line(std::string_view line, const std::string& where) {
  Json j;
  try {
    j = parse_json(line, where);
  } catch (const Error& e) {
    fail(ErrorCode::kCorruptFile, e.what());
  }
  require(j.is_object(), ErrorCode::kCorruptFile, where + ": each line must be a JSON object");
  TrainingExample ex;
  if (j.contains("messages")) {
    const Json& msgs = j.at("messages");
    require(msgs.is_array() && !msgs.empty(), ErrorCode::kCorruptFile, where + ": \"messages\" must be a non-empty array");
    ex.format = ExampleFormat::kChat;
    for (const Json& m : msgs) ex.messages.push_back(parse_message(m, where));
    bool has_assistant = false;
    for (auto& m : ex.messages) has_assistant |= m.role == "assistant";
    require(has_assistant, ErrorCode::kCorruptFile, where + ": a chat needs at least one assistant message to train on");
    return ex;
  }
  if (j.contains("prompt") || j.contains("completion")) {
    try {
      ex.format = ExampleFormat::kCompletion;
      ex.prompt = json_get<std::string>(j, "prompt", where);
      ex.completion = json_get<std::string>(j, "completion", where);
    } catch (const Error& e) {
      fail(ErrorCode::kCorruptFile, e.what());
    }
    require(!ex.completion.empty(), ErrorCode::kCorruptFile, where + ": \"completion\" is empty");
    return ex;
  }
  fail(ErrorCode::kCorruptFile, where + ": expected \"messages\" (chat) or \"prompt\" and \"completion\"");
}

std::string canonical_example_json(const TrainingExample& ex) {
  Json j = Json::object();
  if (ex.format == ExampleFormat::kChat) {
    Json msgs = Json::array();
    for (const ChatMessage& m : ex.messages) msgs.push_back(Json{{"role", m.role}, {"content", m.content}});
    j["messages"] = std::move(msgs);
  } else {
    j["prompt"] = ex.prompt;
    j["completion"] = ex.completion;
  }
  return j.dump();
}

TrainingExample example_from_canonical_json(std::string_view json, const std::string& where) {
  return parse_example_line(json, where);
}

}  // namespace hearth::storage
