// Reading training files: chat loss masks cover exactly the assistant's text, prompt/completion
// masks the completion, text splits hold out the tail, and bad files fail naming file:line.
#include <gtest/gtest.h>

#include "core/error.h"
#include "trainer/chat_tokenize.h"
#include "trainer/training_data.h"
#include "trainer_test_helpers.h"

namespace hearth {
namespace {

std::shared_ptr<Tokenizer> qwen3() {
  static std::shared_ptr<Tokenizer> tok = load_tokenizer(asset_path("tokenizers/qwen3"));
  return tok;
}

std::string trained_text(const Tokenizer& tok, const trainer::TokenDocument& doc) {
  std::string out;
  int32_t previous = -1;
  for (size_t i = 0; i < doc.tokens.size(); ++i) {
    const std::string piece = tok.decode_next(previous, doc.tokens[i]);
    if (doc.trained[i]) out += piece;
    previous = doc.tokens[i];
  }
  return out;
}

const std::vector<ChatMessage> kChat{{"system", "You answer briefly."},
                                     {"user", "What is the capital of France?"},
                                     {"assistant", "Paris."},
                                     {"user", "And of Italy?"},
                                     {"assistant", "Rome, since 1871."}};

TEST(ChatTokenize, LossMaskCoversExactlyTheAssistantText) {
  const Tokenizer& tok = *qwen3();
  ASSERT_NE(tok.chat_template(), nullptr);
  RenderedChat r = tok.chat_template()->render_with_spans(kChat, false);
  std::string expected;
  for (auto [b, e] : r.assistant_spans) expected += r.text.substr(b, e - b);
  trainer::TokenDocument doc = trainer::tokenize_chat(tok, *tok.chat_template(), kChat);
  EXPECT_EQ(tok.decode(doc.tokens), r.text);
  EXPECT_EQ(trained_text(tok, doc), expected);
  EXPECT_NE(expected.find("Paris."), std::string::npos);
  EXPECT_NE(expected.find("Rome, since 1871."), std::string::npos);
  EXPECT_EQ(expected.find("capital"), std::string::npos);
}

TEST(ChatTokenize, WorksWithALlama2cTokenizerThroughTheFallback) {
  LoadedModel m = testing::load_stories();
  ChatTemplate tmpl{ChatTemplateStyle{}};  // ChatML, written as plain text for this vocabulary
  trainer::TokenDocument doc = trainer::tokenize_chat(*m.tokenizer, tmpl, kChat);
  const std::string trained = trained_text(*m.tokenizer, doc);
  EXPECT_NE(trained.find("Paris."), std::string::npos);
  EXPECT_NE(trained.find("Rome, since 1871."), std::string::npos);
  EXPECT_EQ(trained.find("capital"), std::string::npos);
  EXPECT_EQ(trained.find("user"), std::string::npos);
}

TEST(TrainingData, PromptCompletionTrainsTheCompletionAndEos) {
  LoadedModel m = testing::load_stories();
  trainer::TrainingData out;
  trainer::DataOptions o;
  o.eval_fraction = 0;
  trainer::add_file_documents("pc.jsonl", R"({"prompt": "Once upon a time", "completion": " there was a cat."})" "\n",
                              *m.tokenizer, o, out);
  ASSERT_EQ(out.train.size(), 1u);
  const auto& doc = out.train[0];
  EXPECT_EQ(doc.tokens.front(), m.tokenizer->bos_id());
  EXPECT_EQ(doc.tokens.back(), m.tokenizer->eos_id());
  EXPECT_EQ(trained_text(*m.tokenizer, doc), " there was a cat.");
  EXPECT_EQ(doc.source, "pc.jsonl:1");
}

TEST(TrainingData, TextTailSplitHoldsOutTheLastLines) {
  LoadedModel m = testing::load_stories();
  std::string text;
  for (int i = 0; i < 20; ++i) text += "Line number " + std::to_string(i) + " of the story.\n";
  trainer::TrainingData out;
  trainer::add_file_documents("story.txt", text, *m.tokenizer, {0.1, trainer::EvalSplit::kTail}, out);
  ASSERT_EQ(out.train.size(), 1u);
  ASSERT_EQ(out.eval.size(), 1u);
  EXPECT_EQ(m.tokenizer->decode(out.eval[0].tokens).find("Line number 18"), 0u);
  EXPECT_EQ(m.tokenizer->decode(out.train[0].tokens).find("Line number 18"), std::string::npos);
}

TEST(TrainingData, HashSplitIsDeterministicAndRoughlyTheFraction) {
  LoadedModel m = testing::load_stories();
  std::string text;
  for (int i = 0; i < 200; ++i) text += "Paragraph " + std::to_string(i) + ".\n\n";
  trainer::TrainingData a, b;
  trainer::add_file_documents("p.txt", text, *m.tokenizer, {0.2, trainer::EvalSplit::kHash}, a);
  trainer::add_file_documents("p.txt", text, *m.tokenizer, {0.2, trainer::EvalSplit::kHash}, b);
  EXPECT_EQ(a.eval.size(), b.eval.size());
  EXPECT_GT(a.eval.size(), 20u);
  EXPECT_LT(a.eval.size(), 60u);
  EXPECT_EQ(a.train.size() + a.eval.size(), 200u);
}

void expect_error(const std::string& contents, const std::string& needle, const std::string& name = "bad.jsonl") {
  LoadedModel m = testing::load_stories();
  trainer::TrainingData out;
  try {
    trainer::add_file_documents(name, contents, *m.tokenizer, {}, out);
    FAIL() << "no error for: " << contents;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(TrainingData, BadFilesFailNamingFileAndLine) {
  const std::string ok = R"({"prompt": "a", "completion": "b"})";
  expect_error(ok + "\n" + ok + "\n{not json\n", "bad.jsonl:3: not valid JSON");
  expect_error(ok + "\n[1, 2]\n", "bad.jsonl:2: a record must be a JSON object");
  expect_error(R"({"text": "x"})" "\n", "bad.jsonl:1: a record needs \"messages\"");
  expect_error(R"({"prompt": "x"})" "\n", "bad.jsonl:1: missing field \"completion\"");
  expect_error(R"({"prompt": 3, "completion": "y"})" "\n", "bad.jsonl:1: field \"prompt\" must be a string");
  expect_error(R"({"messages": []})" "\n", "bad.jsonl:1: \"messages\" must be a non-empty array");
  // stories260K's tokenizer has no chat template: chat data says so, naming the line.
  expect_error(R"({"messages": [{"role": "user", "content": "hi"}]})" "\n", "bad.jsonl:1: chat data needs a tokenizer");
  expect_error("\n\n", "bad.jsonl: the file has no records");
}

TEST(TrainingData, ChatRecordErrorsNameTheLine) {
  trainer::TrainingData out;
  const std::string bad_role = R"({"messages": [{"role": "robot", "content": "hi"}]})";
  const std::string no_assistant = R"({"messages": [{"role": "user", "content": "hi"}]})";
  for (const auto& [line, needle] : {std::pair{bad_role, "chat.jsonl:1: chat message role \"robot\""},
                                     std::pair{no_assistant, "chat.jsonl:1: a chat example has no assistant message"}}) {
    try {
      trainer::add_file_documents("chat.jsonl", line + "\n", *qwen3(), {}, out);
      FAIL() << line;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

TEST(TrainingData, MissingPathIsNotFound) {
  LoadedModel m = testing::load_stories();
  try {
    trainer::load_training_data({"/nonexistent/data.txt"}, *m.tokenizer, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace hearth
