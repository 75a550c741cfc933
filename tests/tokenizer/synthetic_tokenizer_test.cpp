// The synthetic tokenizer: exact vocabulary size, reads back through load_tokenizer, round
// trips text, and carries its family's special tokens and chat template.
#include <unistd.h>

#include <gtest/gtest.h>

#include "core/error.h"
#include "inference/tokenizer/synthetic_tokenizer.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {
namespace {

class SyntheticTokenizer : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = std::filesystem::temp_directory_path() /
                               ("hearth_synth_" + std::to_string(::getpid()) + "_" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  void TearDown() override { std::filesystem::remove_all(dir_); }
};

TEST_F(SyntheticTokenizer, SmolLM2SizedChatMLVocabularyReadsBack) {
  write_synthetic_bpe_tokenizer(dir_, 49152, ChatFamily::kChatML);
  const auto tok = load_tokenizer(dir_);
  EXPECT_EQ(tok->vocab_size(), 49152);
  EXPECT_EQ(tok->bos_id(), -1);
  EXPECT_EQ(tok->eos_id(), 2);  // <|im_end|>, as in SmolLM2
  EXPECT_EQ(tok->stop_ids(), (std::vector<int32_t>{2, 0}));
  for (int32_t id = 0; id < tok->vocab_size(); ++id) ASSERT_FALSE(tok->decode_token(id).empty()) << id;

  const std::string text = "The cat sat on the mat, then \xE2\x98\x83 fell: 12345!\n\nDone.";
  const auto ids = tok->encode(text, false);
  EXPECT_EQ(tok->decode(ids), text);
  EXPECT_LT(ids.size(), text.size()) << "merges should shorten English text";

  const ChatTemplate* chat = tok->chat_template();
  ASSERT_NE(chat, nullptr);
  EXPECT_EQ(chat->style().family, ChatFamily::kChatML);
  const std::string rendered = chat->render({{"user", "hi"}}, true);
  EXPECT_EQ(rendered,
            "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
            "<|im_start|>assistant\n");
  const auto chat_ids = tok->encode(rendered, false);
  EXPECT_EQ(chat_ids.front(), 1);  // <|im_start|>
}

TEST_F(SyntheticTokenizer, Llama3FamilyHasBosAndHeaderTokens) {
  write_synthetic_bpe_tokenizer(dir_, 1000, ChatFamily::kLlama3);
  const auto tok = load_tokenizer(dir_ / "tokenizer.json");
  EXPECT_EQ(tok->vocab_size(), 1000);
  EXPECT_EQ(tok->bos_id(), 0);
  const ChatTemplate* chat = tok->chat_template();
  ASSERT_NE(chat, nullptr);
  EXPECT_EQ(chat->render({{"user", " hi "}}, false), "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
  EXPECT_EQ(tok->encode("<|eot_id|>", false), std::vector<int32_t>{4});
}

TEST_F(SyntheticTokenizer, WritingIsDeterministic) {
  write_synthetic_bpe_tokenizer(dir_ / "a", 5000, ChatFamily::kChatML);
  write_synthetic_bpe_tokenizer(dir_ / "b", 5000, ChatFamily::kChatML);
  const auto a = load_tokenizer(dir_ / "a"), b = load_tokenizer(dir_ / "b");
  const std::string text = "Some deterministic text for the synthetic tokenizer.";
  EXPECT_EQ(a->encode(text, false), b->encode(text, false));
}

TEST_F(SyntheticTokenizer, TooSmallVocabularyIsRefused) {
  try {
    write_synthetic_bpe_tokenizer(dir_, 100, ChatFamily::kChatML);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ / "tokenizer.json"));
}

}  // namespace
}  // namespace hearth
