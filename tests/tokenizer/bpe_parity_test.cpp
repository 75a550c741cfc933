// BPE parity with the reference JavaScript tokenizer (@lenml/tokenizers) on whole real texts,
// for the real tokenizers (byte-level Llama 3, Qwen3 and GPT-4o's o200k, whose pre-tokenizer
// keeps only its regex's matches; SentencePiece-style Gemma 3), and exact round trips.
#include <chrono>

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "reference_outputs.h"

namespace hearth {
namespace {

using test::read_reference;
using test::shared_tokenizer;

// The reference encodes each document whole, without special tokens added.
void expect_document_parity(const std::string& tokenizer_name, const std::string& corpus) {
  const Json ref = read_reference(tokenizer_name + "." + corpus + ".json");
  if (ref.is_null()) return;
  const std::string text = read_file(asset_path(ref.at("source").get<std::string>()));
  const Tokenizer& tok = shared_tokenizer(tokenizer_name);
  const auto started = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto expected = ref.at("ids").at(0).get<std::vector<int32_t>>();
  ASSERT_EQ(ids.size(), expected.size()) << tokenizer_name << " " << corpus;
  for (size_t i = 0; i < ids.size(); ++i) {
    ASSERT_EQ(ids[i], expected[i]) << tokenizer_name << " " << corpus << ": first difference at token " << i
                                   << " (decodes to \"" << tok.decode_token(expected[i]) << "\" in the reference)";
  }
  EXPECT_EQ(tok.decode(ids), text) << "round trip of " << corpus;
  std::printf("%s %s: %zu bytes -> %zu tokens in %.3f s\n", tokenizer_name.c_str(), corpus.c_str(), text.size(),
              ids.size(), seconds);
}

// Each persona conversation is encoded on its own; the reference carries the texts it encoded.
void expect_persona_parity(const std::string& name) {
  const Json ref = read_reference(name + ".persona_chat.json");
  if (ref.is_null()) return;
  const Tokenizer& tok = shared_tokenizer(name);
  const auto& texts = ref.at("texts");
  const auto& ids = ref.at("ids");
  ASSERT_EQ(texts.size(), ids.size());
  ASSERT_GE(texts.size(), 900u) << "the persona corpus should hold about 1,000 conversations";
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string text = texts[i].get<std::string>();
    const std::vector<int32_t> got = tok.encode(text, false);
    ASSERT_EQ(got, ids[i].get<std::vector<int32_t>>()) << "conversation " << i << ": " << text.substr(0, 80);
    ASSERT_EQ(tok.decode(got), text) << "round trip of conversation " << i;
  }
}

// The chat renders hold special tokens written as text; they must encode to their ids.
void expect_chat_render_parity(const std::string& name) {
  const Json ref = read_reference(name + ".chat.json");
  if (ref.is_null()) return;
  const Tokenizer& tok = shared_tokenizer(name);
  for (const Json& c : ref.at("conversations")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(tok.encode(text, false), c.at("ids").get<std::vector<int32_t>>()) << text;
  }
}

class BpeParity : public ::testing::TestWithParam<std::string> {};

// One test per tokenizer, so the (second-long) vocabulary load is paid once per process.
TEST_P(BpeParity, AllReferenceTextsMatch) {
  expect_document_parity(GetParam(), "wikitext2");
  expect_document_parity(GetParam(), "persuasion");
  expect_persona_parity(GetParam());
  if (GetParam() != "gpt4o") expect_chat_render_parity(GetParam());  // GPT-4o's files have no chat template
}

INSTANTIATE_TEST_SUITE_P(RealTokenizers, BpeParity, ::testing::Values("llama3", "qwen3", "gemma3", "gpt4o"));

}  // namespace
}  // namespace hearth
