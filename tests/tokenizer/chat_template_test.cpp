// Chat templates: renders equal to the reference Jinja renders of the real tokenizer_config.json
// files, family detection, and assistant spans for loss masks.
#include <gtest/gtest.h>

#include "core/error.h"
#include "inference/tokenizer/chat_template.h"
#include "reference_outputs.h"

namespace hearth {
namespace {

using test::read_reference;
using test::shared_chat_template;

std::vector<ChatMessage> messages_of(const Json& j) {
  std::vector<ChatMessage> out;
  for (const Json& m : j) out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  return out;
}

class ChatParity : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatParity, RendersEqualReference) {
  const Json ref = read_reference(GetParam() + ".chat.json");
  if (ref.is_null()) return;
  const ChatTemplate chat_template = shared_chat_template(GetParam());
  const ChatTemplate* chat = &chat_template;
  ASSERT_GE(ref.at("conversations").size(), 12u);
  for (const Json& c : ref.at("conversations")) {
    const bool gen = c.at("add_generation_prompt").get<bool>();
    EXPECT_EQ(chat->render(messages_of(c.at("messages")), gen), c.at("text").get<std::string>())
        << c.at("messages").dump() << " add_generation_prompt=" << gen;
  }
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, ChatParity, ::testing::Values("llama3", "qwen3", "gemma3"));

TEST(ChatTemplate, RealConfigsAreRecognised) {
  const ChatTemplate llama_template = shared_chat_template("llama3");
  const ChatTemplate* llama = &llama_template;
  EXPECT_EQ(llama->style().family, ChatFamily::kLlama3);
  EXPECT_EQ(llama->style().bos_token, "<|begin_of_text|>");
  EXPECT_TRUE(llama->style().trim_content);
  EXPECT_TRUE(llama->style().always_generation_prompt) << "this base template ends every render with the header";
  const ChatTemplate qwen_template = shared_chat_template("qwen3");
  const ChatTemplate* qwen = &qwen_template;
  EXPECT_EQ(qwen->style().family, ChatFamily::kChatML);
  EXPECT_TRUE(qwen->style().qwen3_thinking);
  EXPECT_EQ(qwen->style().default_system, "");
  const ChatTemplate gemma = shared_chat_template("gemma3");
  EXPECT_EQ(gemma.style().family, ChatFamily::kGemma);
  EXPECT_EQ(gemma.style().bos_token, "<bos>");
}

// Gemma's template raises an exception unless the turns after the system one alternate user,
// assistant, ...: Hearth refuses the same conversations, naming the turn.
TEST(ChatTemplate, GemmaRefusesTurnsThatDoNotAlternate) {
  const ChatTemplate gemma = shared_chat_template("gemma3");
  EXPECT_NO_THROW(gemma.render({{"system", "S"}, {"user", "a"}, {"assistant", "b"}, {"user", "c"}}, true));
  for (const std::vector<ChatMessage>& chat : std::vector<std::vector<ChatMessage>>{
           {{"assistant", "first"}}, {{"user", "a"}, {"user", "b"}}, {{"system", "S"}, {"system", "T"}}}) {
    try {
      gemma.render(chat, true);
      ADD_FAILURE() << "accepted a chat whose turns do not alternate: " << chat.size() << " turns from " << chat[0].role;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("alternate"), std::string::npos) << e.what();
    }
  }
}

TEST(ChatTemplate, SpansCoverAssistantContentAndEndOfTurn) {
  const std::vector<ChatMessage> chat = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "Bye"}, {"assistant", "Bye now."}};
  for (const std::string name : {"llama3", "qwen3", "gemma3"}) {
    const ChatTemplate chat_template = shared_chat_template(name);
    const ChatTemplate* t = &chat_template;
    const RenderedChat r = t->render_with_spans(chat, false);
    ASSERT_EQ(r.assistant_spans.size(), 2u) << name;
    const std::string end = name == "llama3" ? "<|eot_id|>" : name == "qwen3" ? "<|im_end|>" : "<end_of_turn>";
    EXPECT_EQ(r.text.substr(r.assistant_spans[0].first, r.assistant_spans[0].second - r.assistant_spans[0].first),
              "Hello!" + end);
    const std::string last =
        r.text.substr(r.assistant_spans[1].first, r.assistant_spans[1].second - r.assistant_spans[1].first);
    // Qwen3 writes an empty think block into the final assistant turn; it is the assistant's text.
    EXPECT_EQ(last, name == "qwen3" ? "<think>\n\n</think>\n\nBye now." + end : "Bye now." + end);
    EXPECT_EQ(r.text, t->render(chat, false));
  }
}

TEST(ChatTemplate, Qwen3SplitsReasoningFromContent) {
  const ChatTemplate qwen = shared_chat_template("qwen3");
  const ChatTemplate* t = &qwen;
  const std::string text = t->render({{"user", "Q"}, {"assistant", "<think>\nstep 1\n</think>\n\nAnswer"}}, false);
  EXPECT_EQ(text, "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nstep 1\n</think>\n\nAnswer<|im_end|>\n");
  // Before the last user turn, reasoning is dropped.
  const std::string older =
      t->render({{"user", "Q"}, {"assistant", "<think>x</think>A"}, {"user", "Q2"}}, false);
  EXPECT_EQ(older, "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n");
}

TEST(ChatTemplate, SmolLM2StyleTemplateAddsDefaultSystemPrompt) {
  const ChatTemplate t = ChatTemplate::from_jinja(chatml_jinja_template("You are SmolLM."), "");
  EXPECT_EQ(t.render({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are SmolLM.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(t.render({{"system", "S"}, {"user", "Hi"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n");
}

// Found by fuzzing tokenizer_config.json: std::regex recursed once per character of a literal
// system prompt and overflowed the stack at ~50 KB. A 1 MB prompt is read back exactly.
TEST(ChatTemplate, LongDefaultSystemPromptIsReadWithoutExhaustingTheStack) {
  const std::string prompt(1 << 20, 'a');
  EXPECT_EQ(ChatTemplate::from_jinja(chatml_jinja_template(prompt), "").style().default_system, prompt);
  // A real newline in place of "\n", and a first system turn that is template code, not text.
  EXPECT_EQ(ChatTemplate::from_jinja("<|im_start|>system\nBe kind.<|im_end|>", "").style().default_system, "Be kind.");
  EXPECT_EQ(ChatTemplate::from_jinja("<|im_start|>system\n{{ x }}<|im_end|> <|im_start|>system\\nB<|im_end|>", "")
                .style()
                .default_system,
            "B");
  EXPECT_EQ(ChatTemplate::from_jinja("<|im_start|>system{{ x }}<|im_end|>", "").style().default_system, "");
}

TEST(ChatTemplate, RejectsUnknownTemplatesAndRoles) {
  try {
    ChatTemplate::from_jinja("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}", "<s>");
    FAIL() << "expected kUnsupported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  }
  const ChatTemplate t = ChatTemplate::from_jinja(chatml_jinja_template(""), "");
  EXPECT_THROW(t.render({{"tool", "x"}}, false), Error);
  EXPECT_THROW(t.render({{"user", "bad \xFF"}}, false), Error);
}

}  // namespace
}  // namespace hearth
