#include "inference/gguf_export.h"

#include <cmath>

#include "core/error.h"
#include "inference/fused_projections.h"
#include "inference/gguf_model.h"
#include "inference/gguf_tokenizer.h"
#include "inference/gguf_writer.h"
#include "inference/quant/gguf_blocks.h"
#include "inference/quant/quantized_matrix.h"

namespace hearth {
namespace {

void write_hparams(GgufWriter& w, const ModelConfig& c, const GgufArchitecture& arch, const GgufExportOptions& options) {
  const std::string a = std::string(arch.name) + ".";
  w.set_string("general.architecture", arch.name);
  w.set_string("general.name", options.name);
  w.set_uint32("general.quantization_version", 2);
  w.set_uint32(a + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.set_uint32(a + "embedding_length", static_cast<uint32_t>(c.hidden_size));
  w.set_uint32(a + "feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
  w.set_uint32(a + "block_count", static_cast<uint32_t>(c.num_layers));
  w.set_uint32(a + "attention.head_count", static_cast<uint32_t>(c.num_heads));
  w.set_uint32(a + "attention.head_count_kv", static_cast<uint32_t>(c.num_kv_heads));
  w.set_uint32(a + "attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.set_uint32(a + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  w.set_uint32(a + "rope.dimension_count", static_cast<uint32_t>(c.rotary_dim()));
  w.set_float32(a + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  w.set_float32(a + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.set_uint32(a + "vocab_size", static_cast<uint32_t>(c.vocab_size));
  if (c.sliding_window > 0) {
    w.set_uint32(a + "attention.sliding_window", static_cast<uint32_t>(c.sliding_window));
    w.set_uint32(a + "attention.sliding_window_pattern", static_cast<uint32_t>(c.sliding_window_pattern));
    w.set_float32(a + "rope.freq_base_swa", static_cast<float>(c.rope_local_theta));
  }
  if (c.long_rope.enabled) {
    // As llama.cpp's Phi-3 converter: the factors go as tensors (add_rope_factor_tensors).
    w.set_uint32(a + "rope.scaling.original_context_length", static_cast<uint32_t>(c.long_rope.original_max_position_embeddings));
    w.set_float32(a + "rope.scaling.attn_factor", static_cast<float>(c.rope_attention_factor()));
  }
}

// Phi-3's longrope factors, one tensor each (llama.cpp picks one by its context size).
int add_rope_factor_tensors(GgufWriter& w, const ModelConfig& c) {
  if (!c.long_rope.enabled) return 0;
  const int64_t n = static_cast<int64_t>(c.long_rope.long_factor.size());
  w.add_tensor("rope_factors_long.weight", {n}, ggml::kF32, at::tensor(c.long_rope.long_factor, at::kFloat));
  w.add_tensor("rope_factors_short.weight", {n}, ggml::kF32, at::tensor(c.long_rope.short_factor, at::kFloat));
  return 2;
}

// Llama 3 scaling as llama.cpp stores it: one divisor per rotary frequency.
std::vector<float> rope_factors(const ModelConfig& c) {
  if (!c.rope_freq_factors.empty()) return c.rope_freq_factors;
  if (!c.rope_scaling.enabled) return {};
  const auto& rs = c.rope_scaling;
  std::vector<float> factors;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const double f = 1.0 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim));
    const double wavelen = 2.0 * M_PI / f;
    const double low = rs.original_max_position_embeddings / rs.low_freq_factor;
    const double high = rs.original_max_position_embeddings / rs.high_freq_factor;
    if (wavelen < high) {
      factors.push_back(1.0f);
    } else if (wavelen > low) {
      factors.push_back(static_cast<float>(rs.factor));
    } else {
      const double smooth = (rs.original_max_position_embeddings / wavelen - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
      factors.push_back(static_cast<float>(1.0 / ((1.0 - smooth) / rs.factor + smooth)));
    }
  }
  return factors;
}

// The stored bytes of a 2-D float weight in `format` (nullopt: F32) and its ggml type.
std::pair<at::Tensor, uint32_t> encode_matrix(const at::Tensor& w, std::optional<QuantFormat> format, bool& fell_back) {
  fell_back = false;
  if (!format) return {w.to(at::kFloat).contiguous(), ggml::kF32};
  QuantFormat f = *format;
  if (w.size(1) % quant_block_size(f) != 0) {
    f = QuantFormat::kF16;
    fell_back = true;
  }
  return {quantize_matrix(w, f).codes, ggml_type_of(f)};
}

}  // namespace

at::Tensor interleave_rotary_rows(const at::Tensor& weight, int64_t heads, int64_t head_dim) {
  // Half-split: row i pairs with row i + head_dim/2. Interleaved: rows (2i, 2i+1) pair.
  std::vector<int64_t> shape = weight.sizes().vec();
  const int64_t rest = weight.dim() == 2 ? weight.size(1) : 1;
  return weight.reshape({heads, 2, head_dim / 2, rest}).transpose(1, 2).reshape(shape).contiguous();
}

GgufExportReport write_gguf_model(const std::filesystem::path& out, const ModelConfig& config, const TensorSource& split,
                                  const GgufFile* tokenizer_source, const std::filesystem::path& tokenizer_file,
                                  const GgufExportOptions& options) {
  const GgufArchitecture& arch = gguf_architecture_for(config);
  require(!config.rope_interleaved || arch.rope_interleaved, ErrorCode::kUnsupported,
          "GGUF's " + std::string(arch.name) + " architecture rotates half-split pairs; this model's rotary layout is interleaved");
  GgufWriter w;
  write_hparams(w, config, arch, options);
  write_gguf_tokenizer(w, tokenizer_source, tokenizer_file, config.vocab_size);
  GgufExportReport report;
  const FusedProjectionsView tensors(split, config);  // Phi-3's attn_qkv and ffn_up are fused
  // llama.cpp's llama architecture rotates adjacent pairs: q/k rows of a half-split model move.
  const bool reorder = arch.rope_interleaved && !config.rope_interleaved;
  for (const std::string& name : tensors.names()) {
    const std::optional<std::string> gguf_name = hf_to_gguf_name(name, config.architecture);
    require(gguf_name.has_value(), ErrorCode::kUnsupported, "tensor \"" + name + "\" has no GGUF name");
    at::Tensor t = tensors.get(name).to(at::kFloat);
    const bool q = name.find("self_attn.q_proj.") != std::string::npos, k = name.find("self_attn.k_proj.") != std::string::npos;
    if (reorder && (q || k)) t = interleave_rotary_rows(t, q ? config.num_heads : config.num_kv_heads, config.head_dim);
    if (config.norm_adds_one() && is_norm(name)) t = t + 1.0;  // llama.cpp's Gemma norms hold 1 + w
    std::vector<int64_t> dims(t.sizes().rbegin(), t.sizes().rend());
    if (t.dim() == 2) {
      bool fell_back = false;
      auto [bytes, type] = encode_matrix(t, options.format, fell_back);
      report.fallback_f16 += fell_back;
      w.add_tensor(*gguf_name, dims, type, bytes);
    } else {
      w.add_tensor(*gguf_name, dims, ggml::kF32, t.contiguous());
    }
    tensors.release(name);
    ++report.tensors;
  }
  report.tensors += add_rope_factor_tensors(w, config);
  const std::vector<float> factors = rope_factors(config);
  if (!factors.empty()) {
    w.add_tensor("rope_freqs.weight", {static_cast<int64_t>(factors.size())}, ggml::kF32, at::tensor(factors, at::kFloat));
    ++report.tensors;
  }
  w.write(out);
  return report;
}

}  // namespace hearth
