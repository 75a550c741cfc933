// The seed's model families beyond Llama and Qwen2: Qwen3 (q/k norms, head_dim independent of
// hidden / heads), Gemma 3 (five sliding-window layers per global one, each kind with its
// own rotary base; q/k norms; norms around attention and MLP scaling by 1 + w; GeGLU; embeddings
// times sqrt(hidden)) and Phi-3 / Phi-4-mini (fused qkv and gate/up, partial rotary, longrope). Presets have the real checkpoints' parameter counts, configs round-trip,
// and tiny models of each structure compute, as GGUF files, what llama.cpp computes on them.
#include <gtest/gtest.h>

#include "core/rng.h"
#include "core/safetensors.h"
#include "inference/fused_projections.h"
#include "inference/gguf_export.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/rope.h"
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
  EXPECT_EQ(preset_config("phi-4-mini").parameter_count(), 3836021760);  // Phi-4-mini-instruct: 3.84B, tied
  EXPECT_EQ(preset_config("phi-4-mini").rotary_dim(), 96);
  // Longrope's attention factor for 4k -> 128k: sqrt(1 + ln 32 / ln 4096).
  EXPECT_NEAR(preset_config("phi-4-mini").rope_attention_factor(), 1.190238, 1e-6);
  EXPECT_EQ(preset_config("phi-4-mini").context_length(), 4096);
  const ModelConfig g = preset_config("gemma3-1b");
  int64_t global = 0;
  for (int64_t l = 0; l < g.num_layers; ++l) global += !g.is_local_layer(l);
  EXPECT_EQ(global, 4);  // layers 5, 11, 17, 23 of 26
  EXPECT_FALSE(g.is_local_layer(5));
  EXPECT_TRUE(g.is_local_layer(6));
}

TEST(ModelFamilies, HfConfigsRoundTripAndRefuseWhatHearthDoesNotCompute) {
  for (const char* arch : {"qwen3-0.6b", "gemma3-270m", "tiny-gemma3", "phi-4-mini", "tiny-phi3"}) {
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

// Phi-4-mini-instruct's config.json as published (keys as its file spells them; factors cut
// to the values that matter here): the fields land where the decoder reads them.
Json phi4_mini_config() {
  Json j = preset_config("phi-4-mini").to_hf_json();
  j.erase("head_dim");
  j.erase("attention_bias");
  j["sliding_window"] = 262144;
  j["pad_token_id"] = 199999;
  j["resid_pdrop"] = 0.0, j["embd_pdrop"] = 0.0, j["attention_dropout"] = 0.0;
  j["lm_head_bias"] = false, j["mlp_bias"] = false;
  return j;
}

TEST(ModelFamilies, Phi3ConfigReadsPartialRotaryAndLongropeAndRefusesWhatHearthDoesNotCompute) {
  const ModelConfig c = ModelConfig::from_hf_json(phi4_mini_config(), "phi-4-mini");
  EXPECT_EQ(c.architecture, Architecture::kPhi3);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rotary_dim(), 96);
  EXPECT_TRUE(c.long_rope.enabled);
  EXPECT_EQ(c.long_rope.original_max_position_embeddings, 4096);
  EXPECT_EQ(c.long_rope.long_factor.size(), 48u);
  EXPECT_FLOAT_EQ(c.long_rope.long_factor.back(), 47.77f);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.to_hf_json(), preset_config("phi-4-mini").to_hf_json());
  // Newer transformers write rope_type and keep the trained length inside rope_scaling.
  Json newer = phi4_mini_config();
  newer["rope_scaling"].erase("type");
  newer["rope_scaling"]["rope_type"] = "longrope";
  newer["rope_scaling"]["original_max_position_embeddings"] = 4096;
  newer.erase("original_max_position_embeddings");
  EXPECT_EQ(ModelConfig::from_hf_json(newer, "newer").long_rope.original_max_position_embeddings, 4096);

  auto refused = [](Json j, const std::string& key, Json value, const std::string& needle) {
    if (value.is_null()) {
      j.erase(key);
    } else {
      j[key] = std::move(value);
    }
    try {
      ModelConfig::from_hf_json(j, "phi");
      ADD_FAILURE() << key << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const Json g = phi4_mini_config();
  refused(g, "sliding_window", 2047, "sliding_window");  // Phi-3-mini-4k's window
  refused(g, "hidden_act", "gelu", "hidden_act");
  refused(g, "attention_bias", true, "attention_bias");
  refused(g, "partial_rotary_factor", 0.7, "even");                  // 89.6 -> 89 dimensions
  refused(g, "partial_rotary_factor", 0.001, "fewer than 2");
  refused(g, "original_max_position_embeddings", nullptr, "original_max_position_embeddings");
  refused(g, "original_max_position_embeddings", 262144, "original_max_position_embeddings");
  Json yarn = g;
  yarn["rope_scaling"]["type"] = "yarn";
  refused(yarn, "hidden_size", 3072, "yarn");
  Json short_list = g;
  short_list["rope_scaling"]["short_factor"] = std::vector<float>(64, 1.0f);  // head_dim / 2, not rotary / 2
  refused(short_list, "hidden_size", 3072, "48 values");
  Json factor = g;
  factor["rope_scaling"]["factor"] = 16.0;  // 131072 / 4096 is 32
  refused(factor, "hidden_size", 3072, "factor");
  refused(g, "head_dim", 96, "hidden_size");  // llama.cpp's phi3 needs heads * head_dim == hidden
}

// Partial rotary with longrope's short factors against a double-precision reading of Hugging
// Face's Phi-3 rotary: inv_freq_i = 1 / (short_i * base^(2i / rot)), cos and sin times the
// attention factor, rotate_half over the first `rot` dimensions, the rest unchanged. fp32
// angles of positions < 512 are within 512 * 2^-24 rad; bound 1e-5.
TEST(ModelFamilies, PartialRotaryWithLongropeMatchesADoubleReference) {
  const ModelConfig c = preset_config("tiny-phi3");
  const int64_t d = c.head_dim, rot = c.rotary_dim(), half = rot / 2, heads = 3, t = 7;
  const double scale = std::sqrt(1.0 + std::log(2048.0 / 512.0) / std::log(512.0));
  EXPECT_NEAR(c.rope_attention_factor(), scale, 1e-12);
  at::Tensor x = at::randn({1, heads, t, d}, make_generator(4), at::kDouble);
  at::Tensor positions = at::tensor({0, 1, 5, 17, 90, 511, 300}, at::kLong).view({1, t});
  const Rope rope(c);
  auto [cos, sin] = rope.angles(positions);
  const at::Tensor ours = rope.apply(x.to(at::kFloat), cos, sin).to(at::kDouble);
  at::Tensor ref = x.clone();
  for (int64_t p = 0; p < t; ++p) {
    const double pos = double(positions[0][p].item<int64_t>());
    for (int64_t i = 0; i < half; ++i) {
      const double inv = 1.0 / (double(c.long_rope.short_factor[i]) * std::pow(c.rope_theta, double(2 * i) / double(rot)));
      const double co = std::cos(pos * inv) * scale, si = std::sin(pos * inv) * scale;
      for (int64_t h = 0; h < heads; ++h) {
        const double a = x[0][h][p][i].item<double>(), b = x[0][h][p][i + half].item<double>();
        ref[0][h][p][i] = a * co - b * si;
        ref[0][h][p][i + half] = b * co + a * si;
      }
    }
  }
  EXPECT_LT((ours - ref).abs().max().item<double>(), 1e-5);
  // The dimensions past the rotary ones pass through exactly.
  EXPECT_TRUE(ours.narrow(-1, rot, d - rot).equal(x.narrow(-1, rot, d - rot).to(at::kFloat).to(at::kDouble)));
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
// window or scale moves logits by tens of percent (phi3 with the long factors instead of the
// short ones: 17%; without longrope's attention factor: 32%).
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

INSTANTIATE_TEST_SUITE_P(Families, TinyFamily, ::testing::Values("tiny-qwen3", "tiny-gemma3", "tiny-phi3"), [](const auto& info) {
  return info.param == "tiny-qwen3" ? std::string("Qwen3") : info.param == "tiny-gemma3" ? std::string("Gemma3") : std::string("Phi3");
});

// Phi-3's folder holds qkv_proj and gate_up_proj as its checkpoints do; the decoder's q, k, v,
// gate and up are row slices of them (views of the mapped file, or of a GGUF block matrix's
// rows).
class Phi3Files : public TinyFamily {};

TEST_P(Phi3Files, FusedTensorsAreWrittenAndSplitByRowsWithoutCopies) {
  auto file = SafetensorsFile::open(dir_ / "hf" / "model.safetensors");
  EXPECT_TRUE(file->contains("model.layers.0.self_attn.qkv_proj.weight"));
  EXPECT_TRUE(file->contains("model.layers.1.mlp.gate_up_proj.weight"));
  EXPECT_FALSE(file->contains("model.layers.0.self_attn.q_proj.weight"));

  ModelSource hf = open_model_source(dir_ / "hf");
  const at::Tensor fused = file->tensor("model.layers.0.self_attn.qkv_proj.weight");
  const at::Tensor q = hf.tensors->get("model.layers.0.self_attn.q_proj.weight");
  const at::Tensor k = hf.tensors->get("model.layers.0.self_attn.k_proj.weight");
  const ModelConfig& c = hf.config;
  EXPECT_EQ(k.data_ptr<float>(), q.data_ptr<float>() + c.num_heads * c.head_dim * c.hidden_size);  // views of one mapping
  EXPECT_TRUE(k.equal(fused.narrow(0, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim)));
  const at::Tensor up = hf.tensors->get("model.layers.1.mlp.up_proj.weight");
  EXPECT_TRUE(up.equal(file->tensor("model.layers.1.mlp.gate_up_proj.weight").narrow(0, c.intermediate_size, c.intermediate_size)));
  // Fusing the split view again gives the file's tensors back.
  const FusedProjectionsView view(*hf.tensors, c);
  const at::Tensor refused = view.get("model.layers.0.self_attn.qkv_proj.weight");
  EXPECT_TRUE(refused.equal(fused));
  EXPECT_EQ(refused.data_ptr(), q.data_ptr());  // the parts' own buffer: written back without a copy
  // Parts from separate buffers are concatenated.
  TensorMap separate;
  for (const char* part : {"q_proj", "k_proj", "v_proj"}) {
    const std::string name = std::string("model.layers.0.self_attn.") + part + ".weight";
    separate.add(name, hf.tensors->get(name).clone());
  }
  EXPECT_TRUE(FusedProjectionsView(separate, c).get("model.layers.0.self_attn.qkv_proj.weight").equal(fused));

  GgufExportOptions q8;
  q8.format = QuantFormat::kQ8_0;
  write_gguf_model(dir_ / "q8.gguf", hf.config, *hf.tensors, nullptr, hf.tokenizer, q8);
  // Each part of the Q8_0 file's fused matrices holds exactly the blocks of that part quantized
  // on its own (Q8_0 blocks run along a row, so rows slice without touching their neighbours).
  LoadedModel g = load_model(dir_ / "q8.gguf", LoadOptions{});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    DecoderLayer& layer = g.decoder->layers()[l];
    for (const auto& [name, linear] : layer.projections()) {
      ASSERT_TRUE(linear->is_quantized()) << name;
      const std::string section = std::string(name) == "gate_proj" || std::string(name) == "up_proj" || std::string(name) == "down_proj" ? "mlp." : "self_attn.";
      const at::Tensor w = hf.tensors->get("model.layers." + std::to_string(l) + "." + section + name + ".weight");
      EXPECT_TRUE(dequantize_matrix(*linear->quantized_weight()).equal(dequantize_matrix(quantize_matrix(w, QuantFormat::kQ8_0))))
          << l << " " << name;
    }
  }
}

// The decoder refuses positions where longrope would switch to its long factors.
TEST_P(Phi3Files, PositionsBeyondTheShortFactorsAreRefused) {
  LoadedModel m = load_model(dir_ / "hf", LoadOptions{});
  at::NoGradGuard no_grad;
  ForwardInput in;
  in.tokens = at::ones({1, 2}, at::kLong);
  in.positions = at::tensor({510, 512}, at::kLong).view({1, 2});
  EXPECT_THROW(m.decoder->forward(in), Error);
  in.positions = at::tensor({510, 511}, at::kLong).view({1, 2});
  EXPECT_NO_THROW(m.decoder->forward(in));
}

INSTANTIATE_TEST_SUITE_P(Families, Phi3Files, ::testing::Values("tiny-phi3"), [](const auto&) { return std::string("Phi3"); });

}  // namespace
}  // namespace hearth
