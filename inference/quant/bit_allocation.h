// Mixed precision under a bit budget: each weight matrix may be stored in one of a few formats,
// each with a size and an error; pick one per matrix so the summed error is least while the
// total size stays within the budget (a multiple-choice knapsack, solved exactly by dynamic
// programming over sizes rounded up to a fine unit).
#pragma once
#include <string>
#include <vector>

namespace hearth {

struct AllocationChoice {
  double bits = 0;   // storage of the matrix in this choice, every byte counted
  double error = 0;  // what this choice costs in quality (smaller is better)
};

struct AllocationItem {
  std::string name;
  std::vector<AllocationChoice> choices;
};

// The index of the chosen option of every item; the total bits never exceed budget_bits.
// Sizes are rounded up to units of budget / `units`, so the choice is optimal for those sizes
// (and may leave up to items / units of the budget unused). A budget below the smallest choices
// is a kInvalidArgument error naming what the smallest total would be.
std::vector<int> allocate_bits(const std::vector<AllocationItem>& items, double budget_bits, int units = 1 << 17);

// Every combination tried: the reference for tests (a few items only).
std::vector<int> allocate_bits_brute_force(const std::vector<AllocationItem>& items, double budget_bits);

}  // namespace hearth
