// GGUF models in Hearth: stories260K written as GGUF (F32, Q8_0, Q4_0) loads mapped and computes
// what the llama2.c file computes; tokenizers in GGUF metadata give the ids of the files they came
// from; fingerprints tell bases apart.
#include <gtest/gtest.h>

#include "core/assets.h"
#include "core/atomic_file.h"
#include "inference/gguf_export.h"
#include "inference/gguf_model.h"
#include "inference/gguf_tokenizer.h"
#include "inference/model_loader.h"
#include "inference/perplexity.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/tokenizer/bpe_tokenizer.h"
#include "test_helpers.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

class GgufStories : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing::fresh_temp_dir("gguf_stories"));
    ModelSource source = open_model_source(testing::stories260k_dir());
    for (const char* type : {"f32", "q8_0", "q4_0"}) {
      GgufExportOptions options;
      if (std::string(type) != "f32") options.format = parse_any_quant_format(type);
      write_gguf_model(*dir_ / (std::string(type) + ".gguf"), source.config, *source.tensors, nullptr, source.tokenizer, options);
    }
    reference_ = new LoadedModel(load_model(testing::stories260k_dir(), LoadOptions{}));
    // The first 300 lines of the in-domain held-out text: enough windows to compare perplexities.
    const std::string text = read_file(asset_path("data/tinystories/valid_a.txt"));
    size_t cut = 0;
    for (int lines = 0; lines < 300 && cut != std::string::npos; ++lines) cut = text.find('\n', cut + 1);
    text_ = new std::string(text.substr(0, cut));
  }
  static void TearDownTestSuite() {
    delete reference_;
    delete text_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  static double ppl(const LoadedModel& m) {
    return evaluate_perplexity(*m.decoder, perplexity_token_stream(*m.tokenizer, *text_), 256).perplexity;
  }
  static fs::path* dir_;
  static LoadedModel* reference_;
  static std::string* text_;
};
fs::path* GgufStories::dir_ = nullptr;
LoadedModel* GgufStories::reference_ = nullptr;
std::string* GgufStories::text_ = nullptr;

TEST_F(GgufStories, F32ComputesWhatTheLlama2cFileComputes) {
  LoadedModel g = load_model(*dir_ / "f32.gguf", LoadOptions{});
  EXPECT_EQ(g.format, "gguf");
  const ModelConfig& c = g.decoder->config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_TRUE(c.rope_interleaved);  // llama.cpp's llama layout, used as stored
  // The same logits (q/k rows reordered and rotated in the matching layout: float rounding only).
  at::Tensor tokens = at::tensor({1, 403, 407, 261, 378, 432, 383}, at::kLong).view({1, -1});
  ForwardInput in;
  in.tokens = tokens;
  const at::Tensor a = reference_->decoder->forward(in), b = g.decoder->forward(in);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-4 * a.abs().max().item<double>());
  // Perplexity within 0.1% (the bar; measured equal to 1e-6).
  const double p_ref = ppl(*reference_), p = ppl(g);
  EXPECT_NEAR(p / p_ref, 1.0, 1e-3) << p << " vs " << p_ref;
}

TEST_F(GgufStories, QuantizedTypesAreMappedAndStayClose) {
  const double p_ref = ppl(*reference_);
  for (const char* type : {"q8_0", "q4_0"}) {
    LoadedModel g = load_model(*dir_ / (std::string(type) + ".gguf"), LoadOptions{});
    // Projections whose rows are whole blocks are the file's own blocks, not copies.
    const Linear& q = g.decoder->layers()[0].q;
    ASSERT_TRUE(q.is_quantized()) << type;
    EXPECT_EQ(quant_format_name(q.quantized_weight()->format), std::string(type));
    // down_proj's rows (172) are not whole blocks: written F16 (llama.cpp's fallback).
    EXPECT_EQ(g.decoder->layers()[0].down.quantized_weight()->format, QuantFormat::kF16);
    const double p = ppl(g);
    // Q8_0 moves perplexity by well under 1%. Q4_0 holds Hearth's int4 codes (here the embedding
    // table too): +9.5% on these lines, as int4 is +9.6% on the whole file (docs/quantization.md);
    // stories260K's 64-wide rows make 4-bit costly. The floor is the docs' 12%.
    EXPECT_NEAR(p / p_ref, 1.0, std::string(type) == "q8_0" ? 0.01 : 0.12) << type << ": " << p << " vs " << p_ref;
  }
}

TEST_F(GgufStories, SentencePieceTokenizerGivesTheLlama2cIds) {
  LoadedModel g = load_model(*dir_ / "f32.gguf", LoadOptions{});
  size_t start = 0;
  int lines = 0;
  while (start < text_->size()) {
    size_t end = text_->find('\n', start);
    if (end == std::string::npos) end = text_->size();
    const std::string line = text_->substr(start, end - start);
    ASSERT_EQ(g.tokenizer->encode(line, true), reference_->tokenizer->encode(line, true)) << line;
    ++lines;
    start = end + 1;
  }
  EXPECT_GT(lines, 250);
  EXPECT_EQ(g.tokenizer->decode({1, 403, 407, 261}), reference_->tokenizer->decode({1, 403, 407, 261}));
}

TEST_F(GgufStories, FingerprintsTellBasesApart) {
  const std::string f32 = open_model_source(*dir_ / "f32.gguf").fingerprint();
  EXPECT_EQ(f32, open_model_source(*dir_ / "f32.gguf").fingerprint());
  EXPECT_NE(f32, open_model_source(*dir_ / "q8_0.gguf").fingerprint());
  EXPECT_NE(f32, reference_->fingerprint);
}

// Byte-level BPE tokenizers written into GGUF metadata and read back give the ids of the
// tokenizer.json they came from, on the shared corpora (the chat template comes along).
TEST(GgufTokenizer, ByteLevelBpeRoundTripsThroughGgufMetadata) {
  const fs::path dir = testing::fresh_temp_dir("gguf_tok");
  std::string text = read_file(asset_path("data/wikitext2/wiki.test.raw")).substr(0, 200000);
  text += read_file(asset_path("data/jane_austen/emma.txt")).substr(0, 100000);
  text += "Ünïcödé, 数字 12345, emoji 🙂, <|im_start|>user\nhi<|im_end|>";
  for (const char* name : {"qwen3", "llama3"}) {
    const fs::path json = asset_path(std::string("tokenizers/") + name + "/tokenizer.json");
    auto original = BpeTokenizer::load(json);
    GgufWriter w;
    write_gguf_tokenizer(w, nullptr, json, original->vocab_size());
    w.write(dir / "tok.gguf");
    auto f = GgufFile::open(dir / "tok.gguf");
    auto loaded = load_gguf_tokenizer(*f);
    EXPECT_EQ(loaded->vocab_size(), original->vocab_size()) << name;
    EXPECT_EQ(loaded->encode(text, true), original->encode(text, true)) << name;
    EXPECT_EQ(loaded->eos_id(), original->eos_id()) << name;
    EXPECT_EQ(loaded->bos_id(), original->bos_id()) << name;
    ASSERT_NE(loaded->chat_template(), nullptr) << name;
    const std::vector<ChatMessage> chat = {{"user", "Hello"}};
    EXPECT_EQ(loaded->chat_template()->render(chat, true), original->chat_template()->render(chat, true)) << name;
  }
  fs::remove_all(dir);
}

TEST(GgufModel, ArchitectureMappingNamesBothWays) {
  EXPECT_EQ(*gguf_to_hf_name("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
  EXPECT_EQ(*hf_to_gguf_name("model.layers.3.mlp.down_proj.weight"), "blk.3.ffn_down.weight");
  EXPECT_EQ(*hf_to_gguf_name("lm_head.weight"), "output.weight");
  // q/k norms are Qwen3's and Gemma 3's; Gemma's ffn_norm is its pre-MLP norm.
  EXPECT_FALSE(gguf_to_hf_name("blk.0.attn_q_norm.weight").has_value());
  EXPECT_EQ(*gguf_to_hf_name("blk.0.attn_q_norm.weight", Architecture::kQwen3), "model.layers.0.self_attn.q_norm.weight");
  EXPECT_EQ(*gguf_to_hf_name("blk.1.ffn_norm.weight", Architecture::kGemma3), "model.layers.1.pre_feedforward_layernorm.weight");
  EXPECT_EQ(*hf_to_gguf_name("model.layers.1.post_attention_layernorm.weight", Architecture::kGemma3), "blk.1.post_attention_norm.weight");
  EXPECT_EQ(*hf_to_gguf_name("model.layers.1.post_attention_layernorm.weight"), "blk.1.ffn_norm.weight");
  EXPECT_NE(gguf_architecture("gemma3"), nullptr);
  // Phi-3's fused projections: attn_qkv, and ffn_up holding gate then up.
  ASSERT_NE(gguf_architecture("phi3"), nullptr);
  EXPECT_EQ(*gguf_to_hf_name("blk.2.attn_qkv.weight", Architecture::kPhi3), "model.layers.2.self_attn.qkv_proj.weight");
  EXPECT_EQ(*hf_to_gguf_name("model.layers.2.mlp.gate_up_proj.weight", Architecture::kPhi3), "blk.2.ffn_up.weight");
  EXPECT_FALSE(gguf_to_hf_name("blk.2.attn_q.weight", Architecture::kPhi3).has_value());
  EXPECT_EQ(gguf_architecture("phi2"), nullptr);
}

}  // namespace
}  // namespace hearth
