#include "inference/tokenizer/chat_template.h"

#include "core/error.h"
#include "inference/tokenizer/utf8.h"

namespace hearth {
namespace {

bool contains(const std::string& haystack, const char* needle) { return haystack.find(needle) != std::string::npos; }

// The default system prompt of a ChatML template: the literal text of a system turn written
// into the template itself (e.g. SmolLM2's "You are a helpful AI assistant named SmolLM..."),
// i.e. "<|im_start|>system", a newline, text free of template syntax ('"{}<+) and "<|im_end|>".
// Jinja string literals write the newline as "\n"; some templates hold a real newline. A plain
// scan, not std::regex: libstdc++'s matcher recurses once per character and a long prompt
// (~50 KB) overflowed the stack.
std::string default_system_prompt(const std::string& jinja) {
  const std::string open = "<|im_start|>system";
  for (size_t at = jinja.find(open); at != std::string::npos; at = jinja.find(open, at + 1)) {
    size_t begin = at + open.size();
    if (jinja.compare(begin, 2, "\\n") == 0) {
      begin += 2;
    } else if (jinja.compare(begin, 1, "\n") == 0) {
      begin += 1;
    } else {
      continue;
    }
    const size_t end = jinja.find_first_of("'\"{}<+", begin);
    if (end != std::string::npos && jinja.compare(end, 10, "<|im_end|>") == 0) return jinja.substr(begin, end - begin);
  }
  return "";
}

void require_known_role(const ChatMessage& message) {
  if (message.role != "system" && message.role != "user" && message.role != "assistant") {
    fail(ErrorCode::kInvalidArgument,
         "chat message role \"" + message.role + "\" is not supported (use system, user or assistant)");
  }
}

// Python's str.strip/lstrip/rstrip with a set of characters, as the Qwen3 template uses them.
std::string_view strip_chars(std::string_view s, const char* chars, bool left, bool right) {
  const std::string_view set(chars);
  if (left) {
    const size_t begin = s.find_first_not_of(set);
    s.remove_prefix(begin == std::string_view::npos ? s.size() : begin);
  }
  if (right) {
    const size_t end = s.find_last_not_of(set);
    s = s.substr(0, end == std::string_view::npos ? 0 : end + 1);
  }
  return s;
}

}  // namespace

ChatTemplate ChatTemplate::from_jinja(const std::string& jinja, const std::string& bos_token) {
  ChatTemplateStyle style;
  if (contains(jinja, "<|im_start|>")) {
    style.family = ChatFamily::kChatML;
    style.default_system = default_system_prompt(jinja);
    style.qwen3_thinking = contains(jinja, "</think>") && contains(jinja, "last_query_index");
  } else if (contains(jinja, "<|start_header_id|>")) {
    style.family = ChatFamily::kLlama3;
    if (contains(jinja, "bos_token")) style.bos_token = bos_token;
    style.trim_content = contains(jinja, "| trim") || contains(jinja, "|trim");
    style.always_generation_prompt = !contains(jinja, "add_generation_prompt");
    // Llama 3.1+ instruct templates add dates and tool text to the system turn: not handled here.
    require(!contains(jinja, "Cutting Knowledge Date"), ErrorCode::kUnsupported,
            "the Llama 3.1+ chat template (with dates and tools) is not supported");
  } else if (contains(jinja, "<start_of_turn>")) {
    style.family = ChatFamily::kGemma;
    if (contains(jinja, "bos_token")) style.bos_token = bos_token;
  } else {
    fail(ErrorCode::kUnsupported,
         "chat template is not ChatML (<|im_start|>), Llama 3 (<|start_header_id|>) or Gemma (<start_of_turn>)");
  }
  return ChatTemplate(std::move(style));
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  return render_with_spans(messages, add_generation_prompt).text;
}

RenderedChat ChatTemplate::render_with_spans(const std::vector<ChatMessage>& messages,
                                             bool add_generation_prompt) const {
  for (const ChatMessage& m : messages) {
    require_known_role(m);
    tokenizer::require_valid_utf8(m.content, "chat message content");
  }
  RenderedChat out;
  switch (style_.family) {
    case ChatFamily::kChatML: render_chatml(messages, add_generation_prompt, out); break;
    case ChatFamily::kLlama3: render_llama3(messages, add_generation_prompt, out); break;
    case ChatFamily::kGemma: render_gemma(messages, add_generation_prompt, out); break;
  }
  return out;
}

void ChatTemplate::render_chatml(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 RenderedChat& out) const {
  std::string& text = out.text;
  if (!style_.default_system.empty() && (messages.empty() || messages[0].role != "system")) {
    text += "<|im_start|>system\n" + style_.default_system + "<|im_end|>\n";
  }
  // Qwen3 writes a <think> block for assistant turns after the last user turn: a real one when
  // the content holds one, an empty one for the final turn.
  ptrdiff_t last_user = static_cast<ptrdiff_t>(messages.size()) - 1;
  for (ptrdiff_t i = last_user; i >= 0; --i) {
    if (messages[i].role == "user") {
      last_user = i;
      break;
    }
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    text += "<|im_start|>" + m.role + "\n";
    const size_t begin = text.size();
    if (m.role == "assistant" && style_.qwen3_thinking) {
      std::string_view content = m.content, reasoning;
      const size_t close = m.content.find("</think>");
      if (close != std::string::npos) {
        content = strip_chars(std::string_view(m.content).substr(m.content.rfind("</think>") + 8), "\n", true, false);
        std::string_view before = strip_chars(std::string_view(m.content).substr(0, close), "\n", false, true);
        const size_t open = before.rfind("<think>");
        reasoning = strip_chars(open == std::string_view::npos ? before : before.substr(open + 7), "\n", true, false);
      }
      const bool after_last_user = static_cast<ptrdiff_t>(i) > last_user;
      if (after_last_user && (i + 1 == messages.size() || !reasoning.empty())) {
        text += "<think>\n" + std::string(strip_chars(reasoning, "\n", true, true)) + "\n</think>\n\n" +
                std::string(strip_chars(content, "\n", true, false));
      } else {
        text += content;
      }
    } else {
      text += m.content;
    }
    text += "<|im_end|>";
    if (m.role == "assistant") out.assistant_spans.emplace_back(begin, text.size());
    text += "\n";
  }
  if (add_generation_prompt) text += "<|im_start|>assistant\n";
}

void ChatTemplate::render_llama3(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                 RenderedChat& out) const {
  std::string& text = out.text;
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (i == 0) text += style_.bos_token;
    text += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
    const size_t begin = text.size();
    text += style_.trim_content ? std::string(tokenizer::trim_whitespace(m.content, true, true)) : m.content;
    text += "<|eot_id|>";
    if (m.role == "assistant") out.assistant_spans.emplace_back(begin, text.size());
  }
  if (add_generation_prompt || style_.always_generation_prompt) {
    text += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  }
}

// Gemma's template: a system prompt opens the first user turn (followed by a blank line, not
// trimmed); the assistant is "model"; contents are trimmed; turns after the system one must
// alternate user, assistant, ... (the template raises an exception otherwise).
void ChatTemplate::render_gemma(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                RenderedChat& out) const {
  std::string& text = out.text;
  text += style_.bos_token;
  const bool has_system = !messages.empty() && messages[0].role == "system";
  const std::string first_user_prefix = has_system ? messages[0].content + "\n\n" : "";
  for (size_t i = has_system ? 1 : 0, turn = 0; i < messages.size(); ++i, ++turn) {
    const ChatMessage& m = messages[i];
    require((m.role == "user") == (turn % 2 == 0), ErrorCode::kInvalidArgument,
            "a Gemma chat must alternate user and assistant turns after the system turn (turn " +
                std::to_string(turn + 1) + " is \"" + m.role + "\")");
    text += "<start_of_turn>" + std::string(m.role == "assistant" ? "model" : m.role) + "\n";
    if (turn == 0) text += first_user_prefix;
    const size_t begin = text.size();
    text += tokenizer::trim_whitespace(m.content, true, true);
    text += "<end_of_turn>";
    if (m.role == "assistant") out.assistant_spans.emplace_back(begin, text.size());
    text += "\n";
  }
  if (add_generation_prompt) text += "<start_of_turn>model\n";
}

std::string chatml_jinja_template(const std::string& default_system) {
  std::string jinja = "{% for message in messages %}";
  if (!default_system.empty()) {
    jinja += "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\n" + default_system +
             "<|im_end|>\\n' }}{% endif %}";
  }
  jinja +=
      "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  return jinja;
}

}  // namespace hearth
