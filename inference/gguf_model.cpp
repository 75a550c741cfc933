#include "inference/gguf_model.h"

#include <cstring>
#include <regex>

#include "core/error.h"
#include "inference/fingerprint.h"
#include "inference/quant/quantized_matrix.h"

namespace hearth {
namespace {

constexpr GgufArchitecture kArchitectures[] = {
    {"llama", Architecture::kLlama, true, false},
    {"qwen2", Architecture::kQwen2, false, true},
    {"qwen3", Architecture::kQwen3, false, false},
    {"gemma3", Architecture::kGemma3, false, false},
    {"phi3", Architecture::kPhi3, false, false},
};

using NamePair = std::pair<const char*, const char*>;

// Per-layer names every architecture has: GGUF suffix <-> Hugging Face suffix (after "blk.N." /
// "model.layers.N.").
const NamePair kLayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},      {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},      {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},          {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},          {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},           {"ffn_down.weight", "mlp.down_proj.weight"},
};
// The pre-MLP norm: Llama and Qwen call it post_attention_layernorm.
const NamePair kPlainNormNames[] = {{"ffn_norm.weight", "post_attention_layernorm.weight"}};
// Gemma's four norms per layer (post_attention_layernorm is the attention output's norm there).
const NamePair kSandwichNormNames[] = {
    {"post_attention_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_norm.weight", "pre_feedforward_layernorm.weight"},
    {"post_ffw_norm.weight", "post_feedforward_layernorm.weight"},
};
const NamePair kQkNormNames[] = {{"attn_q_norm.weight", "self_attn.q_norm.weight"}, {"attn_k_norm.weight", "self_attn.k_norm.weight"}};

// Phi-3's layers: q/k/v fused into attn_qkv, gate and up into ffn_up (gate rows first, 2 * ff).
const NamePair kPhi3LayerNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},         {"attn_qkv.weight", "self_attn.qkv_proj.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},      {"ffn_up.weight", "mlp.gate_up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

// The per-layer names of architecture `a`.
std::vector<NamePair> layer_names(Architecture a) {
  ModelConfig c;
  c.architecture = a;
  std::vector<NamePair> out(std::begin(kLayerNames), std::end(kLayerNames));
  if (c.fused_projections()) out.assign(std::begin(kPhi3LayerNames), std::end(kPhi3LayerNames));
  if (c.sandwich_norms()) {
    out.insert(out.end(), std::begin(kSandwichNormNames), std::end(kSandwichNormNames));
  } else {
    out.insert(out.end(), std::begin(kPlainNormNames), std::end(kPlainNormNames));
  }
  if (c.qk_norm()) out.insert(out.end(), std::begin(kQkNormNames), std::end(kQkNormNames));
  return out;
}

const std::pair<const char*, const char*> kModelNames[] = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

// A view of `bytes` bytes of the file as a tensor of `shape` and `dtype`, kept alive by the
// mapping; copied when the bytes are not aligned for the dtype (a file with a tiny alignment).
at::Tensor file_view(const GgufFile& file, const GgufTensorInfo& t, std::vector<int64_t> shape, at::ScalarType dtype) {
  const uint8_t* p = file.tensor_data(t);
  auto mapping = file.mapping();
  at::Tensor v = at::from_blob(const_cast<uint8_t*>(p), shape, [mapping](void*) {}, at::TensorOptions().dtype(dtype));
  if (reinterpret_cast<uintptr_t>(p) % c10::elementSize(dtype) != 0 || reinterpret_cast<uintptr_t>(p) % 2 != 0) {
    at::Tensor copy = at::empty(shape, dtype);
    std::memcpy(copy.data_ptr(), p, t.bytes);
    return copy;
  }
  return v;
}

// Hugging Face shape of a GGUF tensor: dims reversed.
std::vector<int64_t> hf_shape(const GgufTensorInfo& t) { return std::vector<int64_t>(t.dims.rbegin(), t.dims.rend()); }

std::string supported_types() { return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K"; }

class GgufTensorSource : public TensorSource {
 public:
  GgufTensorSource(std::shared_ptr<GgufFile> file, const ModelConfig& config)
      : file_(std::move(file)), norms_add_one_(config.norm_adds_one()) {
    for (const GgufTensorInfo& t : file_->tensors()) {
      if (auto hf = gguf_to_hf_name(t.name, config.architecture)) by_hf_[*hf] = &t;
    }
  }
  bool contains(const std::string& name) const override { return by_hf_.count(name) != 0; }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : by_hf_) out.push_back(kv.first);
    return out;
  }
  at::Tensor get(const std::string& name) const override {
    // llama.cpp's converter stores Gemma's norms as the (1 + w) they scale by; Hearth's sources
    // hold checkpoints' w.
    if (norms_add_one_ && is_norm(name)) return stored(name).to(at::kFloat) - 1.0;
    return stored(name);
  }
  std::shared_ptr<const QuantizedMatrix> packed(const std::string& name) const override {
    const GgufTensorInfo& t = info(name);
    if (t.type == ggml::kF32) return nullptr;
    const std::optional<QuantFormat> format = quant_format_of_ggml(t.type);
    require(format.has_value(), ErrorCode::kUnsupported, unsupported(t));
    if (t.dims.size() != 2) return nullptr;  // 1-D norms and biases stay dense
    auto m = std::make_shared<QuantizedMatrix>();
    m->format = *format;
    m->rows = t.dims[1];
    m->cols = t.dims[0];
    m->codes = file_view(*file_, t, {m->rows, static_cast<int64_t>(t.bytes) / m->rows}, at::kByte);
    validate_quantized(*m, file_->name() + ": " + t.name);
    return m;
  }

 private:
  // The tensor as the file holds it.
  at::Tensor stored(const std::string& name) const {
    const GgufTensorInfo& t = info(name);
    switch (t.type) {
      case ggml::kF32: return file_view(*file_, t, hf_shape(t), at::kFloat);
      case ggml::kF16: return file_view(*file_, t, hf_shape(t), at::kHalf);
      case ggml::kBF16: return file_view(*file_, t, hf_shape(t), at::kBFloat16);
      default: break;
    }
    // A block format asked for as a dense tensor (conversion, merging): a transient copy.
    auto m = packed(name);
    require(m != nullptr, ErrorCode::kUnsupported, unsupported(t));
    return dequantize_matrix(*m).view(hf_shape(t));
  }
  const GgufTensorInfo& info(const std::string& name) const {
    auto it = by_hf_.find(name);
    require(it != by_hf_.end(), ErrorCode::kCorruptFile, file_->name() + " has no tensor for \"" + name + "\"");
    return *it->second;
  }
  std::string unsupported(const GgufTensorInfo& t) const {
    return file_->name() + ": tensor \"" + t.name + "\" has type " + ggml_type(t.type)->name +
           ", which Hearth does not compute with (" + supported_types() + "); re-quantize the model with llama-quantize";
  }

  std::shared_ptr<GgufFile> file_;
  bool norms_add_one_;
  std::map<std::string, const GgufTensorInfo*> by_hf_;
};

int64_t positive_int(const GgufFile& f, const std::string& key) {
  const int64_t v = f.get_int(key);
  require(v > 0 && v <= (int64_t(1) << 31), ErrorCode::kCorruptFile, f.name() + ": metadata \"" + key + "\" must be positive");
  return v;
}

// Gemma 3's sliding window and its layout, as llama.cpp reads them (pattern 6 and local base
// 10000 when absent). A Gemma 3 GGUF without a window has only global layers.
void read_gemma3_metadata(const GgufFile& f, const std::string& a, ModelConfig& c) {
  c.sliding_window = f.find_int(a + "attention.sliding_window").value_or(0);
  c.sliding_window_pattern = f.find_int(a + "attention.sliding_window_pattern").value_or(6);
  c.rope_local_theta = f.find_float(a + "rope.freq_base_swa").value_or(10000.0);
  if (auto scale = f.find_float(a + "final_logit_softcapping")) {
    require(*scale == 0, ErrorCode::kUnsupported, f.name() + ": final logit soft-capping is not supported");
  }
}

// A 1-D F32 tensor's values.
std::vector<float> read_f32_vector(const GgufFile& f, const GgufTensorInfo& t) {
  require(t.type == ggml::kF32 && t.dims.size() == 1, ErrorCode::kCorruptFile, f.name() + ": " + t.name + " must be 1-D F32");
  std::vector<float> out(t.dims[0]);
  std::memcpy(out.data(), f.tensor_data(t), t.bytes);
  return out;
}

// Phi-3 as llama.cpp's converter writes it: the rotary dimensions, and for longrope models the
// short and long factors as tensors, the trained context and the attention factor. llama.cpp
// ignores a phi3 sliding window (it disables it); so does Hearth.
void read_phi3_metadata(const GgufFile& f, const std::string& a, ModelConfig& c) {
  const int64_t rot = f.find_int(a + "rope.dimension_count").value_or(c.head_dim);
  c.rotary_dims = rot == c.head_dim ? 0 : rot;
  const GgufTensorInfo* lo = f.find_tensor("rope_factors_long.weight");
  const GgufTensorInfo* sh = f.find_tensor("rope_factors_short.weight");
  if (!lo && !sh) return;
  require(lo && sh, ErrorCode::kCorruptFile, f.name() + ": rope_factors_long.weight and rope_factors_short.weight come together");
  LongRope& lr = c.long_rope;
  lr.enabled = true;
  lr.long_factor = read_f32_vector(f, *lo);
  lr.short_factor = read_f32_vector(f, *sh);
  lr.original_max_position_embeddings = f.find_int(a + "rope.scaling.original_context_length").value_or(c.max_position_embeddings);
  if (auto factor = f.find_float(a + "rope.scaling.attn_factor")) {
    // Kept only when it is not the one the lengths imply (the converter's, rounded to float32).
    const double derived = c.rope_attention_factor();
    if (std::abs(*factor - derived) > 1e-6 * derived) lr.attention_factor = *factor;
  }
}

}  // namespace

const GgufArchitecture* gguf_architecture(const std::string& name) {
  for (const GgufArchitecture& a : kArchitectures) {
    if (name == a.name) return &a;
  }
  return nullptr;
}

const GgufArchitecture& gguf_architecture_for(const ModelConfig& config) {
  for (const GgufArchitecture& a : kArchitectures) {
    if (a.architecture == config.architecture) return a;
  }
  fail(ErrorCode::kInternal, "no GGUF architecture for " + config.architecture_name());
}

bool is_norm(const std::string& hf_name) {
  const std::string suffix = "norm.weight";
  return hf_name.size() >= suffix.size() && hf_name.compare(hf_name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::optional<std::string> gguf_to_hf_name(const std::string& g, Architecture arch) {
  for (const auto& [gguf, hf] : kModelNames) {
    if (g == gguf) return std::string(hf);
  }
  static const std::regex layer(R"(blk\.(\d{1,4})\.(.+))");
  std::smatch m;
  if (!std::regex_match(g, m, layer)) return std::nullopt;
  for (const auto& [gguf, hf] : layer_names(arch)) {
    if (m[2].str() == gguf) return "model.layers." + m[1].str() + "." + hf;
  }
  return std::nullopt;
}

std::optional<std::string> hf_to_gguf_name(const std::string& h, Architecture arch) {
  for (const auto& [gguf, hf] : kModelNames) {
    if (h == hf) return std::string(gguf);
  }
  static const std::regex layer(R"(model\.layers\.(\d{1,4})\.(.+))");
  std::smatch m;
  if (!std::regex_match(h, m, layer)) return std::nullopt;
  for (const auto& [gguf, hf] : layer_names(arch)) {
    if (m[2].str() == hf) return "blk." + m[1].str() + "." + gguf;
  }
  return std::nullopt;
}

std::optional<QuantFormat> quant_format_of_ggml(uint32_t type) {
  switch (type) {
    case ggml::kF16: return QuantFormat::kF16;
    case ggml::kBF16: return QuantFormat::kBF16;
    case ggml::kQ8_0: return QuantFormat::kQ8_0;
    case ggml::kQ4_0: return QuantFormat::kQ4_0;
    case ggml::kQ4_1: return QuantFormat::kQ4_1;
    case ggml::kQ4_K: return QuantFormat::kQ4_K;
    case ggml::kQ5_K: return QuantFormat::kQ5_K;
    case ggml::kQ6_K: return QuantFormat::kQ6_K;
    default: return std::nullopt;
  }
}

uint32_t ggml_type_of(QuantFormat format) {
  switch (format) {
    case QuantFormat::kF16: return ggml::kF16;
    case QuantFormat::kBF16: return ggml::kBF16;
    case QuantFormat::kQ8_0: return ggml::kQ8_0;
    case QuantFormat::kQ4_0: return ggml::kQ4_0;
    case QuantFormat::kQ4_1: return ggml::kQ4_1;
    case QuantFormat::kQ4_K: return ggml::kQ4_K;
    case QuantFormat::kQ5_K: return ggml::kQ5_K;
    case QuantFormat::kQ6_K: return ggml::kQ6_K;
    default: fail(ErrorCode::kInvalidArgument, std::string("GGUF has no type for Hearth's ") + quant_format_name(format) + " format");
  }
}

GgufModel read_gguf_model(const std::shared_ptr<GgufFile>& file) {
  const GgufFile& f = *file;
  const std::string arch_name = f.get_string("general.architecture");
  const GgufArchitecture* arch = gguf_architecture(arch_name);
  if (arch == nullptr) {
    fail(ErrorCode::kUnsupported, f.name() + ": architecture \"" + arch_name + "\" is not supported (llama, qwen2, qwen3, gemma3, phi3)");
  }
  const std::string a = arch_name + ".";
  ModelConfig c;
  c.architecture = arch->architecture;
  c.rope_interleaved = arch->rope_interleaved;
  c.hidden_size = positive_int(f, a + "embedding_length");
  c.intermediate_size = positive_int(f, a + "feed_forward_length");
  c.num_layers = positive_int(f, a + "block_count");
  c.num_heads = positive_int(f, a + "attention.head_count");
  c.num_kv_heads = f.find(a + "attention.head_count_kv") ? positive_int(f, a + "attention.head_count_kv") : c.num_heads;
  c.head_dim = f.find(a + "attention.key_length") ? positive_int(f, a + "attention.key_length") : c.hidden_size / c.num_heads;
  c.max_position_embeddings = f.find(a + "context_length") ? positive_int(f, a + "context_length") : 2048;
  c.rms_norm_eps = f.find_float(a + "attention.layer_norm_rms_epsilon").value_or(1e-5);
  c.rope_theta = f.find_float(a + "rope.freq_base").value_or(10000.0);
  if (auto rot = f.find_int(a + "rope.dimension_count"); rot && c.architecture != Architecture::kPhi3) {
    require(*rot == c.head_dim, ErrorCode::kUnsupported,
            f.name() + ": partial rotary embeddings (rope.dimension_count " + std::to_string(*rot) + " of head size " +
                std::to_string(c.head_dim) + ") are not supported");
  }
  if (auto scaling = f.find_string(a + "rope.scaling.type")) {
    require(*scaling == "none", ErrorCode::kUnsupported, f.name() + ": rope scaling \"" + *scaling + "\" is not supported");
  }
  const GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  require(embd != nullptr && embd->dims.size() == 2, ErrorCode::kCorruptFile, f.name() + ": no 2-D token_embd.weight tensor");
  c.vocab_size = embd->dims[1];
  // The table's width is the model's: found by fuzzing, a file whose metadata says otherwise
  // was accepted and failed only when the table was used.
  require(embd->dims[0] == static_cast<uint64_t>(c.hidden_size), ErrorCode::kCorruptFile,
          f.name() + ": token_embd.weight is " + std::to_string(embd->dims[0]) + " wide but " + a +
              "embedding_length is " + std::to_string(c.hidden_size) + "; the file is damaged or mislabelled");
  c.tie_word_embeddings = f.find_tensor("output.weight") == nullptr;
  c.attention_bias = arch->attention_bias || f.find_tensor("blk.0.attn_q.bias") != nullptr;
  c.bos_token_id = f.find_int("tokenizer.ggml.bos_token_id").value_or(-1);
  c.eos_token_id = f.find_int("tokenizer.ggml.eos_token_id").value_or(-1);
  if (const GgufTensorInfo* freqs = f.find_tensor("rope_freqs.weight")) {
    // Llama 3 scaling, stored as one divisor per rotary frequency.
    require(freqs->type == ggml::kF32 && freqs->dims.size() == 1, ErrorCode::kCorruptFile, f.name() + ": rope_freqs.weight must be 1-D F32");
    const float* p = reinterpret_cast<const float*>(f.tensor_data(*freqs));
    c.rope_freq_factors.resize(freqs->dims[0]);
    std::memcpy(c.rope_freq_factors.data(), p, freqs->bytes);
  }
  if (c.architecture == Architecture::kGemma3) read_gemma3_metadata(f, a, c);
  if (c.architecture == Architecture::kPhi3) read_phi3_metadata(f, a, c);
  c.validate(f.name());
  for (const GgufTensorInfo& t : f.tensors()) {
    const bool rope = t.name == "rope_freqs.weight" ||
                      (c.long_rope.enabled && (t.name == "rope_factors_long.weight" || t.name == "rope_factors_short.weight"));
    const bool known = gguf_to_hf_name(t.name, c.architecture).has_value() || rope;
    require(known, ErrorCode::kUnsupported,
            f.name() + ": tensor \"" + t.name + "\" is not part of the " + arch_name + " decoder Hearth computes");
  }
  return {c, std::make_unique<GgufTensorSource>(file, c)};
}

std::string gguf_fingerprint(const GgufFile& file) {
  FingerprintBuilder f;
  for (const GgufTensorInfo& t : file.tensors()) {
    at::Tensor bytes = at::from_blob(const_cast<uint8_t*>(file.tensor_data(t)), {static_cast<int64_t>(t.bytes)}, at::kByte);
    std::string key = t.name + ":" + ggml_type(t.type)->name;
    for (int64_t d : t.dims) key += ":" + std::to_string(d);
    f.add(key, bytes);
  }
  return f.hex();
}

}  // namespace hearth
