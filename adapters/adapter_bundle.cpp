#include "adapters/adapter_bundle.h"

#include "core/error.h"
#include "core/safetensors.h"

namespace hearth {
namespace {

constexpr const char* kFormat = "hearth-adapter-bundle-1";
constexpr const char* kConfigKey = "adapter_config.json";
constexpr const char* kHearthKey = "hearth.json";

std::string metadata(const SafetensorsFile& file, const char* key, const std::string& name) {
  auto it = file.metadata().find(key);
  require(it != file.metadata().end(), ErrorCode::kCorruptFile, name + ": not a Hearth adapter bundle (no " + key + ")");
  return it->second;
}

AdapterFileInfo info_of(const SafetensorsFile& file, const std::string& name) {
  require(metadata(file, "format", name) == kFormat, ErrorCode::kCorruptFile,
          name + ": not a Hearth adapter bundle (format \"" + metadata(file, "format", name) + "\")");
  AdapterFileInfo info;
  const std::string config_what = name + " (" + kConfigKey + ")";
  const Json config = parse_json(metadata(file, kConfigKey, name), config_what);
  info.config = adapter_config_from_peft(config, config_what);
  info.base_model_name = json_get_or<std::string>(config, "base_model_name_or_path", "", config_what);
  const std::string hearth_what = name + " (" + kHearthKey + ")";
  read_hearth_adapter_json(parse_json(metadata(file, kHearthKey, name), hearth_what), hearth_what, info);
  for (const SafetensorsEntry& e : file.entries()) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    info.parameter_count += n;
    ++info.tensor_count;
  }
  return info;
}

}  // namespace

std::string adapter_to_bundle(const Adapter& adapter, const std::string& base_model_name,
                              const std::string& base_fingerprint, const Json& training_summary) {
  SafetensorsWriter writer;
  writer.set_metadata("format", kFormat);
  writer.set_metadata(kConfigKey, peft_config_json(adapter.config(), base_model_name, adapter.num_layers()).dump());
  writer.set_metadata(kHearthKey, hearth_adapter_json(adapter, base_fingerprint, training_summary).dump());
  for (const auto& [name, t] : adapter.named_parameters()) writer.add(name, t.detach().contiguous());
  return writer.to_bytes();
}

AdapterFileInfo read_adapter_bundle_info(std::string_view bytes, const std::string& name) {
  return info_of(*SafetensorsFile::borrow_bytes(bytes, name), name);
}

std::shared_ptr<Adapter> load_adapter_bundle(std::string_view bytes, const std::string& name, const Decoder& decoder,
                                             const std::string& base_fingerprint) {
  // The adapter's layers copy their tensors out (Adapter::from_tensors), so the bytes are only
  // read here: no copy of the whole bundle.
  auto file = SafetensorsFile::borrow_bytes(bytes, name);
  return adapter_from_weights(info_of(*file, name), *file, decoder, base_fingerprint, name);
}

}  // namespace hearth
