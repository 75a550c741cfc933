// APOLLO and APOLLO-Mini (Zhu et al. 2024, arXiv 2412.05270): Adam moments of a random
// low-rank projection of each matrix gradient set a channel- or tensor-wise gradient scale.
#pragma once
#include <cstdint>

#include "optim/adamw.h"
#include "optim/optimizer.h"

namespace hearth {
namespace optim {

enum class ApolloScaling {
  kChannel,  // APOLLO: one factor per channel (row or column along the larger dimension)
  kTensor,   // APOLLO-Mini: one factor for the whole matrix
};

struct ApolloSettings {
  AdamSettings adam{0.9, 0.999, 1e-6};  // eps 1e-6 as in the reference implementation
  // 0: relative to each matrix (a quarter of its smaller side, at most 256); else this rank,
  // clipped to min(m, n). Either way a matrix whose projected state would not be smaller than
  // AdamW's (two moments of its own size) is left to AdamW.
  int rank = 0;
  int update_gap = 200;                  // steps between projection refreshes (T)
  // The reference implementation's `scale`: the scaled gradient is multiplied by
  // alpha = sqrt(scale). APOLLO uses 1, APOLLO-Mini 128 (alpha = sqrt(128)).
  double scale = 1.0;
  ApolloScaling scaling = ApolloScaling::kChannel;
  double norm_growth_limit = 1.01;  // gamma of the norm-growth limiter; 0 disables it
  uint64_t seed = 0;                // base seed of every projection
};

// The settings of APOLLO-Mini: rank 1, tensor-wise scaling, scale 128.
ApolloSettings apollo_mini_settings();

class Apollo : public Optimizer {
 public:
  // Matrices (dim == 2) of groups with low_rank set are projected; every other parameter
  // is updated by AdamW (with this optimizer's betas and eps).
  Apollo(std::vector<ParamGroup> groups, ApolloSettings settings, double default_lr = 1e-3, double default_weight_decay = 0.0);

  void step() override;
  std::string kind() const override;
  std::string describe() const override;
  std::vector<std::pair<std::string, at::Tensor>> state_tensors() const override;

  // Whether parameter `index` is updated by APOLLO (true) or by AdamW (false).
  bool is_projected(size_t index) const { return rank_[index] > 0; }
  // The effective rank of parameter `index` (0 for AdamW parameters).
  int64_t rank(size_t index) const { return rank_[index]; }
  // The projection P used for the update of parameter `index` whose 0-based step counter is
  // `step`, regenerated from its seed: [r, m] with R = P G when m < n, else [r, n] with
  // R = G P^T. For tests and diagnostics.
  at::Tensor projection_for(size_t index, uint64_t step) const;

 protected:
  std::map<std::string, std::string> state_settings() const override;
  std::vector<int64_t> moment_shape(size_t index) const override;
  void on_state_loaded() override;

 private:
  // The rank parameter `index` is projected to (0: AdamW), for a wanted rank (0: relative).
  int64_t projection_rank(size_t index, int64_t wanted) const;

  // True when W [m, n] is projected from the right (R = G P^T, m >= n).
  bool projects_right(size_t index) const;
  const at::Tensor& projection(size_t index, uint64_t step);
  void apollo_update(size_t index, const at::Tensor& grad, double lr, double weight_decay);

  ApolloSettings settings_;
  std::vector<int64_t> rank_;             // 0: AdamW parameter
  std::vector<at::Tensor> projections_;   // cached P of each matrix (never saved)
  std::vector<int64_t> projection_refresh_;  // which refresh the cached P is; -1: none
};

}  // namespace optim
}  // namespace hearth
