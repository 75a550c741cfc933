// Rényi-DP accountant for the sampled Gaussian mechanism of DP-SGD (Mironov, Talwar, Zhang
// 2019): RDP at integer and fractional orders, composition over steps, conversion to (ε, δ).
#pragma once
#include <cstdint>
#include <vector>

namespace hearth::privacy {

// How RDP becomes (ε, δ).
enum class RdpConversion {
  // ε = rdp + log(1/δ)/(α−1) (Mironov 2017, Prop. 3): what TF Privacy's tutorials and Abadi-era
  // figures were computed with.
  kClassic,
  // ε = rdp + log((α−1)/α) − (log δ + log α)/(α−1) (Balle et al. 2020, Thm. 21): tighter; what
  // current Opacus and TF Privacy report.
  kImproved,
};

// The default orders: 1.1 … 10.9 in steps of 0.1, 11 … 63, then 128, 256, 512, 1024.
const std::vector<double>& default_rdp_orders();

// RDP of one step of the sampled Gaussian mechanism at order `alpha` > 1, sampling rate q in
// [0, 1] and noise multiplier sigma > 0 (noise std / clipping norm).
double sampled_gaussian_rdp(double q, double sigma, double alpha);

struct PrivacySpent {
  double epsilon = 0;
  double order = 0;  // the order that gave the smallest ε
};

// ε at `delta` after `steps` steps of the sampled Gaussian mechanism.
PrivacySpent dp_sgd_epsilon(double q, double sigma, int64_t steps, double delta,
                            RdpConversion conversion = RdpConversion::kImproved,
                            const std::vector<double>& orders = default_rdp_orders());

// The smallest noise multiplier (to 1e-4 relative) that keeps ε ≤ target_epsilon at `delta`.
// kInvalidArgument when no σ ≤ 1000 does.
double noise_for_epsilon(double target_epsilon, double q, int64_t steps, double delta,
                         RdpConversion conversion = RdpConversion::kImproved);

// Keeps the running totals of one job (DP-SGD steps are all the same, so a count suffices).
class RdpAccountant {
 public:
  RdpAccountant(double sampling_rate, double noise_multiplier);
  void step(int64_t n = 1) { steps_ += n; }
  int64_t steps() const { return steps_; }
  PrivacySpent spent(double delta, RdpConversion conversion = RdpConversion::kImproved) const;

 private:
  double q_;
  double sigma_;
  int64_t steps_ = 0;
};

}  // namespace hearth::privacy
