// Adapters on disk in Hugging Face PEFT's layout: adapter_model.safetensors (PEFT's tensor
// names) + adapter_config.json (PEFT's LoraConfig fields), plus hearth.json with Hearth's own metadata.
#pragma once
#include <filesystem>
#include <memory>
#include <string>

#include "adapters/adapter.h"
#include "core/json.h"
#include "inference/decoder.h"

namespace hearth {

class SafetensorsFile;

// What a saved adapter folder says about itself (hearth.json and adapter_config.json).
struct AdapterFileInfo {
  std::string base_fingerprint;  // empty when the folder has no hearth.json (written by PEFT)
  Json training_summary;
  AdapterConfig config;
  std::string base_model_name;
  int64_t parameter_count = 0;
  int64_t tensor_count = 0;
};

// Writes `dir` as a whole (staged, then renamed into place): never a half-written folder.
void save_peft_adapter(const std::filesystem::path& dir, const Adapter& adapter, const std::string& base_model_name,
                       const std::string& base_fingerprint, const Json& training_summary);

// Loads an adapter for `decoder`, checking the config fields, every tensor's name, shape and
// values, and (when both are known) the base fingerprint. kNotFound for a missing folder or
// file; kCorruptFile naming the field or tensor; kInvalidArgument for a different base;
// kUnsupported for PEFT options Hearth does not implement (bias, rank_pattern, ...).
std::shared_ptr<Adapter> load_peft_adapter(const std::filesystem::path& dir, const Decoder& decoder,
                                           const std::string& base_fingerprint);

// An adapter from its parsed config (`info`) and a safetensors file of PEFT-named tensors, with
// the checks of load_peft_adapter; `what` names the source in errors. (load_peft_adapter and
// adapter_bundle.h share it.)
std::shared_ptr<Adapter> adapter_from_weights(const AdapterFileInfo& info, const SafetensorsFile& weights,
                                              const Decoder& decoder, const std::string& base_fingerprint,
                                              const std::string& what);

// hearth.json: Hearth's own metadata (method, seed, base fingerprint, training summary), kept
// out of adapter_config.json because older PEFT versions refuse unknown fields; and reading
// it back into `info`.
Json hearth_adapter_json(const Adapter& adapter, const std::string& base_fingerprint, const Json& training_summary);
void read_hearth_adapter_json(const Json& hearth, const std::string& what, AdapterFileInfo& info);

// Reads the folder's config and metadata without a model (for `hearth adapters info`).
AdapterFileInfo read_peft_adapter_info(const std::filesystem::path& dir);

// The adapter_config.json PEFT writes for `config` (PEFT 0.10's LoraConfig fields).
Json peft_config_json(const AdapterConfig& config, const std::string& base_model_name, int64_t num_layers);
// adapter_config.json -> AdapterConfig; `what` names the document in errors.
AdapterConfig adapter_config_from_peft(const Json& j, const std::string& what);

}  // namespace hearth
