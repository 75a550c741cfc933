// What an adapter is: method (LoRA or DoRA), rank, scaling, dropout, which projections of
// which layers it adapts, and the seed of its initialization.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hearth {

enum class AdapterMethod { kLoRA, kDoRA };

// Bounds of the settings: far beyond any useful adapter, near enough that the scale alpha/rank
// and the factors' memory stay finite and small (an alpha of 1e38 overflows the logits to NaN).
constexpr int64_t kMaxAdapterRank = 4096;
constexpr double kMaxAdapterAlpha = 10000;
constexpr int64_t kMaxAdapterLayer = 1023;

struct AdapterConfig {
  AdapterMethod method = AdapterMethod::kLoRA;
  int64_t rank = 8;
  double alpha = 16;
  bool rslora = false;  // scale = alpha / sqrt(rank) instead of alpha / rank
  double dropout = 0.0;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  int64_t first_layer = 0, last_layer = -1;  // inclusive range; -1 = last
  uint64_t seed = 0;

  // The factor s of y = W x + s B A x.
  double scale() const;
  // kInvalidArgument naming the bad field (rank, alpha, dropout, targets, layer range).
  void validate() const;
  // Whether `layer` of a model with `num_layers` layers is adapted.
  bool covers_layer(int64_t layer, int64_t num_layers) const;
  // The last adapted layer for a model with `num_layers` layers (resolves -1).
  int64_t resolved_last_layer(int64_t num_layers) const;
  bool targets_module(const std::string& module) const;

  // "q,k,v,o,gate,up,down" or full names ("q_proj", ...) or "all"; kInvalidArgument on an
  // unknown name. The result is in the decoder's projection order, without duplicates.
  static std::vector<std::string> parse_targets(const std::string& csv);
};

// The seven projection names in the decoder's order (DecoderLayer::projections()).
const std::vector<std::string>& all_projection_names();
// The index of `name` in all_projection_names(); kInvalidArgument for an unknown name.
int64_t projection_index(const std::string& name);

const char* adapter_method_name(AdapterMethod method);  // "lora" | "dora"
AdapterMethod parse_adapter_method(const std::string& name);

}  // namespace hearth
