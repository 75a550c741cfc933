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

struct ArchitectureName {
  Architecture architecture;
  const char* class_name;  // config.json "architectures"
  const char* model_type;  // config.json "model_type"
};
constexpr ArchitectureName kArchitectureNames[] = {
    {Architecture::kLlama, "LlamaForCausalLM", "llama"},
    {Architecture::kQwen2, "Qwen2ForCausalLM", "qwen2"},
    {Architecture::kQwen3, "Qwen3ForCausalLM", "qwen3"},
    {Architecture::kGemma3, "Gemma3ForCausalLM", "gemma3_text"},
    {Architecture::kPhi3, "Phi3ForCausalLM", "phi3"},
};

const ArchitectureName& names_of(Architecture a) {
  for (const ArchitectureName& n : kArchitectureNames) {
    if (n.architecture == a) return n;
  }
  fail(ErrorCode::kInternal, "architecture without names");
}

Architecture architecture_from_hf_name(const std::string& name, const std::string& what) {
  for (const ArchitectureName& n : kArchitectureNames) {
    if (name == n.class_name || name == n.model_type) return n.architecture;
  }
  fail(ErrorCode::kUnsupported, what + ": architecture \"" + name +
                                    "\" is not supported (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM, Phi3ForCausalLM)");
}

// A config field Hearth's decoder does not compute must be absent or null.
void require_null(const Json& j, const std::string& key, const std::string& what) {
  require(!j.contains(key) || j[key].is_null(), ErrorCode::kUnsupported, what + ": \"" + key + "\" is not supported");
}

// Gemma 3's sliding-window layout, second rotary base and the choices Hearth computes.
void read_gemma3_fields(const Json& j, const std::string& what, ModelConfig& c) {
  c.sliding_window = json_get_integer_in_range(j, "sliding_window", 1, kMaxPositions, what);
  c.sliding_window_pattern = optional_integer(j, "sliding_window_pattern", 6, 1, kMaxLayers, what);
  if (j.contains("layer_types") && j["layer_types"].is_array()) {
    // Newer configs list each layer; Hearth computes the periodic layout they describe.
    const auto types = json_get<std::vector<std::string>>(j, "layer_types", what);
    for (size_t l = 0; l < types.size(); ++l) {
      const bool local = c.is_local_layer(static_cast<int64_t>(l));
      require(types[l] == (local ? "sliding_attention" : "full_attention"), ErrorCode::kUnsupported,
              what + ": layer_types must repeat " + std::to_string(c.sliding_window_pattern - 1) +
                  " sliding_attention layers and one full_attention layer");
    }
  }
  c.rope_local_theta = optional_number(j, "rope_local_base_freq", 10000.0, 1.0, kMaxRopeTheta, what);
  const double scalar = optional_number(j, "query_pre_attn_scalar", double(c.head_dim), 1.0, 1e6, what);
  require(scalar == double(c.head_dim), ErrorCode::kUnsupported,
          what + ": query_pre_attn_scalar other than head_dim is not supported");
  const std::string act = json_get_or<std::string>(j, "hidden_activation", "gelu_pytorch_tanh", what);
  require(act == "gelu_pytorch_tanh", ErrorCode::kUnsupported, what + ": hidden_activation \"" + act + "\" is not supported");
  require_null(j, "final_logit_softcapping", what);
  require_null(j, "attn_logit_softcapping", what);
}

// Phi-3's rope_scaling: "longrope" (or its old name "su") with one short and one long factor
// per rotary frequency; the trained context is original_max_position_embeddings (top level, or
// inside rope_scaling in newer configs).
void read_longrope(const Json& j, const std::string& what, ModelConfig& c) {
  const Json& rs = j["rope_scaling"];
  const std::string where = what + " rope_scaling";
  const std::string type = rs.contains("rope_type") ? json_get<std::string>(rs, "rope_type", where)
                                                    : json_get_or<std::string>(rs, "type", "", where);
  require(type == "longrope" || type == "su", ErrorCode::kUnsupported,
          what + ": rope_scaling type \"" + type + "\" is not supported for phi3 (longrope)");
  LongRope& lr = c.long_rope;
  lr.enabled = true;
  lr.short_factor = json_get<std::vector<float>>(rs, "short_factor", where);
  lr.long_factor = json_get<std::vector<float>>(rs, "long_factor", where);
  const Json& holder = j.contains("original_max_position_embeddings") ? j : rs;
  lr.original_max_position_embeddings =
      json_get_integer_in_range(holder, "original_max_position_embeddings", 1, kMaxPositions, what);
  lr.attention_factor = optional_number(rs, "attention_factor", 0.0, 1e-6, 1e6, where);
  if (rs.contains("factor") && !rs["factor"].is_null()) {
    // HF derives the factor from the two lengths when both are given; a different one is not what it computes.
    const double factor = json_get_number_in_range(rs, "factor", 1e-6, kMaxRopeFactor, where);
    const double derived = double(c.max_position_embeddings) / double(lr.original_max_position_embeddings);
    require(std::abs(factor - derived) <= 1e-6 * derived, ErrorCode::kUnsupported,
            where + ": factor " + std::to_string(factor) + " differs from max_position_embeddings / original_max_position_embeddings");
  }
}

// Phi-3 / Phi-4-mini: partial rotary, longrope, SwiGLU, no biases, no sliding window in effect.
void read_phi3_fields(const Json& j, const std::string& what, ModelConfig& c) {
  const double partial = optional_number(j, "partial_rotary_factor", 1.0, 1e-6, 1.0, what);
  c.rotary_dims = static_cast<int64_t>(double(c.head_dim) * partial + 1e-9);
  require(c.rotary_dims >= 2, ErrorCode::kUnsupported,
          what + ": partial_rotary_factor " + std::to_string(partial) + " rotates fewer than 2 of head_dim " + std::to_string(c.head_dim));
  if (c.rotary_dims == c.head_dim) c.rotary_dims = 0;  // 0: whole heads
  const std::string act = json_get_or<std::string>(j, "hidden_act", "silu", what);
  require(act == "silu", ErrorCode::kUnsupported, what + ": hidden_act \"" + act + "\" is not supported for phi3 (silu)");
  require(!json_get_or<bool>(j, "attention_bias", false, what), ErrorCode::kUnsupported, what + ": \"attention_bias\" is not supported for phi3");
  // Phi-3-mini-4k attends within 2047 positions; Phi-4-mini's 262144 exceeds its context (no effect).
  const int64_t window = optional_integer(j, "sliding_window", 0, 0, int64_t(1) << 40, what);
  require(window == 0 || window >= c.max_position_embeddings, ErrorCode::kUnsupported,
          what + ": \"sliding_window\" " + std::to_string(window) + " below max_position_embeddings is not supported for phi3");
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) read_longrope(j, what, c);
}

}  // namespace

double ModelConfig::rope_attention_factor() const {
  if (!long_rope.enabled) return 1.0;
  if (long_rope.attention_factor > 0) return long_rope.attention_factor;
  const double orig = double(long_rope.original_max_position_embeddings);
  const double scale = double(max_position_embeddings) / orig;
  return scale <= 1.0 ? 1.0 : std::sqrt(1.0 + std::log(scale) / std::log(orig));
}

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
  c.architecture = architecture_from_hf_name(arch, what);
  if (c.architecture == Architecture::kQwen2) c.attention_bias = true;
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
  // Gemma 3's config class ties the head unless told otherwise; Llama's and Qwen's do not.
  c.tie_word_embeddings = json_get_or<bool>(j, "tie_word_embeddings", c.architecture == Architecture::kGemma3, what);
  if (c.architecture == Architecture::kLlama || c.architecture == Architecture::kQwen3) {
    c.attention_bias = json_get_or<bool>(j, "attention_bias", false, what);
  }
  if (c.architecture == Architecture::kGemma3) read_gemma3_fields(j, what, c);
  if (c.architecture == Architecture::kPhi3) read_phi3_fields(j, what, c);
  c.rope_interleaved = json_get_or<bool>(j, "hearth_rope_interleaved", false, what);
  if (j.contains("hearth_rope_freq_factors")) c.rope_freq_factors = json_get<std::vector<float>>(j, "hearth_rope_freq_factors", what);
  c.bos_token_id = token_id(j, "bos_token_id", what);
  c.eos_token_id = token_id(j, "eos_token_id", what);
  if (c.architecture != Architecture::kPhi3 && j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
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
  check(architecture == Architecture::kPhi3 || (rotary_dims == 0 && !long_rope.enabled),
        "partial rotary embeddings and longrope scaling are computed for phi3 only");
  in_range("rotary dimensions", rotary_dims, 0, head_dim);
  check(architecture != Architecture::kPhi3 || num_heads * head_dim == hidden_size,
        "phi3 needs num_attention_heads * head_dim == hidden_size");
  check(rotary_dims % 2 == 0, "rotary dimensions (head_dim * partial_rotary_factor) must be even, got " + std::to_string(rotary_dims));
  if (long_rope.enabled) {
    const size_t half = static_cast<size_t>(rotary_dim() / 2);
    check(long_rope.short_factor.size() == half && long_rope.long_factor.size() == half,
          "rope_scaling short_factor and long_factor must each have " + std::to_string(half) + " values (rotary dimensions / 2)");
    for (const auto* factors : {&long_rope.short_factor, &long_rope.long_factor})
      for (float f : *factors) check(std::isfinite(f) && f > 0, "rope_scaling short_factor and long_factor must be positive");
    in_range("original_max_position_embeddings", long_rope.original_max_position_embeddings, 2, max_position_embeddings);
    check(rope_freq_factors.empty() && !rope_scaling.enabled, "longrope cannot be combined with other rope scaling");
  }
  in_range("sliding_window", sliding_window, 0, kMaxPositions);
  in_range("sliding_window_pattern", sliding_window_pattern, 0, kMaxLayers);
  number("rope_local_base_freq", rope_local_theta, 1.0, kMaxRopeTheta);
}

Json ModelConfig::to_hf_json() const {
  Json j;
  j["architectures"] = {names_of(architecture).class_name};
  j["model_type"] = names_of(architecture).model_type;
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
  if (architecture == Architecture::kGemma3) {
    j["hidden_activation"] = "gelu_pytorch_tanh";
    j["sliding_window"] = sliding_window;
    j["sliding_window_pattern"] = sliding_window_pattern;
    j["rope_local_base_freq"] = rope_local_theta;
    j["query_pre_attn_scalar"] = head_dim;
    j["final_logit_softcapping"] = nullptr;
    j["attn_logit_softcapping"] = nullptr;
  } else {
    j["hidden_act"] = "silu";
  }
  if (architecture == Architecture::kPhi3) {
    j["partial_rotary_factor"] = double(rotary_dim()) / double(head_dim);
    j["attention_bias"] = false;
    if (long_rope.enabled) j["original_max_position_embeddings"] = long_rope.original_max_position_embeddings;
  }
  if (architecture == Architecture::kLlama || architecture == Architecture::kQwen3) j["attention_bias"] = attention_bias;
  if (rope_interleaved) j["hearth_rope_interleaved"] = true;
  if (!rope_freq_factors.empty()) j["hearth_rope_freq_factors"] = rope_freq_factors;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  if (long_rope.enabled) {
    // "type" as Phi-3's own config files spell it (older transformers read only that key).
    j["rope_scaling"] = {{"type", "longrope"}, {"short_factor", long_rope.short_factor}, {"long_factor", long_rope.long_factor}};
    if (long_rope.attention_factor > 0) j["rope_scaling"]["attention_factor"] = long_rope.attention_factor;
  } else if (rope_scaling.enabled) {
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
  int64_t per_layer = attn + mlp + 2 * hidden_size;
  if (qk_norm()) per_layer += 2 * head_dim;
  if (sandwich_norms()) per_layer += 2 * hidden_size;
  int64_t total = num_layers * per_layer + vocab_size * hidden_size + hidden_size;
  if (!tie_word_embeddings) total += vocab_size * hidden_size;
  return total;
}

std::string ModelConfig::architecture_name() const { return names_of(architecture).class_name; }

}  // namespace hearth
