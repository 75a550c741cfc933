#include "adapters/gguf_lora.h"

#include "core/error.h"
#include "inference/gguf_export.h"
#include "inference/gguf_model.h"
#include "inference/gguf_writer.h"

namespace hearth {

GgufLoraReport export_gguf_lora(const Adapter& adapter, const ModelConfig& base_config, const std::filesystem::path& out,
                                const std::string& name) {
  const AdapterConfig& c = adapter.config();
  require(c.method == AdapterMethod::kLoRA, ErrorCode::kUnsupported,
          "a DoRA adapter cannot be written as a llama.cpp LoRA (its format has no magnitude vector); fold it into the "
          "base instead: hearth adapters merge --format gguf --requantize q8_0 ...");
  // llama.cpp's phi3 adapts the fused attn_qkv and ffn_up; Hearth's adapter holds the split parts.
  require(!base_config.fused_projections(), ErrorCode::kUnsupported,
          "a phi3 adapter cannot be written as a llama.cpp LoRA yet (llama.cpp adapts the fused attn_qkv and ffn_up); merge it "
          "into the base instead: hearth adapters merge --format gguf ...");
  const GgufArchitecture& arch = gguf_architecture_for(base_config);
  require(!base_config.rope_interleaved || arch.rope_interleaved, ErrorCode::kUnsupported,
          "the base's interleaved rotary layout has no GGUF " + std::string(arch.name) + " equivalent");
  const bool reorder = arch.rope_interleaved && !base_config.rope_interleaved;
  GgufWriter w;
  GgufLoraReport report;
  // llama.cpp scales by alpha / rank; rsLoRA's alpha / sqrt(rank) becomes an equivalent alpha.
  report.alpha = c.scale() * static_cast<double>(c.rank);
  w.set_string("general.type", "adapter");
  w.set_string("general.architecture", arch.name);
  w.set_string("general.name", name);
  w.set_string("adapter.type", "lora");
  w.set_float32("adapter.lora.alpha", static_cast<float>(report.alpha));
  for (const AdapterModule& m : adapter.modules()) {
    const std::string section = m.name == "gate_proj" || m.name == "up_proj" || m.name == "down_proj" ? "mlp." : "self_attn.";
    const std::string hf = "model.layers." + std::to_string(m.layer) + "." + section + m.name + ".weight";
    const auto base = hf_to_gguf_name(hf, base_config.architecture);
    require(base.has_value(), ErrorCode::kInternal, "no GGUF name for " + hf);
    at::Tensor a = m.impl->lora_A().detach().to(at::kFloat).contiguous();  // [r, in]
    at::Tensor b = m.impl->lora_B().detach().to(at::kFloat).contiguous();  // [out, r]
    if (reorder && (m.name == "q_proj" || m.name == "k_proj")) {
      b = interleave_rotary_rows(b, m.name == "q_proj" ? base_config.num_heads : base_config.num_kv_heads, base_config.head_dim);
    }
    // GGUF dims run innermost first: A [r, in] is {in, r}, B [out, r] is {r, out}.
    w.add_tensor(*base + ".lora_a", {a.size(1), a.size(0)}, ggml::kF32, a);
    w.add_tensor(*base + ".lora_b", {b.size(1), b.size(0)}, ggml::kF32, b);
    ++report.modules;
  }
  w.write(out);
  return report;
}

}  // namespace hearth
