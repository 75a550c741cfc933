#include "inference/quant/bit_allocation.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/error.h"

namespace hearth {
namespace {

void check_items(const std::vector<AllocationItem>& items, double budget_bits) {
  require(std::isfinite(budget_bits) && budget_bits > 0, ErrorCode::kInvalidArgument, "bit allocation: the budget must be positive");
  double smallest = 0;
  for (const AllocationItem& item : items) {
    require(!item.choices.empty() && item.choices.size() < 256, ErrorCode::kInvalidArgument,
            "bit allocation: " + item.name + " needs between 1 and 255 choices");
    double least = std::numeric_limits<double>::infinity();
    for (const AllocationChoice& c : item.choices) {
      require(std::isfinite(c.bits) && c.bits >= 0 && std::isfinite(c.error), ErrorCode::kInvalidArgument,
              "bit allocation: " + item.name + " has a choice of invalid size or error");
      least = std::min(least, c.bits);
    }
    smallest += least;
  }
  require(smallest <= budget_bits, ErrorCode::kInvalidArgument,
          "the bit budget is below the smallest possible model (" + std::to_string(smallest / 8e6) + " MB); raise --bits");
}

}  // namespace

std::vector<int> allocate_bits(const std::vector<AllocationItem>& items, double budget_bits, int units) {
  check_items(items, budget_bits);
  require(units > 0 && units <= (1 << 22), ErrorCode::kInvalidArgument, "bit allocation: units out of range");
  const double unit = budget_bits / units;
  const double inf = std::numeric_limits<double>::infinity();
  // best[c] = least error of the items so far using at most c units; pick[i][c] the choice.
  std::vector<double> best(units + 1, 0.0), next(units + 1);
  std::vector<std::vector<uint8_t>> pick(items.size(), std::vector<uint8_t>(units + 1, 0));
  for (size_t i = 0; i < items.size(); ++i) {
    std::fill(next.begin(), next.end(), inf);
    for (size_t k = 0; k < items[i].choices.size(); ++k) {
      const AllocationChoice& choice = items[i].choices[k];
      const double cost = std::ceil(choice.bits / unit - 1e-9);  // never below the true size
      if (cost > units) continue;
      for (int c = static_cast<int>(cost); c <= units; ++c) {
        const double e = best[c - static_cast<int>(cost)] + choice.error;
        if (e < next[c]) {
          next[c] = e;
          pick[i][c] = static_cast<uint8_t>(k);
        }
      }
    }
    best.swap(next);
  }
  require(best[units] < inf, ErrorCode::kInvalidArgument, "the bit budget is too tight for the sizes of these matrices; raise --bits");
  std::vector<int> chosen(items.size());
  int c = units;
  for (size_t i = items.size(); i-- > 0;) {
    chosen[i] = pick[i][c];
    c -= static_cast<int>(std::ceil(items[i].choices[chosen[i]].bits / unit - 1e-9));
  }
  return chosen;
}

std::vector<int> allocate_bits_brute_force(const std::vector<AllocationItem>& items, double budget_bits) {
  check_items(items, budget_bits);
  std::vector<int> current(items.size(), 0), best;
  double best_error = std::numeric_limits<double>::infinity();
  while (true) {
    double bits = 0, error = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      bits += items[i].choices[current[i]].bits;
      error += items[i].choices[current[i]].error;
    }
    if (bits <= budget_bits && error < best_error) {
      best_error = error;
      best = current;
    }
    size_t i = 0;
    while (i < items.size() && ++current[i] == static_cast<int>(items[i].choices.size())) current[i++] = 0;
    if (i == items.size()) break;
  }
  return best;
}

}  // namespace hearth
