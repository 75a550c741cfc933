// What a training run updates: the parameters of a LoRA / DoRA adapter attached to a frozen
// base, or every weight of a full-precision base (full fine-tuning), behind one interface.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "adapters/adapter_config.h"
#include "core/json.h"
#include "inference/decoder.h"
#include "optim/optimizer.h"

namespace hearth {
class Adapter;
}

namespace hearth::trainer {

class Trainable {
 public:
  // A fresh adapter (seeded by config.seed) created for `decoder` and attached to it.
  static Trainable adapter(Decoder& decoder, const AdapterConfig& config);
  // Every weight of `decoder` made trainable: owned fp32 copies with requires_grad (the model
  // must be loaded with fp32 dense weights, without --quant).
  static Trainable full(Decoder& decoder);

  // Trainable tensors in a stable order with their names (PEFT names for adapters, Hugging
  // Face names for a full model).
  const std::vector<std::pair<std::string, at::Tensor>>& named_parameters() const { return named_; }
  int64_t parameter_count() const;
  // Optimizer groups: matrices (projected by APOLLO) and vectors / embeddings (AdamW).
  std::vector<optim::ParamGroup> param_groups() const;
  // Dropout on for training, off for evaluation.
  void set_training(bool training);
  // "lora", "dora" or "full".
  const std::string& method() const { return method_; }
  const std::shared_ptr<Adapter>& adapter_ptr() const { return adapter_; }

  // Writes the result into `dir` atomically: a PEFT adapter folder, or for a full model
  // model.safetensors + config.json.
  void save(const std::filesystem::path& dir, const Decoder& decoder, const std::string& base_name,
            const std::string& base_fingerprint, const Json& summary) const;

 private:
  std::string method_;
  std::vector<std::pair<std::string, at::Tensor>> named_;
  std::shared_ptr<Adapter> adapter_;
};

}  // namespace hearth::trainer
