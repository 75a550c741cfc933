// Chat templates: renders a conversation into the prompt text a chat model was trained on, for
// the ChatML (Qwen, SmolLM2), Llama 3 and Gemma families, recognised from tokenizer_config.json.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace hearth {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

enum class ChatFamily {
  kChatML,  // <|im_start|>role\n...<|im_end|>\n
  kLlama3,  // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
  kGemma,   // <start_of_turn>user|model\n...<end_of_turn>\n, the system prompt inside the first user turn
};

// A rendered conversation plus the [begin, end) byte ranges of the text the assistant wrote,
// each ending after the end-of-turn token: what a trainer computes the loss on.
struct RenderedChat {
  std::string text;
  std::vector<std::pair<size_t, size_t>> assistant_spans;
};

// The details of one template that plain system/user/assistant conversations depend on.
struct ChatTemplateStyle {
  ChatFamily family = ChatFamily::kChatML;
  std::string default_system;         // ChatML: system turn added when the first message is not one
  bool qwen3_thinking = false;        // ChatML: Qwen3's <think> handling of the final assistant turns
  std::string bos_token;              // Llama 3, Gemma: prefixed to the conversation when non-empty
  bool trim_content = false;          // Llama 3: message content is trimmed of surrounding whitespace
  bool always_generation_prompt = false;  // Llama 3 base template: the assistant header always ends it
};

class ChatTemplate {
 public:
  explicit ChatTemplate(ChatTemplateStyle style) : style_(std::move(style)) {}

  // Recognises the family and its details from a Jinja chat_template string (no Jinja engine:
  // the families are told apart by their markers). Throws kUnsupported for other templates.
  static ChatTemplate from_jinja(const std::string& jinja, const std::string& bos_token);

  // Throws kInvalidArgument for a role other than system, user or assistant, and for Gemma,
  // whose template refuses them, turns that do not alternate user/assistant after the system turn.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  RenderedChat render_with_spans(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;

  const ChatTemplateStyle& style() const { return style_; }

 private:
  void render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt, RenderedChat& out) const;
  void render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt, RenderedChat& out) const;
  void render_gemma(const std::vector<ChatMessage>& messages, bool add_generation_prompt, RenderedChat& out) const;

  ChatTemplateStyle style_;
};

// A ChatML template string of the SmolLM2 kind (with a default system prompt), written into the
// tokenizer_config.json of synthetic tokenizers; ChatTemplate::from_jinja reads it back.
std::string chatml_jinja_template(const std::string& default_system);

}  // namespace hearth
