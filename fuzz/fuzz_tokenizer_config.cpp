// Fuzz target: tokenizer_config.json and its chat template (inference/tokenizer/chat_template.h),
// then a conversation from the further parts rendered and tokenized as training does.
#include "fuzz/fixtures.h"
#include "fuzz/harness.h"
#include "fuzz/input_parts.h"
#include "inference/tokenizer/bpe_tokenizer.h"
#include "trainer/chat_tokenize.h"

using namespace hearth;

namespace {

constexpr size_t kMaxMessages = 8;

// Parts after the config are messages; a role letter before the first ':' picks the role
// (s/u/a, anything else an unknown role the template must refuse).
std::vector<ChatMessage> messages_of(const std::vector<std::string_view>& parts) {
  std::vector<ChatMessage> messages;
  for (size_t i = 1; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    std::string role = "user";
    if (part.size() >= 2 && part[1] == ':') {
      role = part[0] == 's' ? "system" : part[0] == 'a' ? "assistant" : part[0] == 'u' ? "user" : std::string(1, part[0]);
      part.remove_prefix(2);
    }
    messages.push_back({role, std::string(part)});
  }
  return messages;
}

void check_spans(const RenderedChat& chat) {
  size_t previous_end = 0;
  for (const auto& [begin, end] : chat.assistant_spans) {
    fuzz::check(previous_end <= begin && begin <= end && end <= chat.text.size(), "assistant spans out of order or range");
    previous_end = end;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  fuzz::small_bpe_tokenizer_json();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_bytes(data, size), kMaxMessages + 1);
  fuzz::refusal_is_clean([&] {
    const Json config = parse_json(parts[0], "tokenizer_config.json");
    const BpeTokenizer tokenizer(fuzz::small_bpe_tokenizer_json(), config, "fuzz tokenizer");
    const ChatTemplate* chat_template = tokenizer.chat_template();
    if (chat_template == nullptr) return;
    const std::vector<ChatMessage> messages = messages_of(parts);
    // Unknown roles and invalid UTF-8 are refused here, with a message.
    const RenderedChat chat = chat_template->render_with_spans(messages, /*add_generation_prompt=*/parts.size() % 2 == 0);
    check_spans(chat);
    if (chat.assistant_spans.empty()) return;
    fuzz::must_succeed("tokenizing a rendered chat", [&] {
      const trainer::TokenDocument doc = trainer::tokenize_chat(tokenizer, *chat_template, messages);
      fuzz::check(doc.tokens.size() == doc.trained.size(), "tokens and loss mask differ in length");
      for (int32_t id : doc.tokens) fuzz::check(id >= 0 && id < tokenizer.vocab_size(), "a chat token outside the vocabulary");
    });
  });
  return 0;
}
