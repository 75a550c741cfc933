// Merging an adapter into the real stories260K model: the merged folder's logits equal the base
// plus the attached adapter, and the re-quantization error figures are what they claim.
#include <gtest/gtest.h>

#include "adapter_fixtures.h"
#include "adapters/adapter_set.h"
#include "adapters/merge.h"
#include "inference/model_loader.h"
#include "inference/quant/quant.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

class Merge : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = new LoadedModel(load_model(testing::stories260k_dir(), LoadOptions{})); }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static LoadedModel* model_;
};
LoadedModel* Merge::model_ = nullptr;

void expect_merged_logits_match(const LoadedModel& m, AdapterMethod method) {
  AdapterConfig c;
  c.method = method;
  c.rank = 4;
  c.first_layer = 1;
  c.seed = 3;
  auto adapter = Adapter::create(*m.decoder, c);
  testing::randomize_adapter(*adapter, 7, 0.2);
  const fs::path out = testing::fresh_temp_dir(std::string("merge_") + adapter_method_name(method)) / "merged";
  const MergeReport report =
      merge_adapter_to_folder(*m.decoder, *adapter, out, {find_tokenizer(testing::stories260k_dir())}, at::kFloat);
  EXPECT_EQ(report.merged_modules, static_cast<int64_t>(adapter->modules().size()));

  ForwardInput in = testing::tokens_input(2, 12, m.decoder->config().vocab_size, 4);
  at::NoGradGuard no_grad;
  const at::Tensor base = m.decoder->forward(in);
  attach_adapter(*m.decoder, adapter);
  const at::Tensor adapted = m.decoder->forward(in);
  detach_adapters(*m.decoder);
  LoadedModel merged = load_model(out, LoadOptions{});
  EXPECT_EQ(merged.format, "huggingface");
  const at::Tensor got = merged.decoder->forward(in);
  // The adapter must matter, or the comparison below proves nothing.
  EXPECT_GT((adapted - base).abs().max().item<double>(), 1e-2);
  EXPECT_LT((got - adapted).abs().max().item<double>(), 1e-4) << adapter_method_name(method);
}

TEST_F(Merge, LoraMergedLogitsEqualBasePlusAdapter) { expect_merged_logits_match(*model_, AdapterMethod::kLoRA); }
TEST_F(Merge, DoraMergedLogitsEqualBasePlusAdapter) { expect_merged_logits_match(*model_, AdapterMethod::kDoRA); }

TEST_F(Merge, ReportsRequantizationErrorPerFormat) {
  AdapterConfig c;
  c.rank = 4;
  auto adapter = Adapter::create(*model_->decoder, c);
  testing::randomize_adapter(*adapter, 8);
  const fs::path out = testing::fresh_temp_dir("merge_requant") / "merged";
  const std::vector<QuantFormat> formats = {QuantFormat::kNF4, QuantFormat::kInt4, QuantFormat::kInt8};
  const MergeReport r = merge_adapter_to_folder(*model_->decoder, *adapter, out, {}, at::kBFloat16, formats);
  ASSERT_EQ(r.requantization.size(), 3u);
  // The figure is ||Q(W') - W'||_F / ||W'||_F over all projections: recompute it directly.
  double err = 0, norm = 0;
  for (const AdapterModule& m : adapter->modules()) {
    at::Tensor w = m.impl->merged_weight(decoder_projection(model_->decoder->layers()[m.layer], m.name)).to(at::kDouble);
    QuantizedMatrix q = quantize_matrix(w.to(at::kFloat), QuantFormat::kNF4);
    err += (dequantize_matrix(q).to(at::kDouble) - w).pow(2).sum().item<double>();
    norm += w.pow(2).sum().item<double>();
  }
  EXPECT_NEAR(r.requantization[0].relative_frobenius_error, std::sqrt(err / norm), 1e-6);
  EXPECT_LT(r.requantization[2].relative_frobenius_error, r.requantization[1].relative_frobenius_error);
  EXPECT_GT(r.requantization[2].relative_frobenius_error, 0.0);
  EXPECT_LT(r.requantization[0].relative_frobenius_error, 0.2);
  // bf16 output: the folder loads and has the base's shape.
  LoadedModel merged = load_model(out, LoadOptions{}, find_tokenizer(testing::stories260k_dir()));
  EXPECT_EQ(merged.decoder->config().num_layers, model_->decoder->config().num_layers);
}

TEST_F(Merge, RefusesAnAdapterForAnotherModel) {
  LoadedModel tiny = testing::load_tiny(false);
  auto adapter = Adapter::create(*tiny.decoder, AdapterConfig{});
  const fs::path out = testing::fresh_temp_dir("merge_wrong") / "merged";
  EXPECT_THROW(merge_adapter_to_folder(*model_->decoder, *adapter, out, {}, at::kFloat), Error);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace hearth
