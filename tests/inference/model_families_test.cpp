// The seed's model families beyond Llama and Qwen2: Qwen3 (q/k norms, head_dim independent of
// hidden / heads) and Gemma 3 (five sliding-window layers per global one, each kind with its
// own rotary base; q/k norms; norms around attention and MLP scaling by 1 + w; GeGLU; embeddings
// times sqrt(hidden)). Presets have the real checkpoints' parameter counts, configs round-trip,
// and tiny models of each structure compute, as GGUF files, what llama.cpp computes on them.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "inference/gguf_export.h"
#include "inference/model_files.h"
#include "inference/model_loader.h"
#include "llama_cpp_peer.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

TEST(ModelFamilies, PresetParameterCountsMatchTheRealCheckpoints) {
  EXPECT_EQ(preset_config("qwen3-0.6b").parameter_count(), 596049920);   // Qwen3-0.6B: 0.6B, 0.44B without embeddings
  EXPECT_EQ(preset_config("gemma3-270m").parameter_count(), 268098176);  // gemma-3-270m: 268M
  EXPECT_EQ(preset_config("gemma3-1b").parameter_count(), 999885952);    // gemma-3-1b-pt: 1.0B
  const ModelConfig g = preset_config("gemma3-1b");
  int64_t global = 0;
  for (int64_t l = 0; l < g.num_layers; ++l) global += !g.is_local_layer(l);
  EXPECT_EQ(global, 4);  // layers 5, 11, 17, 23 of 26
  EXPECT_FALSE(g.is_local_layer(5));
  EXPECT_TRUE(g.is_local_layer(6));
}

TEST(ModelFamilies, HfConfigsRoundTripAndRefuseWhatHearthDoesNotCompute) {
  for (const char* arch : {"qwen3-0.6b", "gemma3-270m", "tiny-gemma3"}) {
    const ModelConfig c = preset_config(arch);
    const ModelConfig back = ModelConfig::from_hf_json(c.to_hf_json(), arch);
    EXPECT_EQ(back.to_hf_json(), c.to_hf_json()) << arch;
    EXPECT_EQ(back.parameter_count(), c.parameter_count()) << arch;
  }
  Json g = preset_config("gemma3-270m").to_hf_json();
  g.erase("sliding_window_pattern");
  g.erase("tie_word_embeddings");  // Gemma 3's default: tied
  g["layer_types"] = Json::array();
  for (int l = 0; l < 18; ++l) g["layer_types"].push_back(l % 6 == 5 ? "full_attention" : "sliding_attention");
  const ModelConfig parsed = ModelConfig::from_hf_json(g, "gemma");
  EXPECT_EQ(parsed.sliding_window_pattern, 6);
  EXPECT_TRUE(parsed.tie_word_embeddings);
  auto refused = [](Json j, const std::string& key, Json value) {
    j[key] = std::move(value);
    EXPECT_THROW(ModelConfig::from_hf_json(j, "gemma"), Error) << key;
  };
  refused(g, "final_logit_softcapping", 30.0);
  refused(g, "query_pre_attn_scalar", 224);
  refused(g, "hidden_activation", "relu");
  Json swapped = g;
  swapped["layer_types"][0] = "full_attention";
  EXPECT_THROW(ModelConfig::from_hf_json(swapped, "gemma"), Error);
}

// A tiny model of `arch` with weights that exercise every part: N(0, 0.1) matrices and norms
// away from 1 (N(0, 0.3) around the stored unit), as a Hugging Face folder and an F32 GGUF.
class TinyFamily : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("family_" + GetParam());
    init_random_model(GetParam(), 11, dir_ / "init");
    ModelSource init = open_model_source(dir_ / "init");
    TensorMap weights;
    at::Generator gen = make_generator(23);
    for (const std::string& name : init.tensors->names()) {
      at::Tensor t = init.tensors->get(name).to(at::kFloat);
      if (t.dim() == 2) t = t * 5.0;
      if (t.dim() == 1) t = t + at::normal(0.0, 0.3, t.sizes(), gen);
      weights.add(name, t);
    }
    fs::create_directories(dir_ / "hf");
    write_hf_files(dir_ / "hf", init.config, weights, init.tokenizer_files, at::kFloat);
    ModelSource hf = open_model_source(dir_ / "hf");
    write_gguf_model(gguf(), hf.config, *hf.tensors, nullptr, hf.tokenizer, GgufExportOptions{});
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path gguf() const { return dir_ / "model.gguf"; }

  static at::Tensor logits(const LoadedModel& m, const std::vector<int32_t>& tokens) {
    at::NoGradGuard no_grad;
    ForwardInput in;
    in.tokens = at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), at::kLong).view({1, -1});
    return m.decoder->forward(in)[0];
  }
  // Longer than tiny-gemma3's window of 4, so local and global layers see different keys.
  const std::vector<int32_t> prompt_ = {1, 17, 300, 45, 99, 250, 7, 412, 8, 33, 160, 501};
  fs::path dir_;
};

double relative_gap(const at::Tensor& a, const at::Tensor& b) { return ((a - b).abs().max() / a.abs().max()).item<double>(); }

// The GGUF (norms stored as llama.cpp's converter writes them) computes what the folder does,
// and decoding one token at a time through the cache (a local layer reading the last `window`
// cached keys) computes what the whole sequence does.
TEST_P(TinyFamily, GgufAndCachedDecodeComputeWhatTheFolderComputes) {
  LoadedModel hf = load_model(dir_ / "hf", LoadOptions{}), g = load_model(gguf(), LoadOptions{});
  // The GGUF's metadata describe the same decoder (eps is stored as float32 there).
  Json a = g.decoder->config().to_hf_json(), b = hf.decoder->config().to_hf_json();
  for (Json* j : {&a, &b}) j->erase("rms_norm_eps"), j->erase("bos_token_id");
  EXPECT_EQ(a, b);
  const at::Tensor full = logits(hf, prompt_);
  // The same operations on the same float weights: rounding only (measured 0).
  EXPECT_LT(relative_gap(full, logits(g, prompt_)), 1e-5);

  at::InferenceMode inference;
  KVCache cache(hf.decoder->config(), 1, 64);
  std::vector<at::Tensor> rows;
  for (int32_t t : prompt_) {
    ForwardInput in;
    in.tokens = at::tensor({int64_t(t)}, at::kLong).view({1, 1});
    in.cache = &cache;
    rows.push_back(hf.decoder->forward(in)[0][0]);
  }
  // Fused one-position kernels against the batched ATen path: summation order only.
  EXPECT_LT(relative_gap(full, at::stack(rows)), 1e-5);
}

// llama.cpp (node-llama-cpp's CPU build) on the GGUF: the prompt's logits, and the logits of its
// own greedy continuation (decoded through its KV cache, sliding-window cells included) against
// Hearth's on the same tokens. Bounds: llama.cpp keeps K and V in half precision (2^-11
// relative) and its GELU reads a half-precision table (input rounded to 2^-11): measured
// 1e-3 (qwen3) and 2e-3 (gemma3) of the largest logit; bound 6e-3. A wrong norm, rotary base,
// window or scale moves logits by tens of percent.
TEST_P(TinyFamily, LlamaCppComputesTheSameLogits) {
  ASSERT_TRUE(testing::peer_installed()) << "the llama.cpp peer is not installed: run bash scripts/peer/llama_cpp.sh npm";
  LoadedModel m = load_model(gguf(), LoadOptions{});
  const Json peer = testing::llama_cpp(gguf(), prompt_, 8);
  const double prompt_gap = testing::relative_logit_gap(logits(m, prompt_), peer);
  std::vector<int32_t> continued = prompt_;
  for (int32_t t : peer.at("greedy").get<std::vector<int32_t>>()) continued.push_back(t);
  // greedy_logits[s] follow greedy[s], at position prompt + s of the continued sequence.
  const at::Tensor ours = logits(m, continued).narrow(0, int64_t(prompt_.size()), 8);
  const double greedy_gap = relative_gap(ours, testing::peer_logits(peer.at("greedy_logits")));
  EXPECT_LT(prompt_gap, 6e-3);
  EXPECT_LT(greedy_gap, 6e-3);
  std::printf("[ figures  ] %s: max logit gap to llama.cpp %.2e (prompt), %.2e (its greedy continuation)\n", GetParam().c_str(),
              prompt_gap, greedy_gap);
}

INSTANTIATE_TEST_SUITE_P(Families, TinyFamily, ::testing::Values("tiny-qwen3", "tiny-gemma3"),
                         [](const auto& info) { return info.param == "tiny-qwen3" ? std::string("Qwen3") : std::string("Gemma3"); });

}  // namespace
}  // namespace hearth
