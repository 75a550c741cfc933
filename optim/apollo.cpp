#include "optim/apollo.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "optim/random_projection.h"

namespace hearth {
namespace optim {
namespace {

// Guards the ratios of norms against a zero gradient, as the reference implementation does.
constexpr double kNormFloor = 1e-8;

std::string exact(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

}  // namespace

ApolloSettings apollo_mini_settings() {
  ApolloSettings s;
  s.rank = 1;
  s.scale = 128.0;
  s.scaling = ApolloScaling::kTensor;
  return s;
}

Apollo::Apollo(std::vector<ParamGroup> groups, ApolloSettings settings, double default_lr, double default_weight_decay)
    : Optimizer(std::move(groups), default_lr, default_weight_decay), settings_(settings) {
  validate(settings_.adam);
  require(settings_.rank >= 0, ErrorCode::kInvalidArgument,
          "APOLLO rank " + std::to_string(settings_.rank) + " must be at least 1 (or 0: relative to each matrix)");
  require(settings_.update_gap >= 1, ErrorCode::kInvalidArgument,
          "APOLLO update gap " + std::to_string(settings_.update_gap) + " must be at least 1 step");
  require(settings_.scale > 0.0, ErrorCode::kInvalidArgument, "APOLLO scale " + std::to_string(settings_.scale) + " must be positive");
  require(settings_.norm_growth_limit == 0.0 || settings_.norm_growth_limit >= 1.0, ErrorCode::kInvalidArgument,
          "APOLLO norm-growth limit " + std::to_string(settings_.norm_growth_limit) + " must be >= 1 (or 0 to disable it)");
  rank_.assign(num_params(), 0);
  projections_.resize(num_params());
  projection_refresh_.assign(num_params(), -1);
  for (size_t i = 0; i < num_params(); ++i) {
    const ParamGroup& g = this->groups()[group_of(i)];
    if (g.low_rank && param(i).dim() == 2) rank_[i] = projection_rank(i, g.rank > 0 ? g.rank : settings_.rank);
  }
}

int64_t Apollo::projection_rank(size_t index, int64_t wanted) const {
  const at::Tensor& p = param(index);
  const int64_t m = p.size(0), n = p.size(1), smaller = std::min(m, n), larger = std::max(m, n);
  const int64_t rank = std::min(wanted > 0 ? wanted : std::clamp<int64_t>(smaller / 4, 1, 256), smaller);
  // Projected: two moments [larger, rank] and the projection [rank, smaller]; AdamW: two [m, n].
  if (2 * larger * rank + rank * smaller >= 2 * m * n) {
    spdlog::info("APOLLO: parameter {} is [{}, {}]; projecting to rank {} would save no memory, so AdamW updates it", index,
                 m, n, rank);
    return 0;
  }
  return rank;
}

std::string Apollo::kind() const { return settings_.scaling == ApolloScaling::kTensor ? "apollo-mini" : "apollo"; }

std::string Apollo::describe() const {
  size_t projected = 0;
  for (auto r : rank_) projected += r > 0;
  std::ostringstream out;
  out << kind() << " (rank " << (settings_.rank > 0 ? std::to_string(settings_.rank) : std::string("relative")) << ", update gap " << settings_.update_gap << ", scale " << settings_.scale
      << " (alpha " << std::sqrt(settings_.scale) << "), " << (settings_.scaling == ApolloScaling::kTensor ? "tensor" : "channel")
      << "-wise, norm-growth limit " << settings_.norm_growth_limit << ", betas " << settings_.adam.beta1 << ", "
      << settings_.adam.beta2 << ", eps " << settings_.adam.eps << ", seed " << settings_.seed << "; " << projected
      << " projected matrices, " << num_params() - projected << " AdamW parameters)";
  return out.str();
}

bool Apollo::projects_right(size_t index) const {
  // As the reference: a tall or square matrix is projected along its columns.
  return param(index).size(0) >= param(index).size(1);
}

std::vector<int64_t> Apollo::moment_shape(size_t index) const {
  if (!is_projected(index)) return param(index).sizes().vec();
  const at::Tensor& p = param(index);
  return projects_right(index) ? std::vector<int64_t>{p.size(0), rank_[index]} : std::vector<int64_t>{rank_[index], p.size(1)};
}

at::Tensor Apollo::projection_for(size_t index, uint64_t step) const {
  require(index < num_params() && is_projected(index), ErrorCode::kInvalidArgument,
          "parameter " + std::to_string(index) + " is not a projected APOLLO matrix");
  const at::Tensor& p = param(index);
  const int64_t dim = projects_right(index) ? p.size(1) : p.size(0);
  const uint64_t refresh = step / static_cast<uint64_t>(settings_.update_gap);
  return random_projection(projection_seed(settings_.seed, index, refresh), rank_[index], dim, p.scalar_type());
}

const at::Tensor& Apollo::projection(size_t index, uint64_t step) {
  const int64_t refresh = static_cast<int64_t>(step / static_cast<uint64_t>(settings_.update_gap));
  if (projection_refresh_[index] != refresh) {
    projections_[index] = projection_for(index, step);
    projection_refresh_[index] = refresh;
  }
  return projections_[index];
}

void Apollo::apollo_update(size_t index, const at::Tensor& grad, double lr, double weight_decay) {
  at::NoGradGuard no_grad;
  const at::Tensor& w = param(index);
  ParamState& st = mutable_state(index);
  const AdamSettings& adam = settings_.adam;
  const bool right = projects_right(index);

  // 1. Project: R = G P^T ([m, r]) or R = P G ([r, n]); the projection changes every T steps,
  //    the moments carry on across the change.
  const at::Tensor& proj = projection(index, st.step);
  const at::Tensor r = right ? at::mm(grad, proj.t()) : at::mm(proj, grad);
  if (!st.exp_avg.defined()) {
    st.exp_avg = at::zeros_like(r);
    st.exp_avg_sq = at::zeros_like(r);
  }
  st.step += 1;

  // 2. Adam moments in the projected space; the normalized update without bias correction
  //    (applied below as a step size, as the reference does).
  st.exp_avg.mul_(adam.beta1).add_(r, 1.0 - adam.beta1);
  st.exp_avg_sq.mul_(adam.beta2).addcmul_(r, r, 1.0 - adam.beta2);
  const at::Tensor r_adam = st.exp_avg / st.exp_avg_sq.sqrt().add_(adam.eps);

  // 3. Scaling factor: channel-wise along the larger (unprojected) dimension, or one for all.
  //    G~ = G * factor is never materialized: its norm comes from the channel norms of G,
  //    and the update below applies factor and step size in one pass over W.
  at::Tensor factor;
  double scaled_norm = 0.0;
  if (settings_.scaling == ApolloScaling::kChannel) {
    const int64_t reduce = right ? 1 : 0;  // over the rank dimension of R, and the same one of G
    factor = at::norm(r_adam, 2, {reduce}, /*keepdim=*/true) / at::norm(r, 2, {reduce}, true).add_(kNormFloor);
    scaled_norm = at::norm(at::norm(grad, 2, {reduce}, true).mul_(factor)).item<double>();
  } else {
    factor = at::norm(r_adam) / at::norm(r).add_(kNormFloor);
    scaled_norm = factor.item<double>() * at::norm(grad).item<double>();
  }

  // 4. Norm-growth limiter (from Fira): the scaled gradient's norm grows at most by gamma per step.
  double limiter = 1.0;
  if (settings_.norm_growth_limit > 0.0) {
    if (st.last_update_norm >= 0.0) {
      const double gamma = settings_.norm_growth_limit;
      limiter = std::max(scaled_norm / (st.last_update_norm + kNormFloor), gamma) / gamma;
    }
    st.last_update_norm = scaled_norm / limiter;
  }

  // 5. W -= lr * bias-corrected step * alpha * G~ / limiter, then decoupled weight decay.
  const double t = static_cast<double>(st.step);
  const double step_size = lr * std::sqrt(1.0 - std::pow(adam.beta2, t)) / (1.0 - std::pow(adam.beta1, t));
  w.addcmul_(grad, factor, -step_size * std::sqrt(settings_.scale) / limiter);
  if (weight_decay > 0.0) w.add_(w, -lr * weight_decay);
}

void Apollo::step() {
  for (size_t i = 0; i < num_params(); ++i) {
    const at::Tensor& p = param(i);
    if (!p.grad().defined()) continue;
    const size_t g = group_of(i);
    if (is_projected(i)) {
      apollo_update(i, p.grad(), lr(g), weight_decay(g));
    } else {
      adamw_update(p, p.grad(), mutable_state(i), settings_.adam, lr(g), weight_decay(g));
    }
  }
}

std::vector<std::pair<std::string, at::Tensor>> Apollo::state_tensors() const {
  auto out = Optimizer::state_tensors();
  for (size_t i = 0; i < projections_.size(); ++i) {
    if (projections_[i].defined()) out.emplace_back("param." + std::to_string(i) + ".projection", projections_[i]);
  }
  return out;
}

std::map<std::string, std::string> Apollo::state_settings() const {
  std::ostringstream ranks;
  for (size_t i = 0; i < rank_.size(); ++i) ranks << (i ? "," : "") << rank_[i];
  return {{"beta1", exact(settings_.adam.beta1)},
          {"beta2", exact(settings_.adam.beta2)},
          {"eps", exact(settings_.adam.eps)},
          {"ranks", ranks.str()},
          {"update_gap", std::to_string(settings_.update_gap)},
          {"scale", exact(settings_.scale)},
          {"norm_growth_limit", exact(settings_.norm_growth_limit)},
          {"seed", std::to_string(settings_.seed)}};
}

void Apollo::on_state_loaded() {
  // Projections are regenerated from their seeds at the next step.
  for (size_t i = 0; i < projections_.size(); ++i) {
    projections_[i] = at::Tensor();
    projection_refresh_[i] = -1;
  }
}

}  // namespace optim
}  // namespace hearth
