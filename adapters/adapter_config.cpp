#include "adapters/adapter_config.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "core/range_check.h"

namespace hearth {

const std::vector<std::string>& all_projection_names() {
  static const std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

int64_t projection_index(const std::string& name) {
  const std::vector<std::string>& names = all_projection_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int64_t>(i);
  fail(ErrorCode::kInvalidArgument, "unknown projection \"" + name + "\"");
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
  require_integer_in_range("adapter rank (--rank)", rank, 1, kMaxAdapterRank);
  require_number_in_range("adapter alpha (--alpha)", alpha, 0, kMaxAdapterAlpha, Bound::kOpen);
  require_number_in_range("adapter dropout (--lora-dropout)", dropout, 0, 1, Bound::kClosed, Bound::kOpen);
  require(!targets.empty(), ErrorCode::kInvalidArgument, "adapter targets: name at least one projection");
  for (const std::string& t : targets) {
    const auto& all = all_projection_names();
    require(std::find(all.begin(), all.end(), t) != all.end(), ErrorCode::kInvalidArgument,
            "adapter targets: unknown projection \"" + t + "\"");
  }
  require_integer_in_range("adapter first layer", first_layer, 0, kMaxAdapterLayer);
  require(last_layer == -1 || (last_layer >= first_layer && last_layer <= kMaxAdapterLayer), ErrorCode::kInvalidArgument,
          "adapter last layer must be -1 (the last) or in " + std::to_string(first_layer) + ".." +
              std::to_string(kMaxAdapterLayer) + ", got " + std::to_string(last_layer));
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
