#include "trainer/trainable.h"

#include <set>

#include "adapters/adapter.h"
#include "adapters/adapter_set.h"
#include "adapters/peft_files.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace hearth::trainer {
namespace {

// Gives `t` an owned, writable fp32 copy of its data (weights may view a read-only file
// mapping) and makes it a trainable leaf; every handle sharing the tensor sees the change.
void make_trainable(const at::Tensor& t) {
  require(t.defined() && t.scalar_type() == at::kFloat, ErrorCode::kInvalidArgument,
          "--method full needs fp32 weights: load the model without --quant and with --dtype fp32");
  at::Tensor owned;
  {
    at::NoGradGuard no_grad;
    owned = t.detach().clone();
  }
  const_cast<at::Tensor&>(t).set_data(owned);
  t.set_requires_grad(true);
}

}  // namespace

Trainable Trainable::adapter(Decoder& decoder, const AdapterConfig& config) {
  config.validate();
  Trainable t;
  t.adapter_ = Adapter::create(decoder, config);
  attach_adapter(decoder, t.adapter_);
  t.method_ = adapter_method_name(config.method);
  t.named_ = t.adapter_->named_parameters();
  return t;
}

Trainable Trainable::full(Decoder& decoder) {
  Trainable t;
  t.method_ = "full";
  std::set<const void*> seen;
  auto add = [&](const std::string& name, const at::Tensor& w) {
    if (!w.defined() || !seen.insert(w.unsafeGetTensorImpl()).second) return;  // a tied head is the embedding
    make_trainable(w);
    t.named_.emplace_back(name, w);
  };
  require(decoder.embedding().dense_table().defined(), ErrorCode::kInvalidArgument,
          "--method full cannot train a quantized model: load it without --quant");
  add("model.embed_tokens.weight", decoder.embedding().dense_table());
  for (size_t l = 0; l < decoder.layers().size(); ++l) {
    DecoderLayer& layer = decoder.layers()[l];
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    for (const auto& [name, member] : DecoderLayer::norm_names(decoder.config())) add(prefix + name, layer.*member);
    for (auto& [name, linear] : layer.projections()) {
      require(linear->is_dense(), ErrorCode::kInvalidArgument,
              "--method full cannot train a quantized model: load it without --quant");
      const std::string n = name;
      const std::string group = n == "gate_proj" || n == "up_proj" || n == "down_proj" ? "mlp." : "self_attn.";
      add(prefix + group + name + ".weight", linear->dense_weight());
      if (linear->bias().defined()) add(prefix + group + name + ".bias", linear->bias());
    }
  }
  add("model.norm.weight", decoder.final_norm_weight());
  require(decoder.lm_head().is_dense(), ErrorCode::kInvalidArgument,
          "--method full cannot train a quantized model: load it without --quant");
  add("lm_head.weight", decoder.lm_head().dense_weight());
  return t;
}

int64_t Trainable::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, p] : named_) n += p.numel();
  return n;
}

std::vector<optim::ParamGroup> Trainable::param_groups() const {
  optim::ParamGroup matrices, others;
  matrices.name = method_ == "full" ? "projections" : "lora";
  others.name = method_ == "full" ? "embeddings_and_norms" : "dora_magnitude";
  others.low_rank = false;
  for (const auto& [name, p] : named_) {
    const bool embedding = name == "model.embed_tokens.weight" || name == "lm_head.weight";
    (p.dim() == 2 && !embedding ? matrices : others).params.push_back(p);
  }
  std::vector<optim::ParamGroup> groups;
  if (!matrices.params.empty()) groups.push_back(std::move(matrices));
  if (!others.params.empty()) groups.push_back(std::move(others));
  return groups;
}

void Trainable::set_training(bool training) {
  if (adapter_) adapter_->set_training(training);
}

void Trainable::save(const std::filesystem::path& dir, const Decoder& decoder, const std::string& base_name,
                     const std::string& base_fingerprint, const Json& summary) const {
  if (adapter_) {
    save_peft_adapter(dir, *adapter_, base_name, base_fingerprint, summary);
    return;
  }
  StagedDirectory staged(dir);
  SafetensorsWriter writer;
  for (const auto& [name, p] : named_) writer.add(name, p.detach());
  writer.set_metadata("format", "pt");
  writer.write(staged.path() / "model.safetensors");
  write_file_atomic(staged.path() / "config.json", decoder.config().to_hf_json().dump(2));
  write_file_atomic(staged.path() / "training_summary.json", summary.dump(2));
  staged.commit();
}

}  // namespace hearth::trainer
