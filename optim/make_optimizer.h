// Builds an optimizer from a plain configuration (what the CLI, the C API and job records
// carry), so callers never name the concrete classes.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace hearth {
namespace optim {

struct OptimizerConfig {
  std::string name = "apollo";  // "adamw" | "apollo" | "apollo-mini"
  // For groups that do not set their own lr / weight_decay.
  double lr = 1e-3;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  // Unset: 1e-8 for AdamW (torch's default), 1e-6 for APOLLO (the reference's default).
  std::optional<double> eps;
  // APOLLO: unset means relative to each matrix for apollo (a quarter of its smaller side, at most
  // 256), 1 for apollo-mini. Matrices where projecting saves no memory are left to AdamW.
  std::optional<int> apollo_rank;
  int apollo_update_gap = 200;
  // The reference's `scale`; the update is multiplied by sqrt(scale). Unset: 1 for apollo,
  // 128 for apollo-mini.
  std::optional<double> apollo_scale;
  double apollo_norm_growth_limit = 1.01;
  uint64_t seed = 0;

  // Refuses an unknown name or a setting outside its range (kInvalidArgument naming the
  // option, the value and the range).
  void validate() const;
  // One line for logs, with the defaults resolved.
  std::string describe() const;
};

// The optimizer `cfg.name` over `groups`. Unknown name or out-of-range settings ->
// kInvalidArgument.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, std::vector<ParamGroup> groups);

}  // namespace optim
}  // namespace hearth
