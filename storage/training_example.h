// One training example as ingested from JSONL: a chat ({"messages": [{"role", "content"}…]})
// or a prompt/completion pair; parsed strictly, stored as canonical compact JSON.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace hearth::storage {

enum class ExampleFormat { kChat, kCompletion };
const char* example_format_name(ExampleFormat format);  // "chat" | "completion"
ExampleFormat parse_example_format(std::string_view name);

struct ChatMessage {
  std::string role;  // system | user | assistant | tool
  std::string content;
};

struct TrainingExample {
  ExampleFormat format = ExampleFormat::kChat;
  std::vector<ChatMessage> messages;  // kChat
  std::string prompt;                 // kCompletion
  std::string completion;             // kCompletion
};

// Parses one JSONL line. `where` ("file.jsonl:12") names the line in errors (kCorruptFile).
// Other top-level fields are ignored; inside messages only role, content (and name) are allowed.
TrainingExample parse_example_line(std::string_view line, const std::string& where);

// The stored form: {"messages":[…]} or {"prompt":…,"completion":…}, compact, keys in order.
std::string canonical_example_json(const TrainingExample& example);
TrainingExample example_from_canonical_json(std::string_view json, const std::string& where);

}  // namespace hearth::storage
