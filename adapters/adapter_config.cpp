#include "adapters/adapter_config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace hearth {

const std::vector<std::string>& all_projection_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

const char* adapter_method_name(AdapterMethod method) { return method == AdapterMethod::kDoRA ? "dora" : "lora"; }

AdapterMethod parse_adapter_method(const std::string& name) {
  if (name == "lora") return AdapterMethod::kLoRA;
  if (name == "dora") return AdapterMethod::kDoRA;
  fail(ErrorCode::kInvalidArgument, "unknown adapter method \"" + name + "\" (lora or dora)");
}

double AdapterConfig::scale() const {
  return rslora ? alpha / std::sqrt(static_cast<double>(rank)) : alpha / static_cast<double>(rank);
}

void AdapterConfig::validate() const {
  require(rank > 0 && rank <= 4096, ErrorCode::kInvalidArgument,
          "adapter rank must be in 1..4096, got " + std::to_string(rank));
  require(std::isfinite(alpha) && alpha > 0, ErrorCode::kInvalidArgument, "adapter alpha must be a positive number");
  require(dropout >= 0 && dropout < 1, ErrorCode::kInvalidArgument, "adapter dropout must be in [0, 1)");
  require(!targets.empty(), ErrorCode::kInvalidArgument, "adapter targets: name at least one projection");
  for (const std::string& t : targets) {
    const auto& all = all_projection_names();
    require(std::find(all.begin(), all.end(), t) != all.end(), ErrorCode::kInvalidArgument,
            "adapter targets: unknown projection \"" + t + "\"");
  }
  require(first_layer >= 0, ErrorCode::kInvalidArgument, "adapter first_layer must be >= 0");
  require(last_layer == -1 || last_layer >= first_layer, ErrorCode::kInvalidArgument,
          "adapter last_layer must be -1 (the last) or >= first_layer");
}

int64_t AdapterConfig::resolved_last_layer(int64_t num_layers) const {
  return last_layer < 0 ? num_layers - 1 : last_layer;
}

bool AdapterConfig::covers_layer(int64_t layer, int64_t num_layers) const {
  return layer >= first_layer && layer <= resolved_last_layer(num_layers);
}

bool AdapterConfig::targets_module(const std::string& module) const {
  return std::find(targets.begin(), targets.end(), module) != targets.end();
}

std::vector<std::string> AdapterConfig::parse_targets(const std::string& csv) {
  const auto& all = all_projection_names();
  std::vector<bool> chosen(all.size(), false);
  std::stringstream in(csv);
  std::string item;
  bool any = false;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;
    any = true;
    if (item == "all") {
      std::fill(chosen.begin(), chosen.end(), true);
      continue;
    }
    const std::string full = item.size() > 5 && item.substr(item.size() - 5) == "_proj" ? item : item + "_proj";
    auto it = std::find(all.begin(), all.end(), full);
    require(it != all.end(), ErrorCode::kInvalidArgument,
            "unknown adapter target \"" + item + "\" (q, k, v, o, gate, up, down, or all)");
    chosen[it - all.begin()] = true;
  }
  require(any, ErrorCode::kInvalidArgument, "adapter targets: the list is empty");
  std::vector<std::string> out;
  for (size_t i = 0; i < all.size(); ++i)
    if (chosen[i]) out.push_back(all[i]);
  return out;
}

}  // namespace hearth
