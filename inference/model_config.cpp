#include "inference/model_config.h"

#include <cmath>

#include "core/range_check.h"

namespace hearth {
namespace {

constexpr int64_t kMaxDimension = 1 << 20;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxHeadDim = 1024;
constexpr int64_t kMaxVocab = int64_t(1) << 24;
constexpr int64_t kMaxPositions = int64_t(1) << 24;
constexpr double kMaxRopeTheta = 1e12;
constexpr double kMaxRopeFactor = 1e6;

// eos_token_id may be an int or a list of ints (Llama 3.1+); the first one is kept. Absent or
// null: -1. Anything else (a float, a string, a negative id) is refused.
int64_t token_id(const Json& j, const std::string& key, const std::string& what) {
  if (!j.contains(key) || j[key].is_null()) return -1;
  const Json& v = j[key];
  if (v.is_array() && !v.empty()) return json_get_integer_in_range(Json{{key, v[0]}}, key, 0, kMaxVocab - 1, what);
  return json_get_integer_in_range(j, key, 0, kMaxVocab - 1, what);
}

// The field if present and not null, else `fallback`; refused outside lo..hi.
int64_t optional_integer(const Json& j, const std::string& key, int64_t fallback, int64_t lo, int64_t hi,
                         const std::string& what) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return json_get_integer_in_range(j, key, lo, hi, what);
}

double optional_number(const Json& j, const std::string& key, double fallback, double lo, double hi,
                       const std::string& what) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return json_get_number_in_range(j, key, lo, hi, what);
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
  c.hidden_size = json_get_integer_in_range(j, "hidden_size", 1, kMaxDimension, what);
  c.intermediate_size = json_get_integer_in_range(j, "intermediate_size", 1, 4 * kMaxDimension, what);
  c.num_layers = json_get_integer_in_range(j, "num_hidden_layers", 1, kMaxLayers, what);
  c.num_heads = json_get_integer_in_range(j, "num_attention_heads", 1, c.hidden_size, what);
  c.num_kv_heads = optional_integer(j, "num_key_value_heads", c.num_heads, 1, c.num_heads, what);
  c.head_dim = optional_integer(j, "head_dim", c.hidden_size / c.num_heads, 2, kMaxHeadDim, what);
  c.vocab_size = json_get_integer_in_range(j, "vocab_size", 1, kMaxVocab, what);
  c.max_position_embeddings = optional_integer(j, "max_position_embeddings", 2048, 1, kMaxPositions, what);
  c.rms_norm_eps = optional_number(j, "rms_norm_eps", 1e-6, 1e-12, 0.1, what);
  c.rope_theta = optional_number(j, "rope_theta", 10000.0, 1.0, kMaxRopeTheta, what);
  c.tie_word_embeddings = json_get_or<bool>(j, "tie_word_embeddings", false, what);
  if (c.architecture == Architecture::kLlama) c.attention_bias = json_get_or<bool>(j, "attention_bias", false, what);
  c.rope_interleaved = json_get_or<bool>(j, "hearth_rope_interleaved", false, what);
  if (j.contains("hearth_rope_freq_factors")) c.rope_freq_factors = json_get<std::vector<float>>(j, "hearth_rope_freq_factors", what);
  c.bos_token_id = token_id(j, "bos_token_id", what);
  c.eos_token_id = token_id(j, "eos_token_id", what);
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const Json& rs = j["rope_scaling"];
    const std::string where = what + " rope_scaling";
    std::string type = rs.contains("rope_type") ? json_get<std::string>(rs, "rope_type", where)
                                                : json_get_or<std::string>(rs, "type", "", where);
    require(type == "llama3", ErrorCode::kUnsupported, what + ": rope_scaling type \"" + type + "\" is not supported (llama3)");
    c.rope_scaling.enabled = true;
    c.rope_scaling.factor = json_get_number_in_range(rs, "factor", 1.0, kMaxRopeFactor, where);
    c.rope_scaling.low_freq_factor = json_get_number_in_range(rs, "low_freq_factor", 1e-6, kMaxRopeFactor, where);
    c.rope_scaling.high_freq_factor = json_get_number_in_range(rs, "high_freq_factor", 1e-6, kMaxRopeFactor, where);
    c.rope_scaling.original_max_position_embeddings =
        json_get_integer_in_range(rs, "original_max_position_embeddings", 1, kMaxPositions, where);
  }
  c.validate(what);
  return c;
}

void ModelConfig::validate(const std::string& what) const {
  auto check = [&](bool ok, const std::string& message) { require(ok, ErrorCode::kCorruptFile, what + ": " + message); };
  auto in_range = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
    const std::string problem = integer_range_problem(name, v, lo, hi);
    check(problem.empty(), problem);
  };
  in_range("hidden_size", hidden_size, 1, kMaxDimension);
  in_range("intermediate_size", intermediate_size, 1, 4 * kMaxDimension);
  in_range("num_hidden_layers", num_layers, 1, kMaxLayers);
  in_range("num_attention_heads", num_heads, 1, hidden_size);
  in_range("num_key_value_heads", num_kv_heads, 1, num_heads);
  check(num_heads % num_kv_heads == 0, "num_attention_heads (" + std::to_string(num_heads) +
                                           ") must be a multiple of num_key_value_heads (" + std::to_string(num_kv_heads) + ")");
  in_range("head_dim", head_dim, 2, kMaxHeadDim);
  check(head_dim % 2 == 0, "head_dim must be even, got " + std::to_string(head_dim));
  in_range("vocab_size", vocab_size, 1, kMaxVocab);
  in_range("max_position_embeddings", max_position_embeddings, 1, kMaxPositions);
  auto number = [&](const char* name, double v, double lo, double hi) {
    const std::string problem = number_range_problem(name, v, lo, hi);
    check(problem.empty(), problem);
  };
  number("rms_norm_eps", rms_norm_eps, 1e-12, 0.1);
  number("rope_theta", rope_theta, 1.0, kMaxRopeTheta);
  if (rope_scaling.enabled) {
    number("rope_scaling factor", rope_scaling.factor, 1.0, kMaxRopeFactor);
    check(rope_scaling.high_freq_factor > rope_scaling.low_freq_factor,
          "rope_scaling high_freq_factor must be greater than low_freq_factor");
  }
  check(bos_token_id < vocab_size && eos_token_id < vocab_size, "bos_token_id and eos_token_id must be below vocab_size (" +
                                                                    std::to_string(vocab_size) + ")");
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
