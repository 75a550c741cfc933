#include "privacy/rdp_accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "core/error.h"

namespace hearth::privacy {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

double log_add(double a, double b) {
  if (a == kNegInf) return b;
  if (b == kNegInf) return a;
  double hi = std::max(a, b), lo = std::min(a, b);
  return hi + std::log1p(std::exp(lo - hi));
}

// log(exp(a) − exp(b)) for a ≥ b.
double log_sub(double a, double b) {
  if (b == kNegInf) return a;
  if (a <= b) return kNegInf;  // the series only ever subtracts smaller terms; guard rounding
  return a + std::log1p(-std::exp(b - a));
}

double log_binom(double n, double k) { return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1); }

// log(erfc(x)), accurate also for large x where erfc underflows.
double log_erfc(double x) {
  if (x < 20) return std::log(std::erfc(x));
  // Asymptotic expansion: erfc(x) ≈ exp(−x²)/(x√π) · (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶)).
  double x2 = x * x;
  return -x2 - std::log(x) - 0.5 * std::log(M_PI) + std::log1p(-0.5 / x2 + 0.75 / (x2 * x2) - 1.875 / (x2 * x2 * x2));
}

// log A_α for integer α: a finite binomial sum.
double log_a_integer(double q, double sigma, int alpha) {
  double log_a = kNegInf;
  for (int i = 0; i <= alpha; ++i) {
    double term = log_binom(alpha, i) + i * std::log(q) + (alpha - i) * std::log1p(-q) +
                  (double(i) * i - i) / (2 * sigma * sigma);
    log_a = log_add(log_a, term);
  }
  return log_a;
}

// log A_α for fractional α: two converging series split at z0 (Mironov et al. 2019, §3.3).
double log_a_fractional(double q, double sigma, double alpha) {
  double log_a0 = kNegInf, log_a1 = kNegInf;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  for (int i = 0; i < 100000; ++i) {
    // The binomial coefficient C(α, i) for real α: its sign alternates once i > α.
    double coef_log = std::lgamma(alpha + 1) - std::lgamma(i + 1.0) - std::lgamma(alpha - i + 1);
    bool positive = true;
    if (alpha - i + 1 <= 0) {
      // Γ at a negative argument: use |Γ| via lgamma and its sign from the reflection formula.
      int sign = 1;
      (void)lgamma_r(alpha - i + 1, &sign);
      positive = sign > 0;
    }
    double j = alpha - i;
    double log_t0 = coef_log + i * std::log(q) + j * std::log1p(-q);
    double log_t1 = coef_log + j * std::log(q) + i * std::log1p(-q);
    double log_e0 = std::log(0.5) + log_erfc((i - z0) / (std::sqrt(2.0) * sigma));
    double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (std::sqrt(2.0) * sigma));
    double log_s0 = log_t0 + (double(i) * i - i) / (2 * sigma * sigma) + log_e0;
    double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
    if (positive) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    if (std::max(log_s0, log_s1) < -30) break;
  }
  return log_add(log_a0, log_a1);
}

double epsilon_at(double rdp, double alpha, double delta, RdpConversion conversion) {
  if (conversion == RdpConversion::kClassic) return rdp + std::log(1 / delta) / (alpha - 1);
  return rdp + std::log((alpha - 1) / alpha) - (std::log(delta) + std::log(alpha)) / (alpha - 1);
}

}  // namespace

const std::vector<double>& default_rdp_orders() {
  static const std::vector<double> orders = [] {
    std::vector<double> o;
    for (int x = 11; x < 110; ++x) o.push_back(x / 10.0);
    for (int a = 11; a < 64; ++a) o.push_back(a);
    for (double a : {128.0, 256.0, 512.0, 1024.0}) o.push_back(a);
    return o;
  }();
  return orders;
}

double sampled_gaussian_rdp(double q, double sigma, double alpha) {
  require(q >= 0 && q <= 1, ErrorCode::kInvalidArgument, "sampling rate must be in [0, 1]");
  require(sigma > 0, ErrorCode::kInvalidArgument, "noise multiplier must be positive");
  require(alpha > 1, ErrorCode::kInvalidArgument, "RDP order must be greater than 1");
  if (q == 0) return 0;
  if (q == 1) return alpha / (2 * sigma * sigma);
  double log_a = alpha == std::floor(alpha) && alpha < 1e6 ? log_a_integer(q, sigma, static_cast<int>(alpha))
                                                             : log_a_fractional(q, sigma, alpha);
  return log_a / (alpha - 1);
}

PrivacySpent dp_sgd_epsilon(double q, double sigma, int64_t steps, double delta, RdpConversion conversion,
                            const std::vector<double>& orders) {
  require(delta > 0 && delta < 1, ErrorCode::kInvalidArgument, "delta must be in (0, 1)");
  require(steps >= 0, ErrorCode::kInvalidArgument, "the number of steps must not be negative");
  if (steps == 0 || q == 0) return {0, 0};  // nothing was released
  PrivacySpent best{std::numeric_limits<double>::infinity(), 0};
  for (double alpha : orders) {
    double rdp = sampled_gaussian_rdp(q, sigma, alpha) * static_cast<double>(steps);
    double eps = epsilon_at(rdp, alpha, delta, conversion);
    if (eps < best.epsilon) best = {eps, alpha};
  }
  best.epsilon = std::max(best.epsilon, 0.0);
  return best;
}

double noise_for_epsilon(double target_epsilon, double q, int64_t steps, double delta, RdpConversion conversion) {
  require(target_epsilon > 0, ErrorCode::kInvalidArgument, "target epsilon must be positive");
  auto eps = [&](double sigma) { return dp_sgd_epsilon(q, sigma, steps, delta, conversion).epsilon; };
  double lo = 0.05, hi = 1000;
  if (eps(hi) > target_epsilon) {
    fail(ErrorCode::kInvalidArgument, "no noise multiplier up to 1000 reaches epsilon " +
                                          std::to_string(target_epsilon) + "; sample fewer steps or raise epsilon");
  }
  if (eps(lo) <= target_epsilon) return lo;
  while (hi - lo > 1e-4 * hi) {
    double mid = std::sqrt(lo * hi);  // ε falls roughly like a power of σ: bisect in log space
    (eps(mid) > target_epsilon ? lo : hi) = mid;
  }
  return hi;
}

RdpAccountant::RdpAccountant(double sampling_rate, double noise_multiplier)
    : q_(sampling_rate), sigma_(noise_multiplier) {
  require(q_ > 0 && q_ <= 1, ErrorCode::kInvalidArgument, "sampling rate must be in (0, 1]");
  require(sigma_ > 0, ErrorCode::kInvalidArgument, "noise multiplier must be positive");
}

PrivacySpent RdpAccountant::spent(double delta, RdpConversion conversion) const {
  return dp_sgd_epsilon(q_, sigma_, steps_, delta, conversion);
}

}  // namespace hearth::privacy
