// The tokenizer.json BPE tokenizer: special tokens, BOS, streaming decode, the fast merge
// against a plain one, and bad files and bad text.
#include <unistd.h>

#include <random>

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "inference/tokenizer/bpe_model.h"
#include "inference/tokenizer/bpe_tokenizer.h"
#include "reference_outputs.h"

namespace hearth {
namespace {

using test::shared_tokenizer;

TEST(BpeTokenizer, SpecialTokensInTextBecomeTheirIds) {
  const Tokenizer& qwen = shared_tokenizer("qwen3");
  const auto ids = qwen.encode("<|im_start|>user\nhi<|im_end|>", false);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(ids.back(), 151645);
  EXPECT_EQ(qwen.decode(ids), "<|im_start|>user\nhi<|im_end|>");
}

TEST(BpeTokenizer, BosEosStopIdsAndTemplateComeFromTheConfig) {
  const Tokenizer& llama = shared_tokenizer("llama3");
  EXPECT_EQ(llama.vocab_size(), 128256);
  EXPECT_EQ(llama.bos_id(), 128000);
  EXPECT_EQ(llama.eos_id(), 128001);
  const auto stops = llama.stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 128009), stops.end()) << "<|eot_id|>";
  ASSERT_NE(llama.chat_template(), nullptr);
  EXPECT_EQ(llama.chat_template()->style().family, ChatFamily::kLlama3);
  const Tokenizer& qwen = shared_tokenizer("qwen3");
  EXPECT_EQ(qwen.vocab_size(), 151669);
  EXPECT_EQ(qwen.bos_id(), -1);
  EXPECT_EQ(qwen.eos_id(), 151645);  // <|im_end|>
  EXPECT_EQ(qwen.stop_ids(), (std::vector<int32_t>{151645, 151643}));
  ASSERT_NE(qwen.chat_template(), nullptr);
  EXPECT_EQ(qwen.chat_template()->style().family, ChatFamily::kChatML);

  // add_bos prepends BOS only where there is one.
  const auto plain = llama.encode("Hello world", false);
  auto with_bos = llama.encode("Hello world", true);
  ASSERT_EQ(with_bos.size(), plain.size() + 1);
  EXPECT_EQ(with_bos[0], 128000);
  EXPECT_EQ(qwen.encode("Hello world", true), qwen.encode("Hello world", false));
}

// Streaming: token bytes may split a character; concatenated they are the exact text.
TEST(BpeTokenizer, DecodeTokenPiecesConcatenateToTheText) {
  const std::string text = "Emoji \xF0\x9F\x99\x82 and \xE4\xB8\xAD\xE6\x96\x87, tabs\t\tand  spaces.\n";
  for (const std::string name : {"llama3", "qwen3"}) {
    const Tokenizer& tok = shared_tokenizer(name);
    std::string streamed;
    for (int32_t id : tok.encode(text, false)) streamed += tok.decode_token(id);
    EXPECT_EQ(streamed, text) << name;
    EXPECT_THROW(tok.decode_token(tok.vocab_size()), Error) << name;
  }
}

TEST(BpeTokenizer, QwenNormalizesToNfcLlamaDoesNot) {
  const std::string decomposed = "cafe\xCC\x81", composed = "caf\xC3\xA9";
  const Tokenizer& qwen = shared_tokenizer("qwen3");
  EXPECT_EQ(qwen.encode(decomposed, false), qwen.encode(composed, false));
  const Tokenizer& llama = shared_tokenizer("llama3");
  EXPECT_EQ(llama.decode(llama.encode(decomposed, false)), decomposed);
}

TEST(BpeTokenizer, InvalidUtf8IsRejectedNamingTheByte) {
  try {
    shared_tokenizer("llama3").encode("Hello \xE2\x28\xA1 world", false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte 6"), std::string::npos) << e.what();
  }
}

// A plain BPE: repeatedly merge the lowest-ranked adjacent pair, leftmost on ties.
std::vector<std::string> reference_merge(const std::string& word,
                                         const std::vector<std::pair<std::string, std::string>>& merges) {
  std::vector<std::string> parts;
  for (char c : word) parts.emplace_back(1, c);
  while (true) {
    size_t best_rank = merges.size(), best_i = 0;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      for (size_t r = 0; r < best_rank; ++r) {
        if (merges[r].first == parts[i] && merges[r].second == parts[i + 1]) {
          best_rank = r;
          best_i = i;
          break;
        }
      }
    }
    if (best_rank == merges.size()) return parts;
    parts[best_i] += parts[best_i + 1];
    parts.erase(parts.begin() + best_i + 1);
  }
}

TEST(BpeModel, HeapMergeMatchesPlainMergeOnRandomWords) {
  // A small random model over the letters a-d, with merges in random rank order.
  std::mt19937 rng(11);
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> pool = {"a", "b", "c", "d"};
  while (merges.size() < 60) {
    const std::string l = pool[rng() % pool.size()], r = pool[rng() % pool.size()];
    if (std::find(tokens.begin(), tokens.end(), l + r) != tokens.end()) continue;
    merges.emplace_back(l, r);
    tokens.push_back(l + r);
    pool.push_back(l + r);
  }
  const tokenizer::BpeModel model(tokens, merges, false, "test model");
  for (int trial = 0; trial < 500; ++trial) {
    std::string word;
    for (int i = 0, n = 1 + static_cast<int>(rng() % 30); i < n; ++i) word += static_cast<char>('a' + rng() % 4);
    std::vector<int32_t> ids;
    model.encode_word(word, ids);
    std::vector<std::string> got;
    for (int32_t id : ids) got.push_back(model.token_bytes(id));
    ASSERT_EQ(got, reference_merge(word, merges)) << word;
  }
}

class BpeBadFiles : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = std::filesystem::temp_directory_path() /
                               ("hearth_bpe_bad_" + std::to_string(::getpid()) + "_" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  Error load_error(const std::string& json_text) {
    write_file_atomic(dir_ / "tokenizer.json", json_text);
    try {
      load_tokenizer(dir_);
    } catch (const Error& e) {
      return e;
    }
    ADD_FAILURE() << "loaded without error: " << json_text.substr(0, 200);
    return Error(ErrorCode::kInternal, "");
  }
};

TEST_F(BpeBadFiles, GarbageJsonIsACorruptFile) {
  EXPECT_EQ(load_error("{\"model\": [1, 2,").code(), ErrorCode::kCorruptFile);
  EXPECT_EQ(load_error("[]").code(), ErrorCode::kCorruptFile);
}

TEST_F(BpeBadFiles, UnknownFieldsAreRefusedByName) {
  const Error top = load_error(R"({"model": {"type": "BPE", "vocab": {}, "merges": []}, "surprise": 1})");
  EXPECT_EQ(top.code(), ErrorCode::kCorruptFile);
  EXPECT_NE(std::string(top.what()).find("\"surprise\""), std::string::npos) << top.what();
  const Error model = load_error(
      R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {}, "merges": [], "extra": true}})");
  EXPECT_EQ(model.code(), ErrorCode::kCorruptFile);
  EXPECT_NE(std::string(model.what()).find("\"extra\""), std::string::npos) << model.what();
}

TEST_F(BpeBadFiles, MissingByteTokensAndBadMergesAreCorrupt) {
  const Error no_bytes = load_error(
      R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_EQ(no_bytes.code(), ErrorCode::kCorruptFile);
  EXPECT_NE(std::string(no_bytes.what()).find("byte"), std::string::npos) << no_bytes.what();
  const Error bad_regex = load_error(
      R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  EXPECT_EQ(bad_regex.code(), ErrorCode::kCorruptFile) << bad_regex.what();
}

// Found writing fuzz_tokenizer_json: one vocab id of 16777215 in a 4 KB file made the loader
// allocate a token table of 16.7 M entries (~0.5 GB). Ids past the file's token count are refused.
TEST_F(BpeBadFiles, IdBeyondTheTokenCountIsRefused) {
  const Error e = load_error(R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 16777215}, "merges": []}})");
  EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  EXPECT_NE(std::string(e.what()).find("has id 16777215, but the file holds only 1 tokens"), std::string::npos) << e.what();
}

TEST_F(BpeBadFiles, OtherModelKindsAreUnsupported) {
  const Error e = load_error(R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "Unigram", "vocab": {}, "merges": []}})");
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
}

}  // namespace
}  // namespace hearth
