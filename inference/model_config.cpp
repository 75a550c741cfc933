#include "inference/model_config.h"

#include <cmath>

namespace hearth {
namespace {

constexpr int64_t kMaxDimension = 1 << 20;

int64_t positive(const Json& j, const std::string& key, const std::string& what) {
  int64_t v = json_get<int64_t>(j, key, what);
  require(v > 0 && v <= (int64_t(1) << 31), ErrorCode::kCorruptFile, what + ": \"" + key + "\" must be positive, got " + std::to_string(v));
  return v;
}

// eos_token_id may be an int or a list of ints (Llama 3.1+); the first one is kept.
int64_t token_id(const Json& j, const std::string& key) {
  if (!j.contains(key) || j[key].is_null()) return -1;
  if (j[key].is_number_integer()) return j[key].get<int64_t>();
  if (j[key].is_array() && !j[key].empty() && j[key][0].is_number_integer()) return j[key][0].get<int64_t>();
  return -1;
}

}  // namespace

ModelConfig ModelConfig::from_hf_json(const Json& j, const std::string& what) {
  require(j.is_object(), ErrorCode::kCorruptFile, what + " is not a JSON object");
  ModelConfig c;
  std::string arch;
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    arch = j["architectures"][0].get<std::string>();
  } else {
    arch = json_get_or<std::string>(j, "model_type", "", what);
  }
  if (arch == "LlamaForCausalLM" || arch == "llama") {
    c.architecture = Architecture::kLlama;
  } else if (arch == "Qwen2ForCausalLM" || arch == "qwen2") {
    c.architecture = Architecture::kQwen2;
    c.attention_bias = true;
  } else {
    fail(ErrorCode::kUnsupported, what + ": architecture \"" + arch + "\" is not supported (LlamaForCausalLM, Qwen2ForCausalLM)");
  }
  c.hidden_size = positive(j, "hidden_size", what);
  c.intermediate_size = positive(j, "intermediate_size", what);
  c.num_layers = positive(j, "num_hidden_layers", what);
  c.num_heads = positive(j, "num_attention_heads", what);
  c.num_kv_heads = j.contains("num_key_value_heads") ? positive(j, "num_key_value_heads", what) : c.num_heads;
  c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? positive(j, "head_dim", what) : c.hidden_size / c.num_heads;
  c.vocab_size = positive(j, "vocab_size", what);
  c.max_position_embeddings = json_get_or<int64_t>(j, "max_position_embeddings", 2048, what);
  c.rms_norm_eps = json_get_or<double>(j, "rms_norm_eps", 1e-6, what);
  c.rope_theta = json_get_or<double>(j, "rope_theta", 10000.0, what);
  c.tie_word_embeddings = json_get_or<bool>(j, "tie_word_embeddings", false, what);
  if (c.architecture == Architecture::kLlama) c.attention_bias = json_get_or<bool>(j, "attention_bias", false, what);
  c.rope_interleaved = json_get_or<bool>(j, "hearth_rope_interleaved", false, what);
  if (j.contains("hearth_rope_freq_factors")) c.rope_freq_factors = json_get<std::vector<float>>(j, "hearth_rope_freq_factors", what);
  c.bos_token_id = token_id(j, "bos_token_id");
  c.eos_token_id = token_id(j, "eos_token_id");
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const Json& rs = j["rope_scaling"];
    std::string type = rs.contains("rope_type") ? json_get<std::string>(rs, "rope_type", what + " rope_scaling")
                                                : json_get_or<std::string>(rs, "type", "", what + " rope_scaling");
    require(type == "llama3", ErrorCode::kUnsupported, what + ": rope_scaling type \"" + type + "\" is not supported (llama3)");
    c.rope_scaling.enabled = true;
    c.rope_scaling.factor = json_get<double>(rs, "factor", what + " rope_scaling");
    c.rope_scaling.low_freq_factor = json_get<double>(rs, "low_freq_factor", what + " rope_scaling");
    c.rope_scaling.high_freq_factor = json_get<double>(rs, "high_freq_factor", what + " rope_scaling");
    c.rope_scaling.original_max_position_embeddings =
        json_get<int64_t>(rs, "original_max_position_embeddings", what + " rope_scaling");
  }
  c.validate(what);
  return c;
}

void ModelConfig::validate(const std::string& what) const {
  auto check = [&](bool ok, const std::string& message) { require(ok, ErrorCode::kCorruptFile, what + ": " + message); };
  check(hidden_size > 0 && hidden_size <= kMaxDimension, "hidden_size out of range");
  check(intermediate_size > 0 && intermediate_size <= kMaxDimension * 4, "intermediate_size out of range");
  check(num_layers > 0 && num_layers <= 1024, "num_hidden_layers out of range");
  check(num_heads > 0 && num_kv_heads > 0 && num_heads % num_kv_heads == 0,
        "num_attention_heads (" + std::to_string(num_heads) + ") must be a multiple of num_key_value_heads (" +
            std::to_string(num_kv_heads) + ")");
  check(head_dim > 0 && head_dim % 2 == 0 && head_dim <= 1024, "head_dim must be even and at most 1024");
  check(vocab_size > 0 && vocab_size <= (int64_t(1) << 24), "vocab_size out of range");
  check(max_position_embeddings > 0, "max_position_embeddings must be positive");
  check(rms_norm_eps > 0 && rms_norm_eps < 1, "rms_norm_eps out of range");
  check(rope_theta > 0, "rope_theta must be positive");
  check(!rope_scaling.enabled || (rope_scaling.factor > 0 && rope_scaling.high_freq_factor > rope_scaling.low_freq_factor),
        "rope_scaling factors out of range");
  check(rope_freq_factors.empty() || static_cast<int64_t>(rope_freq_factors.size()) == head_dim / 2,
        "rope frequency factors must number head_dim / 2");
  for (float f : rope_freq_factors) check(std::isfinite(f) && f > 0, "rope frequency factors must be positive");
}

Json ModelConfig::to_hf_json() const {
  Json j;
  j["architectures"] = {architecture == Architecture::kQwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = architecture == Architecture::kQwen2 ? "qwen2" : "llama";
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_layers;
  j["num_attention_heads"] = num_heads;
  j["num_key_value_heads"] = num_kv_heads;
  j["head_dim"] = head_dim;
  j["vocab_size"] = vocab_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_act"] = "silu";
  if (architecture == Architecture::kLlama) j["attention_bias"] = attention_bias;
  if (rope_interleaved) j["hearth_rope_interleaved"] = true;
  if (!rope_freq_factors.empty()) j["hearth_rope_freq_factors"] = rope_freq_factors;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  if (rope_scaling.enabled) {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_scaling.factor},
                         {"low_freq_factor", rope_scaling.low_freq_factor},
                         {"high_freq_factor", rope_scaling.high_freq_factor},
                         {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["torch_dtype"] = "bfloat16";
  return j;
}

int64_t ModelConfig::parameter_count() const {
  const int64_t q = num_heads * head_dim, kv = num_kv_heads * head_dim;
  int64_t attn = hidden_size * q * 2 + hidden_size * kv * 2;
  if (attention_bias) attn += q + 2 * kv;
  const int64_t mlp = 3 * hidden_size * intermediate_size;
  const int64_t per_layer = attn + mlp + 2 * hidden_size;
  int64_t total = num_layers * per_layer + vocab_size * hidden_size + hidden_size;
  if (!tie_word_embeddings) total += vocab_size * hidden_size;
  return total;
}

std::string ModelConfig::architecture_name() const {
  return architecture == Architecture::kQwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
}

}  // namespace hearth
