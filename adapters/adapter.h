// One adapter over one base model: its LoRA or DoRA layers, one per targeted projection, their
// trainable parameters under PEFT's names, and training mode. Creating one leaves the base untouched.
#pragma once
#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "adapters/adapter_config.h"
#include "adapters/low_rank_layer.h"
#include "inference/decoder.h"

namespace hearth {

// One adapted projection: where it sits and its layer.
struct AdapterModule {
  int64_t layer = 0;
  std::string name;  // "q_proj", ..., "down_proj"
  std::shared_ptr<LowRankLayer> impl;
  // PEFT's key prefix, e.g. "base_model.model.model.layers.3.self_attn.q_proj."
  std::string peft_prefix() const;
};

// The projection `name` of a decoder layer; kInvalidArgument for an unknown name.
const Linear& decoder_projection(const DecoderLayer& layer, const std::string& name);
Linear& decoder_projection(DecoderLayer& layer, const std::string& name);

class Adapter {
 public:
  // Returns the tensor a PEFT key should hold, already checked to have `shape` (loading).
  using TensorProvider = std::function<at::Tensor(const std::string& key, const std::vector<int64_t>& shape)>;

  // Fresh adapter layers for `decoder` with PEFT's initialization: A kaiming-uniform(a=sqrt(5)),
  // i.e. U(-1/sqrt(in), 1/sqrt(in)), B zero; DoRA magnitude = row norms of the (dequantized) base.
  // Seeded per module (mix_seed(seed, module)), so the same seed gives the same adapter.
  // Does NOT attach them.
  static std::shared_ptr<Adapter> create(const Decoder& decoder, const AdapterConfig& config);
  // Adapter layers whose tensors come from `tensors` (a loaded file), copied into fp32 leaves.
  static std::shared_ptr<Adapter> from_tensors(const Decoder& decoder, const AdapterConfig& config,
                                               const TensorProvider& tensors);

  const AdapterConfig& config() const { return config_; }
  const std::vector<AdapterModule>& modules() const { return modules_; }

  // Trainable tensors (fp32 leaves, requires_grad) in a stable order (layer, projection, A, B,
  // magnitude), with PEFT's names ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  std::vector<at::Tensor> parameters() const;
  int64_t parameter_count() const;

  // Dropout on (training) or off (inference).
  void set_training(bool training);
  bool training() const;
  // The generator dropout masks are drawn from; a trainer saves and restores its state.
  at::Generator& dropout_generator() { return runtime_->generator; }

  // Model shape this adapter was made for: layers and every module's [out, in].
  int64_t num_layers() const { return num_layers_; }

 private:
  Adapter() = default;
  using LayerFactory = std::function<std::shared_ptr<LowRankLayer>(const AdapterModule&, const Linear&,
                                                                     const std::shared_ptr<AdapterRuntime>&)>;
  static std::shared_ptr<Adapter> build(const Decoder& decoder, const AdapterConfig& config, const LayerFactory& make);

  AdapterConfig config_;
  std::vector<AdapterModule> modules_;
  std::shared_ptr<AdapterRuntime> runtime_;
  int64_t num_layers_ = 0;
};

}  // namespace hearth
