// Adapters over a whole decoder: configs, seeded initialization, target and layer selection,
// zero-B adapters that change nothing, gradients only on adapter parameters, and switching.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"
#include "adapters/adapter_set.h"
#include "inference/decode_plan.h"

namespace hearth {
namespace {

using testing::load_tiny;
using testing::randomize_adapter;
using testing::round_factors_to_fp16;
using testing::tokens_input;

TEST(AdapterConfig, ScaleIsAlphaOverRankOrOverSqrtRankWithRsLora) {
  AdapterConfig c;
  c.rank = 16;
  c.alpha = 32;
  EXPECT_DOUBLE_EQ(c.scale(), 2.0);
  c.rslora = true;
  EXPECT_DOUBLE_EQ(c.scale(), 8.0);
}

TEST(AdapterConfig, ParsesShortAndFullTargetNames) {
  EXPECT_EQ(AdapterConfig::parse_targets("v,q"), (std::vector<std::string>{"q_proj", "v_proj"}));
  EXPECT_EQ(AdapterConfig::parse_targets("gate_proj, down"), (std::vector<std::string>{"gate_proj", "down_proj"}));
  EXPECT_EQ(AdapterConfig::parse_targets("all").size(), 7u);
  EXPECT_THROW(AdapterConfig::parse_targets("q,lm_head"), Error);
  EXPECT_THROW(AdapterConfig::parse_targets(""), Error);
}

TEST(AdapterConfig, ValidateNamesTheBadField) {
  AdapterConfig c;
  c.rank = 0;
  try {
    c.validate();
    FAIL() << "rank 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("rank"), std::string::npos);
  }
  c = AdapterConfig{};
  c.dropout = 1.0;
  EXPECT_THROW(c.validate(), Error);
  c = AdapterConfig{};
  c.first_layer = 3;
  c.last_layer = 1;
  EXPECT_THROW(c.validate(), Error);
}

TEST(Adapter, FreshAdapterLeavesOutputsBitwiseUnchanged) {
  for (AdapterMethod method : {AdapterMethod::kLoRA, AdapterMethod::kDoRA}) {
    LoadedModel m = load_tiny(true);
    ForwardInput in = tokens_input(2, 7, m.decoder->config().vocab_size, 1);
    at::NoGradGuard no_grad;
    const at::Tensor base = m.decoder->forward(in);
    AdapterConfig c;
    c.method = method;
    auto adapter = Adapter::create(*m.decoder, c);
    attach_adapter(*m.decoder, adapter);
    EXPECT_TRUE(at::equal(m.decoder->forward(in), base)) << adapter_method_name(method);
  }
}

TEST(Adapter, InitializationFollowsPeftAndTheSeed) {
  LoadedModel m = load_tiny(true);
  AdapterConfig c;
  c.method = AdapterMethod::kDoRA;
  c.seed = 5;
  auto a1 = Adapter::create(*m.decoder, c), a2 = Adapter::create(*m.decoder, c);
  c.seed = 6;
  auto a3 = Adapter::create(*m.decoder, c);
  auto p1 = a1->named_parameters(), p2 = a2->named_parameters(), p3 = a3->named_parameters();
  ASSERT_EQ(p1.size(), p2.size());
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(at::equal(p1[i].second, p2[i].second)) << p1[i].first;
  for (const AdapterModule& mod : a1->modules()) {
    const Linear& base = decoder_projection(m.decoder->layers()[mod.layer], mod.name);
    const double bound = 1.0 / std::sqrt(static_cast<double>(base.in_features()));
    EXPECT_LE(mod.impl->lora_A().abs().max().item<double>(), bound);
    EXPECT_GT(mod.impl->lora_A().abs().max().item<double>(), 0.9 * bound);
    EXPECT_EQ(mod.impl->lora_B().abs().max().item<double>(), 0.0);
    EXPECT_TRUE(at::equal(mod.impl->magnitude(), base.weight_row_norms()));
    EXPECT_EQ(mod.impl->lora_A().scalar_type(), at::kFloat);
    EXPECT_TRUE(mod.impl->lora_A().requires_grad());
  }
  EXPECT_FALSE(at::equal(p1[0].second, p3[0].second));
}

TEST(Adapter, TargetsAndLayerRangeSelectModules) {
  LoadedModel m = load_tiny(false);
  AdapterConfig c;
  c.targets = AdapterConfig::parse_targets("v,q");
  c.first_layer = 1;
  c.last_layer = 1;
  c.rank = 4;
  auto adapter = Adapter::create(*m.decoder, c);
  ASSERT_EQ(adapter->modules().size(), 2u);
  EXPECT_EQ(adapter->modules()[0].layer, 1);
  EXPECT_EQ(adapter->modules()[0].name, "q_proj");
  EXPECT_EQ(adapter->modules()[1].name, "v_proj");
  const int64_t h = m.decoder->config().hidden_size;
  const int64_t kv = m.decoder->config().num_kv_heads * m.decoder->config().head_dim;
  EXPECT_EQ(adapter->parameter_count(), 4 * h + h * 4 + 4 * h + kv * 4);
  attach_adapter(*m.decoder, adapter);
  int64_t slots = 0;
  for (auto& layer : m.decoder->layers())
    for (auto& [name, linear] : layer.projections()) slots += linear->adapter() != nullptr;
  EXPECT_EQ(slots, 2);
  EXPECT_NE(m.decoder->layers()[1].q.adapter(), nullptr);
  EXPECT_EQ(m.decoder->layers()[0].q.adapter(), nullptr);
  detach_adapters(*m.decoder);
  EXPECT_EQ(m.decoder->layers()[1].q.adapter(), nullptr);

  c.last_layer = 9;
  EXPECT_THROW(Adapter::create(*m.decoder, c), Error);
}

TEST(Adapter, GradientsReachOnlyAdapterParameters) {
  LoadedModel m = load_tiny(true);
  AdapterConfig c;
  c.method = AdapterMethod::kDoRA;
  auto adapter = Adapter::create(*m.decoder, c);
  randomize_adapter(*adapter, 3);
  attach_adapter(*m.decoder, adapter);
  adapter->set_training(true);
  ForwardInput in = tokens_input(1, 6, m.decoder->config().vocab_size, 2);
  m.decoder->forward(in).pow(2).mean().backward();
  for (auto& [name, t] : adapter->named_parameters()) {
    ASSERT_TRUE(t.grad().defined()) << name;
    EXPECT_GT(t.grad().abs().sum().item<double>(), 0) << name;
  }
  EXPECT_FALSE(m.decoder->final_norm_weight().requires_grad());
  EXPECT_FALSE(m.decoder->layers()[0].attn_norm.requires_grad());
}

TEST(AdapterSet, SwitchingRestoresExactOutputs) {
  LoadedModel m = load_tiny(true);
  AdapterSet set(m.decoder);
  AdapterConfig c;
  c.seed = 1;
  auto a = Adapter::create(*m.decoder, c);
  c.seed = 2;
  c.method = AdapterMethod::kDoRA;
  auto b = Adapter::create(*m.decoder, c);
  randomize_adapter(*a, 10);
  randomize_adapter(*b, 20);
  set.add("a", a);
  set.add("b", b);
  EXPECT_THROW(set.add("a", b), Error);
  ForwardInput in = tokens_input(2, 5, m.decoder->config().vocab_size, 3);
  at::NoGradGuard no_grad;
  const at::Tensor base = m.decoder->forward(in);
  set.activate("a");
  const at::Tensor out_a = m.decoder->forward(in);
  set.activate("b");
  const at::Tensor out_b = m.decoder->forward(in);
  EXPECT_FALSE(at::allclose(out_a, out_b));
  EXPECT_FALSE(at::allclose(out_a, base));
  set.activate("a");
  EXPECT_TRUE(at::equal(m.decoder->forward(in), out_a));
  set.activate("");
  EXPECT_TRUE(at::equal(m.decoder->forward(in), base));
  set.activate("b");
  EXPECT_TRUE(at::equal(m.decoder->forward(in), out_b));
  EXPECT_EQ(set.active(), "b");
  set.remove("b");
  EXPECT_EQ(set.active(), "");
  EXPECT_TRUE(at::equal(m.decoder->forward(in), base));
  try {
    set.activate("nope");
    FAIL() << "unknown adapter activated";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

// Logits of decode steps after a prompt: through the prepared plan, or the decoder's forward.
std::vector<at::Tensor> decode_steps(const Decoder& d, bool plan) {
  at::InferenceMode guard;
  const std::vector<int32_t> steps = {5, 77, 300, 12, 41};
  KVCache cache(d.config(), 1, 16);
  d.hidden_states({at::tensor(std::vector<int64_t>{1, 20, 33, 400}, at::kLong).unsqueeze(0), {}, {}, &cache});
  std::unique_ptr<DecodePlan> p = DecodePlan::prepare(d);
  std::vector<at::Tensor> out;
  for (int32_t t : steps) {
    if (plan) {
      EXPECT_TRUE(p->can_step(cache));
      out.push_back(at::empty({d.config().vocab_size}, at::kFloat));
      p->step(t, cache, out.back().data_ptr<float>());
    } else {
      out.push_back(d.logits(d.hidden_states({at::full({1, 1}, int64_t(t), at::kLong), {}, {}, &cache})).view({-1}));
    }
  }
  return out;
}

TEST(Adapter, LoraDecodesThroughThePreparedPlanAsThroughTheDecoder) {
  LoadedModel m = load_tiny(true);
  AdapterConfig c;
  c.rank = 16;
  auto lora = Adapter::create(*m.decoder, c);
  randomize_adapter(*lora, 5, 0.2);  // large enough to move the logits by O(1)
  round_factors_to_fp16(*lora);
  const std::vector<at::Tensor> base = decode_steps(*m.decoder, false);
  attach_adapter(*m.decoder, lora);
  const std::vector<at::Tensor> reference = decode_steps(*m.decoder, false), planned = decode_steps(*m.decoder, true);
  for (size_t i = 0; i < reference.size(); ++i) {
    // The plan sums A x and B u in another order than the BLAS calls of LoraLayer::apply, and
    // the base products are the same kernels: float rounding only, ~1e-6 relative per layer.
    EXPECT_LT(testing::relative_error(planned[i], reference[i]), 1e-4) << "step " << i;
    EXPECT_GT(testing::relative_error(reference[i], base[i]), 1e-2) << "the adapter changes nothing at step " << i;
  }
}

TEST(Adapter, DoraAndTrainingAdaptersKeepTheDecodersOwnPath) {
  LoadedModel m = load_tiny(true);
  AdapterConfig c;
  c.method = AdapterMethod::kDoRA;
  attach_adapter(*m.decoder, Adapter::create(*m.decoder, c));
  KVCache cache(m.decoder->config(), 1, 4);
  EXPECT_FALSE(DecodePlan::prepare(*m.decoder)->can_step(cache)) << "DoRA's rescaling is not a low-rank update";
  AdapterConfig l;
  l.dropout = 0.1;
  auto lora = Adapter::create(*m.decoder, l);
  attach_adapter(*m.decoder, lora);
  auto plan = DecodePlan::prepare(*m.decoder);
  EXPECT_TRUE(plan->can_step(cache));
  lora->set_training(true);
  EXPECT_FALSE(plan->can_step(cache)) << "dropout while training is not in the plan";
  lora->set_training(false);
  EXPECT_TRUE(plan->can_step(cache));
}

TEST(AdapterSet, RefusesAnAdapterMadeForAnotherShape) {
  LoadedModel tiny = load_tiny(false);
  LoadedModel stories = load_model(testing::stories260k_dir(), LoadOptions{});
  auto adapter = Adapter::create(*stories.decoder, AdapterConfig{});
  AdapterSet set(tiny.decoder);
  EXPECT_THROW(set.add("x", adapter), Error);
  EXPECT_THROW(attach_adapter(*tiny.decoder, adapter), Error);
}

}  // namespace
}  // namespace hearth
