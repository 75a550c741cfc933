#include "optim/optimizer.h"

#include <set>

#include "core/error.h"

namespace hearth {
namespace optim {
namespace {

std::string describe_param(const ParamGroup& g, size_t i) {
  return "parameter " + std::to_string(i) + " of group " + (g.name.empty() ? std::string("(unnamed)") : "\"" + g.name + "\"");
}

void check_param(const ParamGroup& g, size_t i) {
  const at::Tensor& p = g.params[i];
  const std::string what = describe_param(g, i);
  require(p.defined(), ErrorCode::kInvalidArgument, what + " is an undefined tensor");
  require(at::isFloatingType(p.scalar_type()), ErrorCode::kInvalidArgument,
          what + " has dtype " + std::string(c10::toString(p.scalar_type())) + "; optimizers need floating-point parameters");
  require(p.is_leaf() && p.requires_grad(), ErrorCode::kInvalidArgument,
          what + " must be a leaf tensor with requires_grad set (a trainable parameter)");
}

void check_lr(double lr, const std::string& where) {
  require(lr >= 0.0, ErrorCode::kInvalidArgument, "learning rate " + std::to_string(lr) + " of " + where + " is negative");
}

}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, double default_lr, double default_weight_decay) : groups_(std::move(groups)) {
  std::set<const void*> seen;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    ParamGroup& g = groups_[gi];
    if (!g.lr) g.lr = default_lr;
    if (!g.weight_decay) g.weight_decay = default_weight_decay;
    check_lr(*g.lr, "group " + std::to_string(gi));
    require(*g.weight_decay >= 0.0, ErrorCode::kInvalidArgument, "weight decay of group " + std::to_string(gi) + " is negative");
    require(g.rank >= 0, ErrorCode::kInvalidArgument, "rank of group " + std::to_string(gi) + " is negative");
    for (size_t i = 0; i < g.params.size(); ++i) {
      check_param(g, i);
      // The same tensor twice would be updated twice per step.
      require(seen.insert(g.params[i].unsafeGetTensorImpl()).second, ErrorCode::kInvalidArgument,
              describe_param(g, i) + " appears more than once in the optimizer's groups");
      params_.push_back(g.params[i]);
      group_of_.push_back(gi);
    }
  }
  states_.resize(params_.size());
}

void Optimizer::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
}

void Optimizer::set_lr(double lr) {
  check_lr(lr, "every group");
  for (auto& g : groups_) g.lr = lr;
}

void Optimizer::set_lr(size_t group, double lr) {
  require(group < groups_.size(), ErrorCode::kInvalidArgument,
          "group " + std::to_string(group) + " does not exist (the optimizer has " + std::to_string(groups_.size()) + ")");
  check_lr(lr, "group " + std::to_string(group));
  groups_[group].lr = lr;
}

double Optimizer::lr(size_t group) const {
  require(group < groups_.size(), ErrorCode::kInvalidArgument, "group " + std::to_string(group) + " does not exist");
  return *groups_[group].lr;
}

double Optimizer::weight_decay(size_t group) const {
  require(group < groups_.size(), ErrorCode::kInvalidArgument, "group " + std::to_string(group) + " does not exist");
  return *groups_[group].weight_decay;
}

const at::Tensor& Optimizer::param(size_t index) const {
  require(index < params_.size(), ErrorCode::kInvalidArgument, "parameter index " + std::to_string(index) + " is out of range");
  return params_[index];
}

const ParamState& Optimizer::state(size_t index) const {
  require(index < states_.size(), ErrorCode::kInvalidArgument, "parameter index " + std::to_string(index) + " is out of range");
  return states_[index];
}

std::vector<std::pair<std::string, at::Tensor>> Optimizer::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < states_.size(); ++i) {
    if (states_[i].exp_avg.defined()) out.emplace_back("param." + std::to_string(i) + ".exp_avg", states_[i].exp_avg);
    if (states_[i].exp_avg_sq.defined()) out.emplace_back("param." + std::to_string(i) + ".exp_avg_sq", states_[i].exp_avg_sq);
  }
  return out;
}

size_t Optimizer::state_bytes() const {
  // Storages, not numel * element size: a view would otherwise hide the memory behind it.
  // A storage shared by several state tensors is counted once.
  std::set<const void*> counted;
  size_t bytes = 0;
  for (const auto& [name, t] : state_tensors()) {
    if (counted.insert(t.storage().unsafeGetStorageImpl()).second) bytes += t.storage().nbytes();
  }
  return bytes;
}

std::map<std::string, size_t> Optimizer::state_bytes_by_group() const {
  std::map<std::string, size_t> bytes;
  for (const ParamGroup& g : groups_) bytes[g.name] = 0;
  std::set<const void*> counted;
  for (const auto& [name, t] : state_tensors()) {
    // Names are "param.<index>.<what>"; anything else (none today) is counted under "other".
    std::string group = "other";
    if (name.rfind("param.", 0) == 0) {
      const size_t index = std::stoul(name.substr(6, name.find('.', 6) - 6));
      if (index < group_of_.size()) group = groups_[group_of_[index]].name;
    }
    if (counted.insert(t.storage().unsafeGetStorageImpl()).second) bytes[group] += t.storage().nbytes();
  }
  return bytes;
}

}  // namespace optim
}  // namespace hearth
