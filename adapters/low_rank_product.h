// A LoRA adapter seen as the update it makes to the base, s·B·A per module, and back: what
// federated averaging averages (the mean of products is the mean update; the mean of A's times
// the mean of B's is not), then re-factorizes to the adapter's rank.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>

#include "adapters/adapter.h"

namespace hearth {

// Every module's s·B·A ([out, in]) flattened and concatenated in module order, fp32.
at::Tensor lora_products(const Adapter& adapter);
int64_t lora_products_size(const Adapter& adapter);

// Sets each module's A and B in place to the best rank-r approximation of its block of
// `products` (truncated SVD, Eckart–Young): A = c·V_rᵀ (orthonormal rows scaled like PEFT's
// initialization, c = 1/√3), B = U_r Σ_r / (s·c). Directions whose singular value is zero (all
// of them for a zero update) get random orthonormal rows of A, seeded by `seed`, and zero
// columns of B, so the adapter starts from the update and can still learn in every direction.
// kInvalidArgument for a LoRA-only operation on DoRA or a wrong size. Returns the share of the
// products' squared norm the truncation kept (1 when nothing was lost).
double set_lora_from_products(Adapter& adapter, const at::Tensor& products, uint64_t seed);

}  // namespace hearth
