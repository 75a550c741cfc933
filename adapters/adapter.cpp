#include "adapters/adapter.h"

#include <algorithm>
#include <cmath>

#include "adapters/dora_layer.h"
#include "adapters/lora_layer.h"
#include "core/error.h"
#include "core/rng.h"

namespace hearth {
namespace {

bool is_attention(const std::string& name) {
  return name == "q_proj" || name == "k_proj" || name == "v_proj" || name == "o_proj";
}

// A trainable fp32 leaf owning its memory (never a view of a mapped file).
at::Tensor leaf(const at::Tensor& t) {
  return t.detach().to(at::kFloat).contiguous().clone().requires_grad_(true);
}

std::shared_ptr<LowRankLayer> make_layer(const AdapterConfig& config, const at::Tensor& a, const at::Tensor& b,
                                         const at::Tensor& magnitude, const std::shared_ptr<AdapterRuntime>& runtime) {
  if (config.method == AdapterMethod::kDoRA)
    return std::make_shared<DoraLayer>(leaf(a), leaf(b), leaf(magnitude), config.scale(), runtime);
  return std::make_shared<LoraLayer>(leaf(a), leaf(b), config.scale(), runtime);
}

}  // namespace

std::string AdapterModule::peft_prefix() const {
  return "base_model.model.model.layers." + std::to_string(layer) + (is_attention(name) ? ".self_attn." : ".mlp.") +
         name + ".";
}

const Linear& decoder_projection(const DecoderLayer& layer, const std::string& name) {
  if (name == "q_proj") return layer.q;
  if (name == "k_proj") return layer.k;
  if (name == "v_proj") return layer.v;
  if (name == "o_proj") return layer.o;
  if (name == "gate_proj") return layer.gate;
  if (name == "up_proj") return layer.up;
  if (name == "down_proj") return layer.down;
  fail(ErrorCode::kInvalidArgument, "unknown projection \"" + name + "\"");
}

Linear& decoder_projection(DecoderLayer& layer, const std::string& name) {
  return const_cast<Linear&>(decoder_projection(static_cast<const DecoderLayer&>(layer), name));
}

std::shared_ptr<Adapter> Adapter::build(const Decoder& decoder, const AdapterConfig& config, const LayerFactory& make) {
  config.validate();
  const int64_t layers = static_cast<int64_t>(decoder.layers().size());
  require(config.resolved_last_layer(layers) < layers, ErrorCode::kInvalidArgument,
          "adapter last_layer " + std::to_string(config.last_layer) + " is beyond the model's " +
              std::to_string(layers) + " layers");
  require(config.first_layer < layers, ErrorCode::kInvalidArgument,
          "adapter first_layer " + std::to_string(config.first_layer) + " is beyond the model's " +
              std::to_string(layers) + " layers");
  std::shared_ptr<Adapter> adapter(new Adapter());
  adapter->config_ = config;
  adapter->num_layers_ = layers;
  adapter->runtime_ = std::make_shared<AdapterRuntime>();
  adapter->runtime_->dropout = config.dropout;
  adapter->runtime_->generator = make_generator(mix_seed(config.seed, 0xD120u));
  for (int64_t l = config.first_layer; l <= config.resolved_last_layer(layers); ++l) {
    for (const std::string& name : all_projection_names()) {
      if (!config.targets_module(name)) continue;
      AdapterModule m;
      m.layer = l;
      m.name = name;
      m.impl = make(m, decoder_projection(decoder.layers()[l], name), adapter->runtime_);
      adapter->modules_.push_back(std::move(m));
    }
  }
  return adapter;
}

std::shared_ptr<Adapter> Adapter::create(const Decoder& decoder, const AdapterConfig& config) {
  return build(decoder, config, [&](const AdapterModule& m, const Linear& base, const auto& runtime) {
    at::NoGradGuard no_grad;
    // One stream per (layer, projection), so choosing other targets does not shift this module's draws.
    const uint64_t stream = static_cast<uint64_t>(m.layer) * 16 + static_cast<uint64_t>(projection_index(m.name));
    at::Generator gen = make_generator(mix_seed(config.seed, stream));
    // kaiming_uniform(a = sqrt(5)) on [r, in]: gain sqrt(2 / 6), bound gain * sqrt(3 / in) = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(base.in_features()));
    at::Tensor a = at::empty({config.rank, base.in_features()}, at::kFloat).uniform_(-bound, bound, gen);
    at::Tensor b = at::zeros({base.out_features(), config.rank}, at::kFloat);
    at::Tensor magnitude = config.method == AdapterMethod::kDoRA ? base.weight_row_norms() : at::Tensor();
    return make_layer(config, a, b, magnitude, runtime);
  });
}

std::shared_ptr<Adapter> Adapter::from_tensors(const Decoder& decoder, const AdapterConfig& config,
                                               const TensorProvider& tensors) {
  return build(decoder, config, [&](const AdapterModule& m, const Linear& base, const auto& runtime) {
    at::NoGradGuard no_grad;
    const std::string p = m.peft_prefix();
    at::Tensor a = tensors(p + "lora_A.weight", {config.rank, base.in_features()});
    at::Tensor b = tensors(p + "lora_B.weight", {base.out_features(), config.rank});
    at::Tensor magnitude;
    if (config.method == AdapterMethod::kDoRA) magnitude = tensors(p + "lora_magnitude_vector", {base.out_features()});
    return make_layer(config, a, b, magnitude, runtime);
  });
}

std::vector<std::pair<std::string, at::Tensor>> Adapter::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const AdapterModule& m : modules_) {
    const std::string p = m.peft_prefix();
    out.emplace_back(p + "lora_A.weight", m.impl->lora_A());
    out.emplace_back(p + "lora_B.weight", m.impl->lora_B());
    if (m.impl->magnitude().defined()) out.emplace_back(p + "lora_magnitude_vector", m.impl->magnitude());
  }
  return out;
}

std::vector<at::Tensor> Adapter::parameters() const {
  std::vector<at::Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Adapter::parameter_count() const {
  int64_t n = 0;
  for (const at::Tensor& t : parameters()) n += t.numel();
  return n;
}

void Adapter::set_training(bool training) { runtime_->training.store(training); }
bool Adapter::training() const { return runtime_->training.load(); }

}  // namespace hearth
