// A fresh delta stacked over a frozen adapter: it starts out computing the frozen adapter, covers
// the union of both adapters' projections, and only the delta's own factors get gradients.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"
#include "adapters/adapter_set.h"
#include "adapters/stacked_delta.h"
#include "serving_fixtures.h"

namespace hearth {
namespace {

using testing::adapter_kind;

at::Tensor logits_with(const Decoder& base, const std::shared_ptr<Adapter>& adapter, const ForwardInput& in) {
  Decoder d(base);
  if (adapter) attach_adapter(d, adapter);
  at::NoGradGuard no_grad;
  return d.forward(in);
}

TEST(StackedDelta, StartsOutComputingExactlyTheAdapterUnderIt) {
  LoadedModel m = testing::load_tiny(/*nf4=*/true);
  const ForwardInput in = testing::tokens_input(2, 9, m.decoder->config().vocab_size, 3);
  for (AdapterMethod method : {AdapterMethod::kLoRA, AdapterMethod::kDoRA}) {
    auto user = Adapter::create(*m.decoder, adapter_kind(method, 4, 16, "q,v", 1));  // scale 4
    testing::randomize_adapter(*user, 2, 0.2);
    StackedDelta stacked(*m.decoder, *user, adapter_kind(AdapterMethod::kLoRA, 8, 16, "q,o,down", 5));  // scale 2
    const AdapterConfig& c = stacked.adapter()->config();
    EXPECT_EQ(c.method, method);
    EXPECT_EQ(c.rank, 12);
    EXPECT_DOUBLE_EQ(c.scale(), 2.0);
    EXPECT_EQ(c.targets, AdapterConfig::parse_targets("q,v,o,down"));
    const at::Tensor bare = logits_with(*m.decoder, nullptr, in), want = logits_with(*m.decoder, user, in);
    const at::Tensor got = logits_with(*m.decoder, stacked.adapter(), in);
    // The same sums in another order (B A over 12 columns, the user's B scaled by 4/2, exact in
    // binary): float rounding, ~1e-6 of the logits; the user's adapter itself moves them ~1e-2.
    EXPECT_LT(testing::relative_error(got, want), 1e-5) << adapter_method_name(method);
    EXPECT_GT(testing::relative_error(want, bare), 1e-3) << "the user's adapter must matter for this check";
  }
}

TEST(StackedDelta, OnlyTheDeltasOwnFactorsKeepTheirGradients) {
  LoadedModel m = testing::load_tiny(/*nf4=*/true);
  auto user = Adapter::create(*m.decoder, adapter_kind(AdapterMethod::kDoRA, 4, 8, "q,v", 1));
  testing::randomize_adapter(*user, 2, 0.2);
  StackedDelta stacked(*m.decoder, *user, adapter_kind(AdapterMethod::kLoRA, 8, 16, "q,o", 5));
  Decoder d(*m.decoder);
  attach_adapter(d, stacked.adapter());
  stacked.adapter()->set_training(true);
  d.forward(testing::tokens_input(1, 7, m.decoder->config().vocab_size, 4)).pow(2).mean().backward();
  stacked.keep_base_frozen();
  for (const AdapterModule& mod : stacked.adapter()->modules()) {
    const at::Tensor ga = mod.impl->lora_A().grad(), gb = mod.impl->lora_B().grad();
    ASSERT_TRUE(ga.defined() && gb.defined()) << mod.name;
    EXPECT_EQ(ga.narrow(0, 0, 4).abs().max().item<float>(), 0.0f) << mod.name << ": the user's rows of A";
    EXPECT_EQ(gb.narrow(1, 0, 4).abs().max().item<float>(), 0.0f) << mod.name << ": the user's columns of B";
    if (mod.impl->magnitude().defined() && mod.impl->magnitude().grad().defined())
      EXPECT_EQ(mod.impl->magnitude().grad().abs().max().item<float>(), 0.0f) << mod.name;
    const bool delta_target = mod.name == "q_proj" || mod.name == "o_proj";
    // B of the delta starts at zero, so its gradient is what moves first.
    const float delta_grad = gb.narrow(1, 4, 8).abs().max().item<float>();
    if (delta_target) {
      EXPECT_GT(delta_grad, 0.0f) << mod.name << ": the delta must learn here";
    } else {
      EXPECT_EQ(delta_grad, 0.0f) << mod.name << " is not a target of the delta";
      EXPECT_EQ(ga.abs().max().item<float>(), 0.0f) << mod.name;
    }
  }
}

}  // namespace
}  // namespace hearth
