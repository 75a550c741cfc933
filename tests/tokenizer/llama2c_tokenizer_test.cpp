// The llama2.c tokenizer on the real tok512.bin: known encodings, the fast merge against the
// plain run.c loop, decoding, and files that lie about their contents.
#include <unistd.h>

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "inference/tokenizer/llama2c_tokenizer.h"

namespace hearth {
namespace {

const Llama2cTokenizer& stories_tokenizer() {
  static const auto tok = Llama2cTokenizer::load(asset_path("models/stories260K/tok512.bin"));
  return *tok;
}

// run.c's encode, literally: rescan all pairs each round, take the best score (leftmost on ties).
std::vector<int32_t> reference_encode(const Llama2cTokenizer& tok, const std::string& text) {
  std::vector<int32_t> ids;
  if (!text.empty()) ids.push_back(tok.find(" "));
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (i + n < text.size() && (static_cast<unsigned char>(text[i + n]) & 0xC0) == 0x80) ++n;
    const int32_t id = tok.find(text.substr(i, n));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t k = 0; k < n; ++k) ids.push_back(3 + static_cast<unsigned char>(text[i + k]));
    }
    i += n;
  }
  while (true) {
    float best = -1e10f;
    int best_i = -1, best_id = -1;
    for (size_t i = 0; i + 1 < ids.size(); ++i) {
      const int32_t id = tok.find(tok.piece(ids[i]) + tok.piece(ids[i + 1]));
      if (id >= 0 && tok.score(id) > best) {
        best = tok.score(id);
        best_i = static_cast<int>(i);
        best_id = id;
      }
    }
    if (best_i < 0) break;
    ids[best_i] = best_id;
    ids.erase(ids.begin() + best_i + 1);
  }
  return ids;
}

TEST(Llama2cTokenizer, LoadsRealTok512) {
  const auto& tok = stories_tokenizer();
  EXPECT_EQ(tok.vocab_size(), 512);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.stop_ids(), std::vector<int32_t>{2});
  EXPECT_EQ(tok.chat_template(), nullptr);
  EXPECT_EQ(load_tokenizer(asset_path("models/stories260K"))->vocab_size(), 512) << "folder lookup finds tok512.bin";
}

// Expected ids derived independently (a Python transcription of run.c over tok512.bin).
TEST(Llama2cTokenizer, EncodesKnownSentences) {
  const auto& tok = stories_tokenizer();
  EXPECT_EQ(tok.encode("Once upon a time", true), (std::vector<int32_t>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok.encode("Hello, world! \xE2\x98\x83 \xC3\xA9 \xE4\xB8\xAD", true),
            (std::vector<int32_t>{1, 346, 306, 414, 432, 263, 304, 341, 443, 410, 229, 155, 134, 410, 485, 410, 231,
                                  187, 176}));
  EXPECT_EQ(tok.encode("", true), std::vector<int32_t>{1});
  EXPECT_TRUE(tok.encode("", false).empty());
}

TEST(Llama2cTokenizer, FastMergeMatchesRunCLoopOnRandomText) {
  const auto& tok = stories_tokenizer();
  std::mt19937 rng(7);
  const std::vector<std::string> alphabet = {"a", "e", "t", "h", "o", " ", "n", "s", ".", "\n", "Lily", "the",
                                             "\xC3\xA9", "\xE2\x98\x83", "ll", "ing", "!", "0"};
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % alphabet.size()];
    ASSERT_EQ(tok.encode(text, false), reference_encode(tok, text)) << "text: \"" << text << "\"";
  }
}

TEST(Llama2cTokenizer, DecodeDropsSpaceAfterBosAndMapsByteTokens) {
  const auto& tok = stories_tokenizer();
  const std::string text = "Once upon a time, Lily saw a \xE2\x98\x83.";
  const auto ids = tok.encode(text, true);
  EXPECT_EQ(tok.decode(ids), text);
  // Without BOS the dummy-prefix space stays: the decode is exactly the merged pieces.
  EXPECT_EQ(tok.decode(tok.encode(text, false)), " " + text);
  EXPECT_EQ(tok.decode_token(3 + 0xE2), "\xE2");
  EXPECT_EQ(tok.decode_token(403), " Once");
  EXPECT_EQ(tok.decode_token(1), "");
  EXPECT_THROW(tok.decode_token(512), Error);
}

TEST(Llama2cTokenizer, RejectsInvalidUtf8NamingTheByte) {
  try {
    stories_tokenizer().encode("ok\xC3(", false);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte 2"), std::string::npos) << e.what();
  }
}

class Llama2cBadFiles : public ::testing::Test {
 protected:
  std::filesystem::path dir_ = std::filesystem::temp_directory_path() /
                               ("hearth_tok_bad_" + std::to_string(::getpid()) + "_" +
                                ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::string real_ = read_file(asset_path("models/stories260K/tok512.bin"));
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  // Writes bytes under `name` and returns the message of the error loading it.
  std::string load_error(const std::string& name, const std::string& bytes) {
    write_file_atomic(dir_ / name, bytes);
    try {
      load_tokenizer(dir_ / name);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
      return e.what();
    }
    ADD_FAILURE() << name << " loaded without error";
    return "";
  }
};

TEST_F(Llama2cBadFiles, TruncatedInsideATokenIsReported) {
  EXPECT_NE(load_error("tokenizer.bin", real_.substr(0, real_.size() - 3)).find("truncated"), std::string::npos);
  EXPECT_NE(load_error("tokenizer.bin", real_.substr(0, 2)).find("max_token_length"), std::string::npos);
}

TEST_F(Llama2cBadFiles, CountDisagreeingWithTheNameIsReported) {
  EXPECT_NE(load_error("tok1024.bin", real_).find("name says 1024"), std::string::npos);
}

TEST_F(Llama2cBadFiles, LengthBeyondMaxTokenLengthIsReported) {
  std::string bytes = real_;
  const int32_t huge = 1 << 20;
  std::memcpy(bytes.data() + 4 + 4, &huge, 4);  // the first token's length
  EXPECT_NE(load_error("tokenizer.bin", bytes).find("length"), std::string::npos);
}

TEST_F(Llama2cBadFiles, MissingByteTokensAreReported) {
  std::string bytes = real_;
  // Token 3 is "<0x00>"; overwrite its text so byte fallback would be wrong.
  const size_t pos = bytes.find("<0x00>");
  ASSERT_NE(pos, std::string::npos);
  bytes.replace(pos, 6, "<0xZZ>");
  EXPECT_NE(load_error("tokenizer.bin", bytes).find("byte piece"), std::string::npos);
}

// Found by fuzz_llama2c_tokenizer: a vocabulary without the " " piece loaded, then failed on the
// first text encoded (every text starts with that dummy-prefix piece).
TEST_F(Llama2cBadFiles, MissingSpacePieceIsReportedAtLoad) {
  std::string bytes = real_;
  const std::string space_entry = std::string("\x01\x00\x00\x00", 4) + " ";  // length 1, then " "
  const size_t pos = bytes.find(space_entry);
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 4] = '\x7f';  // a piece no other token has, so only the space goes missing
  EXPECT_NE(load_error("tokenizer.bin", bytes).find("no \" \" piece"), std::string::npos);
}

}  // namespace
}  // namespace hearth
