#include "optim/make_optimizer.h"

#include <sstream>

#include "core/error.h"
#include "core/range_check.h"
#include "optim/adamw.h"
#include "optim/apollo.h"

namespace hearth {
namespace optim {
namespace {

bool is_apollo(const std::string& name) { return name == "apollo" || name == "apollo-mini"; }

void check_name(const std::string& name) {
  require(name == "adamw" || is_apollo(name), ErrorCode::kInvalidArgument,
          "unknown optimizer \"" + name + "\"; choose adamw, apollo or apollo-mini");
}

AdamSettings adam_settings(const OptimizerConfig& cfg) {
  return {cfg.beta1, cfg.beta2, cfg.eps.value_or(is_apollo(cfg.name) ? 1e-6 : 1e-8)};
}

ApolloSettings apollo_settings(const OptimizerConfig& cfg) {
  const bool mini = cfg.name == "apollo-mini";
  ApolloSettings s = mini ? apollo_mini_settings() : ApolloSettings{};
  s.adam = adam_settings(cfg);
  if (cfg.apollo_rank) s.rank = *cfg.apollo_rank;
  if (cfg.apollo_scale) s.scale = *cfg.apollo_scale;
  s.update_gap = cfg.apollo_update_gap;
  s.norm_growth_limit = cfg.apollo_norm_growth_limit;
  s.seed = cfg.seed;
  return s;
}

}  // namespace

void OptimizerConfig::validate() const {
  check_name(name);
  require_number_in_range("--lr", lr, 0, 1, Bound::kOpen);
  require_number_in_range("--weight-decay", weight_decay, 0, 1);
  require_number_in_range("beta1", beta1, 0, 1, Bound::kClosed, Bound::kOpen);
  require_number_in_range("beta2", beta2, 0, 1, Bound::kClosed, Bound::kOpen);
  if (eps) require_number_in_range("eps", *eps, 0, 1);
  if (apollo_rank) require_integer_in_range("--apollo-rank", *apollo_rank, 1, 65536);
  require_integer_in_range("--apollo-update-gap", apollo_update_gap, 1, 1000000);
  if (apollo_scale) require_number_in_range("--apollo-scale", *apollo_scale, 0, 1e6, Bound::kOpen);
  if (apollo_norm_growth_limit != 0) require_number_in_range("APOLLO norm-growth limit", apollo_norm_growth_limit, 1, 1e6);
}

std::string OptimizerConfig::describe() const {
  check_name(name);
  std::ostringstream out;
  const AdamSettings a = adam_settings(*this);
  out << name << ": lr " << lr << ", weight decay " << weight_decay << ", betas " << a.beta1 << "/" << a.beta2 << ", eps " << a.eps;
  if (is_apollo(name)) {
    const ApolloSettings s = apollo_settings(*this);
    out << ", rank " << (s.rank > 0 ? std::to_string(s.rank) : std::string("relative")) << ", update gap " << s.update_gap << ", scale " << s.scale << ", "
        << (s.scaling == ApolloScaling::kTensor ? "tensor" : "channel") << "-wise, norm-growth limit " << s.norm_growth_limit
        << ", seed " << s.seed;
  }
  return out.str();
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, std::vector<ParamGroup> groups) {
  cfg.validate();
  if (cfg.name == "adamw") return std::make_unique<AdamW>(std::move(groups), adam_settings(cfg), cfg.lr, cfg.weight_decay);
  return std::make_unique<Apollo>(std::move(groups), apollo_settings(cfg), cfg.lr, cfg.weight_decay);
}

}  // namespace optim
}  // namespace hearth
