#include "fuzz/seed_models.h"

#include <cstring>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "fuzz/input_parts.h"

namespace hearth::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kHidden = 16, kHeads = 2, kKvHeads = 1, kHeadDim = 8, kMlp = 32, kVocab = 32, kContext = 8;

at::Tensor corner(const at::Tensor& t, int64_t rows, int64_t cols) {
  return t.narrow(0, 0, rows).narrow(1, 0, cols).to(at::kFloat).contiguous();
}

at::Tensor corner(const at::Tensor& t, int64_t n) { return t.narrow(0, 0, n).to(at::kFloat).contiguous(); }

void append_floats(std::string& out, const at::Tensor& t) {
  const at::Tensor c = t.to(at::kFloat).contiguous();
  out.append(static_cast<const char*>(c.data_ptr()), c.numel() * sizeof(float));
}

}  // namespace

SmallModel small_real_model(const TensorSource& stories, Architecture architecture) {
  SmallModel m;
  ModelConfig& c = m.config;
  c.architecture = architecture;
  c.attention_bias = architecture == Architecture::kQwen2;
  c.hidden_size = kHidden, c.intermediate_size = kMlp, c.num_layers = 1, c.num_heads = kHeads, c.num_kv_heads = kKvHeads;
  c.head_dim = kHeadDim, c.vocab_size = kVocab, c.max_position_embeddings = kContext, c.tie_word_embeddings = true;
  c.bos_token_id = 1, c.eos_token_id = 2;
  c.validate("small real model");
  const std::string s = "model.layers.0.", attn = s + "self_attn.", mlp = s + "mlp.";
  m.tensors.add("model.embed_tokens.weight", corner(stories.get("model.embed_tokens.weight"), kVocab, kHidden));
  m.tensors.add(s + "input_layernorm.weight", corner(stories.get(s + "input_layernorm.weight"), kHidden));
  m.tensors.add(s + "post_attention_layernorm.weight", corner(stories.get(s + "post_attention_layernorm.weight"), kHidden));
  m.tensors.add(attn + "q_proj.weight", corner(stories.get(attn + "q_proj.weight"), kHeads * kHeadDim, kHidden));
  m.tensors.add(attn + "k_proj.weight", corner(stories.get(attn + "k_proj.weight"), kKvHeads * kHeadDim, kHidden));
  m.tensors.add(attn + "v_proj.weight", corner(stories.get(attn + "v_proj.weight"), kKvHeads * kHeadDim, kHidden));
  m.tensors.add(attn + "o_proj.weight", corner(stories.get(attn + "o_proj.weight"), kHidden, kHeads * kHeadDim));
  m.tensors.add(mlp + "gate_proj.weight", corner(stories.get(mlp + "gate_proj.weight"), kMlp, kHidden));
  m.tensors.add(mlp + "up_proj.weight", corner(stories.get(mlp + "up_proj.weight"), kMlp, kHidden));
  m.tensors.add(mlp + "down_proj.weight", corner(stories.get(mlp + "down_proj.weight"), kHidden, kMlp));
  m.tensors.add("model.norm.weight", corner(stories.get("model.norm.weight"), kHidden));
  if (c.attention_bias) {
    const at::Tensor norm = stories.get(s + "input_layernorm.weight");
    m.tensors.add(attn + "q_proj.bias", corner(norm, kHeads * kHeadDim) - 1);
    m.tensors.add(attn + "k_proj.bias", corner(norm, kKvHeads * kHeadDim) - 1);
    m.tensors.add(attn + "v_proj.bias", corner(norm, kKvHeads * kHeadDim) - 1);
  }
  return m;
}

std::string llama2c_bytes(const SmallModel& model) {
  const ModelConfig& c = model.config;
  const int32_t header[7] = {int32_t(c.hidden_size), int32_t(c.intermediate_size), int32_t(c.num_layers), int32_t(c.num_heads),
                             int32_t(c.num_kv_heads), int32_t(c.vocab_size), int32_t(c.max_position_embeddings)};
  std::string out(reinterpret_cast<const char*>(header), sizeof header);
  const std::string s = "model.layers.0.", attn = s + "self_attn.", mlp = s + "mlp.";
  for (const std::string& name :
       {std::string("model.embed_tokens.weight"), s + "input_layernorm.weight", attn + "q_proj.weight", attn + "k_proj.weight",
        attn + "v_proj.weight", attn + "o_proj.weight", s + "post_attention_layernorm.weight", mlp + "gate_proj.weight",
        mlp + "down_proj.weight", mlp + "up_proj.weight", std::string("model.norm.weight")}) {
    append_floats(out, model.tensors.get(name));
  }
  // The precomputed rotary tables (cos, then sin), which the reader skips.
  const at::Tensor angles = at::arange(c.max_position_embeddings * c.head_dim / 2, at::kFloat) * 0.01;
  append_floats(out, angles.cos());
  append_floats(out, angles.sin());
  return out;
}

std::string folder_seed(const fs::path& dir) {
  std::string out = read_file(dir / "config.json");
  if (fs::exists(dir / "model.safetensors")) return out + std::string(kPartSeparator) + read_file(dir / "model.safetensors");
  out += std::string(kPartSeparator) + read_file(dir / "model.safetensors.index.json");
  for (int shard = 1; fs::exists(dir / ("model-0000" + std::to_string(shard) + ".safetensors")); ++shard) {
    out += std::string(kPartSeparator) + read_file(dir / ("model-0000" + std::to_string(shard) + ".safetensors"));
  }
  return out;
}

void write_sharded_folder(const SmallModel& model, const fs::path& dir) {
  fs::create_directories(dir);
  SafetensorsWriter shards[2];
  Json weight_map = Json::object();
  int i = 0;
  for (const std::string& name : model.tensors.names()) {
    const int shard = i++ % 2;
    shards[shard].add(name, model.tensors.get(name));
    weight_map[name] = "model-0000" + std::to_string(shard + 1) + ".safetensors";
  }
  shards[0].write(dir / "model-00001.safetensors");
  shards[1].write(dir / "model-00002.safetensors");
  write_file_atomic(dir / "model.safetensors.index.json", Json{{"metadata", Json::object()}, {"weight_map", weight_map}}.dump(2));
  write_file_atomic(dir / "config.json", model.config.to_hf_json().dump(2));
}

}  // namespace hearth::fuzz
