#include "adapters/low_rank_product.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"

namespace hearth {
namespace {

// Row norm of PEFT's kaiming-uniform A: bound 1/√in over `in` entries of variance bound²/3.
const double kRowScale = 1.0 / std::sqrt(3.0);

void require_lora(const Adapter& adapter) {
  require(adapter.config().method == AdapterMethod::kLoRA, ErrorCode::kInvalidArgument,
          "averaging adapter updates supports LoRA adapters, not DoRA (its magnitudes do not add up)");
}

// `kept` orthonormal rows [k, in] completed by random orthonormal rows to [r, in].
at::Tensor complete_rows(const at::Tensor& kept, int64_t r, int64_t in, at::Generator& gen) {
  const int64_t k = kept.size(0);
  if (k == r) return kept;
  at::Tensor extra = at::randn({r - k, in}, gen, at::kDouble);
  if (k > 0) extra -= extra.mm(kept.t()).mm(kept);  // orthogonal to the kept rows
  at::Tensor q = std::get<0>(at::linalg_qr(extra.t()));  // [in, r-k], orthonormal columns
  return at::cat({kept, q.t()}, 0);
}

}  // namespace

int64_t lora_products_size(const Adapter& adapter) {
  int64_t n = 0;
  for (const AdapterModule& m : adapter.modules()) n += m.impl->out_features() * m.impl->in_features();
  return n;
}

at::Tensor lora_products(const Adapter& adapter) {
  require_lora(adapter);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> blocks;
  for (const AdapterModule& m : adapter.modules()) {
    blocks.push_back((m.impl->lora_B().to(at::kDouble).mm(m.impl->lora_A().to(at::kDouble)) * m.impl->scale()).reshape({-1}));
  }
  return at::cat(blocks).to(at::kFloat);
}

double set_lora_from_products(Adapter& adapter, const at::Tensor& products, uint64_t seed) {
  require_lora(adapter);
  require(products.dim() == 1 && products.numel() == lora_products_size(adapter), ErrorCode::kInvalidArgument,
          "an adapter update has " + std::to_string(products.numel()) + " values; this adapter's modules need " +
              std::to_string(lora_products_size(adapter)));
  at::NoGradGuard no_grad;
  at::Generator gen = make_generator(mix_seed(seed, 0xFEDu));
  const int64_t r = adapter.config().rank;
  double total = 0, kept_energy = 0;
  int64_t offset = 0;
  for (const AdapterModule& m : adapter.modules()) {
    const int64_t out = m.impl->out_features(), in = m.impl->in_features();
    const at::Tensor w = products.narrow(0, offset, out * in).view({out, in}).to(at::kDouble);
    offset += out * in;
    auto [u, s, vh] = at::linalg_svd(w, /*full_matrices=*/false);
    const double smax = s.numel() > 0 ? s[0].item<double>() : 0;
    int64_t k = 0;
    while (k < std::min<int64_t>(r, s.numel()) && s[k].item<double>() > 1e-7 * std::max(1.0, smax) && smax > 0) ++k;
    total += s.pow(2).sum().item<double>();
    kept_energy += s.narrow(0, 0, k).pow(2).sum().item<double>();
    const at::Tensor a = complete_rows(vh.narrow(0, 0, k), r, in, gen) * kRowScale;
    at::Tensor b = at::zeros({out, r}, at::kDouble);
    if (k > 0) b.narrow(1, 0, k).copy_(u.narrow(1, 0, k) * s.narrow(0, 0, k).unsqueeze(0) / (m.impl->scale() * kRowScale));
    const_cast<at::Tensor&>(m.impl->lora_A()).copy_(a.to(at::kFloat));
    const_cast<at::Tensor&>(m.impl->lora_B()).copy_(b.to(at::kFloat));
  }
  return total > 0 ? kept_energy / total : 1.0;
}

}  // namespace hearth
