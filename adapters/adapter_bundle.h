// One adapter as one byte string, which is what the vault seals: a safetensors file whose
// tensors carry PEFT's names and whose metadata holds adapter_config.json and hearth.json.
// Once decrypted it is still an ordinary safetensors file (PEFT's loader reads the tensors).
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "adapters/adapter.h"
#include "adapters/peft_files.h"
#include "core/json.h"
#include "inference/decoder.h"

namespace hearth {

// The bundle's bytes, built in memory (nothing touches the disk).
std::string adapter_to_bundle(const Adapter& adapter, const std::string& base_model_name,
                              const std::string& base_fingerprint, const Json& training_summary);

// The config and metadata of a bundle without a model. `name` stands for it in errors
// (kCorruptFile naming the field).
AdapterFileInfo read_adapter_bundle_info(std::string_view bytes, const std::string& name);

// Loads a bundle for `decoder` with the checks of load_peft_adapter (config, every tensor's
// name, shape and values, base fingerprint).
std::shared_ptr<Adapter> load_adapter_bundle(std::string_view bytes, const std::string& name, const Decoder& decoder,
                                             const std::string& base_fingerprint);

}  // namespace hearth
