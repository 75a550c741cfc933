#include "adapters/peft_files.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "core/atomic_file.h"
#include "core/range_check.h"
#include "core/safetensors.h"

namespace fs = std::filesystem;

namespace hearth {
namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kHearthFile = "hearth.json";

std::string shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void require_file(const fs::path& path) {
  require(fs::is_regular_file(path), ErrorCode::kNotFound, path.string() + " does not exist (not a PEFT adapter folder?)");
}

// layers_to_transform: null, one index, or a list of consecutive indices.
void read_layer_range(const Json& j, AdapterConfig& c, const std::string& what) {
  if (!j.contains("layers_to_transform") || j["layers_to_transform"].is_null()) return;
  const Json& v = j["layers_to_transform"];
  std::vector<int64_t> layers;
  if (v.is_number_integer()) {
    layers.push_back(v.get<int64_t>());
  } else {
    layers = json_get<std::vector<int64_t>>(j, "layers_to_transform", what);
  }
  require(!layers.empty(), ErrorCode::kCorruptFile, what + ": layers_to_transform is an empty list");
  std::sort(layers.begin(), layers.end());
  require(layers.front() >= 0, ErrorCode::kCorruptFile, what + ": layers_to_transform holds a negative layer");
  // A difference of two non-negative indices cannot overflow (layers[i - 1] + 1 could).
  for (size_t i = 1; i < layers.size(); ++i)
    require(layers[i] - layers[i - 1] == 1, ErrorCode::kUnsupported,
            what + ": layers_to_transform must be a consecutive range of layers in Hearth");
  c.first_layer = layers.front();
  c.last_layer = layers.back();
}

std::vector<std::string> read_targets(const Json& j, const std::string& what) {
  require(j.contains("target_modules"), ErrorCode::kCorruptFile, what + ": missing field \"target_modules\"");
  const Json& v = j["target_modules"];
  if (v.is_string()) {
    require(v.get<std::string>() == "all-linear", ErrorCode::kUnsupported,
            what + ": target_modules as a regular expression is not supported; list the module names");
    return all_projection_names();
  }
  std::vector<std::string> names = json_get<std::vector<std::string>>(j, "target_modules", what);
  std::vector<std::string> out;
  for (const std::string& name : all_projection_names())
    if (std::find(names.begin(), names.end(), name) != names.end()) out.push_back(name);
  for (const std::string& name : names) {
    // PEFT names Phi-3's fused modules; Hearth adapts the split parts (inference/fused_projections.h).
    require(name != "qkv_proj" && name != "gate_up_proj", ErrorCode::kUnsupported,
            what + ": target module \"" + name + "\" is Phi-3's fused projection; Hearth adapts q_proj, k_proj, v_proj, "
                   "gate_proj and up_proj separately and does not load adapters of the fused modules");
    require(std::find(out.begin(), out.end(), name) != out.end(), ErrorCode::kUnsupported,
            what + ": target module \"" + name + "\" is not one of the decoder projections Hearth adapts");
  }
  require(!out.empty(), ErrorCode::kCorruptFile, what + ": target_modules is empty");
  return out;
}

void reject_unsupported(const Json& j, const std::string& what) {
  const std::string bias = json_get_or<std::string>(j, "bias", "none", what);
  require(bias == "none", ErrorCode::kUnsupported, what + ": bias \"" + bias + "\" is not supported (only \"none\")");
  require(!json_get_or<bool>(j, "fan_in_fan_out", false, what), ErrorCode::kUnsupported,
          what + ": fan_in_fan_out true is not supported");
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    require(!j.contains(key) || j[key].is_null() || j[key].empty(), ErrorCode::kUnsupported,
            what + ": " + key + " (per-module ranks or alphas) is not supported");
  require(!j.contains("modules_to_save") || j["modules_to_save"].is_null() || j["modules_to_save"].empty(),
          ErrorCode::kUnsupported, what + ": modules_to_save is not supported");
}

// The adapter's tensor for `key`, checked for presence, shape, float dtype and finite values.
at::Tensor checked_tensor(const SafetensorsFile& file, const std::string& key, const std::vector<int64_t>& shape,
                          int64_t rank) {
  require(file.contains(key), ErrorCode::kCorruptFile, file.path().string() + ": missing tensor " + key);
  const SafetensorsEntry& e = file.entry(key);
  require(e.shape == shape, ErrorCode::kCorruptFile,
          file.path().string() + ": tensor " + key + " has shape " + shape_string(e.shape) + ", expected " +
              shape_string(shape) + " (rank " + std::to_string(rank) + " for this model)");
  require(e.dtype == at::kFloat || e.dtype == at::kBFloat16 || e.dtype == at::kHalf, ErrorCode::kCorruptFile,
          file.path().string() + ": tensor " + key + " is not a float tensor");
  at::Tensor t = file.tensor(key).to(at::kFloat);
  // A NaN or infinity makes the sum non-finite: one pass without a mask tensor. Only a
  // non-finite sum (which finite values can also reach by overflow) needs the exact check.
  const bool finite = std::isfinite(t.sum().item<float>()) || at::isfinite(t).all().item<bool>();
  require(finite, ErrorCode::kCorruptFile,
          file.path().string() + ": tensor " + key + " holds NaN or infinite values");
  return t;
}

// PEFT writes an integer lora_alpha; keep fractional ones exact.
Json alpha_json(double alpha) {
  if (alpha == std::floor(alpha) && std::fabs(alpha) < 1e15) return Json(static_cast<int64_t>(alpha));
  return Json(alpha);
}

}  // namespace

Json peft_config_json(const AdapterConfig& c, const std::string& base_model_name, int64_t num_layers) {
  Json layers = nullptr;
  const bool all_layers = c.first_layer == 0 && c.resolved_last_layer(num_layers) == num_layers - 1;
  if (!all_layers) {
    layers = Json::array();
    for (int64_t l = c.first_layer; l <= c.resolved_last_layer(num_layers); ++l) layers.push_back(l);
  }
  return Json{{"alpha_pattern", Json::object()},
              {"auto_mapping", nullptr},
              {"base_model_name_or_path", base_model_name},
              {"bias", "none"},
              {"fan_in_fan_out", false},
              {"inference_mode", true},
              {"init_lora_weights", true},
              {"layer_replication", nullptr},
              {"layers_pattern", all_layers ? Json(nullptr) : Json("layers")},
              {"layers_to_transform", layers},
              {"loftq_config", Json::object()},
              {"lora_alpha", alpha_json(c.alpha)},
              {"lora_dropout", c.dropout},
              {"megatron_config", nullptr},
              {"megatron_core", "megatron.core"},
              {"modules_to_save", nullptr},
              {"peft_type", "LORA"},
              {"r", c.rank},
              {"rank_pattern", Json::object()},
              {"revision", nullptr},
              {"target_modules", c.targets},
              {"task_type", "CAUSAL_LM"},
              {"use_dora", c.method == AdapterMethod::kDoRA},
              {"use_rslora", c.rslora}};
}

AdapterConfig adapter_config_from_peft(const Json& j, const std::string& what) {
  require(j.is_object(), ErrorCode::kCorruptFile, what + ": not a JSON object");
  const std::string type = json_get<std::string>(j, "peft_type", what);
  require(type == "LORA", ErrorCode::kUnsupported, what + ": peft_type \"" + type + "\" is not supported (only LORA)");
  reject_unsupported(j, what);
  AdapterConfig c;
  c.rank = json_get_integer_in_range(j, "r", 1, kMaxAdapterRank, what);
  c.alpha = json_get<double>(j, "lora_alpha", what);
  require(c.alpha > 0 && c.alpha <= kMaxAdapterAlpha, ErrorCode::kCorruptFile,
          what + ": \"lora_alpha\" must be a finite number in (0, " + format_number(kMaxAdapterAlpha) + "], got " +
              format_number(c.alpha));
  c.dropout = json_get_or<double>(j, "lora_dropout", 0.0, what);
  require(c.dropout >= 0 && c.dropout < 1, ErrorCode::kCorruptFile,
          what + ": \"lora_dropout\" must be a finite number in [0, 1), got " + format_number(c.dropout));
  c.method = json_get_or<bool>(j, "use_dora", false, what) ? AdapterMethod::kDoRA : AdapterMethod::kLoRA;
  c.rslora = json_get_or<bool>(j, "use_rslora", false, what);
  c.targets = read_targets(j, what);
  read_layer_range(j, c, what);
  try {
    c.validate();
  } catch (const Error& e) {
    fail(ErrorCode::kCorruptFile, what + ": " + e.what());
  }
  return c;
}

void save_peft_adapter(const fs::path& dir, const Adapter& adapter, const std::string& base_model_name,
                       const std::string& base_fingerprint, const Json& training_summary) {
  StagedDirectory staged(dir);
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  for (const auto& [name, t] : adapter.named_parameters()) writer.add(name, t.detach().contiguous());
  writer.write(staged.path() / kWeightsFile);
  const Json config = peft_config_json(adapter.config(), base_model_name, adapter.num_layers());
  write_file_atomic(staged.path() / kConfigFile, config.dump(2) + "\n");
  // Hearth's own metadata stays out of adapter_config.json: older PEFT versions refuse unknown fields.
  write_file_atomic(staged.path() / kHearthFile, hearth_adapter_json(adapter, base_fingerprint, training_summary).dump(2) + "\n");
  staged.commit();
}

Json hearth_adapter_json(const Adapter& adapter, const std::string& base_fingerprint, const Json& training_summary) {
  return Json{{"format", "hearth-adapter"},
              {"version", 1},
              {"method", adapter_method_name(adapter.config().method)},
              {"seed", adapter.config().seed},
              {"base_fingerprint", base_fingerprint},
              {"training_summary", training_summary.is_null() ? Json::object() : training_summary}};
}

void read_hearth_adapter_json(const Json& hearth, const std::string& what, AdapterFileInfo& info) {
  info.base_fingerprint = json_get<std::string>(hearth, "base_fingerprint", what);
  info.training_summary = hearth.contains("training_summary") ? hearth["training_summary"] : Json::object();
  info.config.seed = json_get_or<uint64_t>(hearth, "seed", 0, what);
}

AdapterFileInfo read_peft_adapter_info(const fs::path& dir) {
  require(fs::is_directory(dir), ErrorCode::kNotFound, dir.string() + " is not a folder (expected a PEFT adapter folder)");
  require_file(dir / kConfigFile);
  require_file(dir / kWeightsFile);
  AdapterFileInfo info;
  const Json config = read_json_file(dir / kConfigFile);
  const std::string what = (dir / kConfigFile).string();
  info.config = adapter_config_from_peft(config, what);
  info.base_model_name = json_get_or<std::string>(config, "base_model_name_or_path", "", what);
  if (fs::exists(dir / kHearthFile)) read_hearth_adapter_json(read_json_file(dir / kHearthFile), (dir / kHearthFile).string(), info);
  auto file = SafetensorsFile::open(dir / kWeightsFile);
  for (const SafetensorsEntry& e : file->entries()) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    info.parameter_count += n;
    ++info.tensor_count;
  }
  return info;
}

std::shared_ptr<Adapter> load_peft_adapter(const fs::path& dir, const Decoder& decoder,
                                           const std::string& base_fingerprint) {
  const AdapterFileInfo info = read_peft_adapter_info(dir);
  return adapter_from_weights(info, *SafetensorsFile::open(dir / kWeightsFile), decoder, base_fingerprint, dir.string());
}

std::shared_ptr<Adapter> adapter_from_weights(const AdapterFileInfo& info, const SafetensorsFile& weights,
                                              const Decoder& decoder, const std::string& base_fingerprint,
                                              const std::string& what) {
  if (!info.base_fingerprint.empty() && !base_fingerprint.empty()) {
    require(info.base_fingerprint == base_fingerprint, ErrorCode::kInvalidArgument,
            what + " was trained on base model " + info.base_fingerprint + ", but this model's fingerprint is " +
                base_fingerprint + "; load the model it was trained on");
  } else if (info.base_fingerprint.empty()) {
    spdlog::warn("{} has no {}: its base model cannot be checked beyond tensor shapes", what, kHearthFile);
  }
  const int64_t layers = static_cast<int64_t>(decoder.layers().size());
  require(info.config.resolved_last_layer(layers) < layers, ErrorCode::kInvalidArgument,
          what + " adapts layers up to " + std::to_string(info.config.last_layer) + ", but this model has " +
              std::to_string(layers) + " layers");
  std::set<std::string> used;
  auto adapter = Adapter::from_tensors(decoder, info.config, [&](const std::string& key, const std::vector<int64_t>& shape) {
    used.insert(key);
    return checked_tensor(weights, key, shape, info.config.rank);
  });
  for (const SafetensorsEntry& e : weights.entries())
    require(used.count(e.name) != 0, ErrorCode::kCorruptFile,
            weights.path().string() + ": unexpected tensor " + e.name +
                " (not a module this adapter's config targets on a model of " + std::to_string(layers) + " layers)");
  return adapter;
}

}  // namespace hearth
