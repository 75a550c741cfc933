#include "adapters/stacked_delta.h"

#include <map>

#include "core/error.h"

namespace hearth {
namespace {

using TensorsByKey = std::map<std::string, at::Tensor>;

TensorsByKey tensors_of(const Adapter& a) {
  TensorsByKey out;
  for (const auto& [name, t] : a.named_parameters()) out[name] = t.detach();
  return out;
}

std::vector<std::string> target_union(const AdapterConfig& a, const AdapterConfig& b) {
  std::vector<std::string> out;
  for (const std::string& name : all_projection_names())
    if (a.targets_module(name) || b.targets_module(name)) out.push_back(name);
  return out;
}

}  // namespace

StackedDelta::StackedDelta(const Decoder& decoder, const Adapter& under, const AdapterConfig& delta) {
  const AdapterConfig& u = under.config();
  base_rank_ = u.rank;
  AdapterConfig stacked = delta;
  stacked.method = u.method;
  stacked.rank = u.rank + delta.rank;
  stacked.rslora = false;
  stacked.alpha = delta.scale() * double(stacked.rank);  // scale s_d
  stacked.first_layer = 0, stacked.last_layer = -1;
  stacked.targets = target_union(u, delta);
  stacked.validate();
  AdapterConfig fresh_config = stacked;
  fresh_config.rank = delta.rank;
  fresh_config.alpha = delta.alpha;
  const TensorsByKey user = tensors_of(under), fresh = tensors_of(*Adapter::create(decoder, fresh_config));
  const double user_factor = u.scale() / delta.scale();

  auto part = [](const TensorsByKey& t, const std::string& key) {
    auto it = t.find(key);
    return it == t.end() ? at::Tensor() : it->second;
  };
  adapter_ = Adapter::from_tensors(decoder, stacked, [&](const std::string& key, const std::vector<int64_t>& shape) {
    const at::Tensor mine = part(user, key), theirs = part(fresh, key);
    require(theirs.defined(), ErrorCode::kInternal, "stacked delta: no fresh tensor " + key);
    if (key.find("lora_magnitude_vector") != std::string::npos) return (mine.defined() ? mine : theirs).clone();
    const bool is_a = key.find("lora_A") != std::string::npos;
    const int64_t dim = is_a ? 0 : 1;
    at::Tensor base = mine.defined() ? (is_a ? mine.clone() : mine * user_factor)
                                     : at::zeros(is_a ? std::vector<int64_t>{base_rank_, shape[1]}
                                                      : std::vector<int64_t>{shape[0], base_rank_});
    at::Tensor out = at::cat({base, theirs}, dim);
    require(out.sizes().vec() == shape, ErrorCode::kInternal, "stacked delta: shape of " + key);
    return out;
  });
  for (const AdapterModule& m : adapter_->modules())
    frozen_.push_back({m.impl->lora_A(), m.impl->lora_B(), m.impl->magnitude(), !delta.targets_module(m.name)});
}

void StackedDelta::keep_base_frozen() const {
  at::NoGradGuard no_grad;
  for (const Frozen& f : frozen_) {
    if (f.magnitude.defined() && f.magnitude.grad().defined()) f.magnitude.mutable_grad().zero_();
    for (const auto& [t, dim] : {std::pair{f.a, int64_t(0)}, {f.b, int64_t(1)}}) {
      if (!t.grad().defined()) continue;
      at::Tensor g = t.mutable_grad();
      (f.whole ? g : g.narrow(dim, 0, base_rank_)).zero_();
    }
  }
}

}  // namespace hearth
