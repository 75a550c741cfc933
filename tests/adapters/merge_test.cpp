// Merging an adapter into the real stories260K model: the merged folder's logits equal the base
// plus the attached adapter, and a re-quantized folder holds exactly the quantized merged weights.
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
      merge_adapter_to_folder(*m.decoder, *adapter, out, {find_tokenizer(testing::stories260k_dir())});
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

TEST_F(Merge, RequantizedFolderIsQuantizedMergedModel) {
  AdapterConfig c;
  c.rank = 4;
  auto adapter = Adapter::create(*model_->decoder, c);
  testing::randomize_adapter(*adapter, 8, 0.2);
  const fs::path dir = testing::fresh_temp_dir("merge_requant");
  const std::vector<fs::path> tokenizer = {find_tokenizer(testing::stories260k_dir())};
  MergeOptions nf4;
  nf4.requantize = QuantFormat::kNF4;
  const MergeReport r = merge_adapter_to_folder(*model_->decoder, *adapter, dir / "nf4", tokenizer, nf4);
  merge_adapter_to_folder(*model_->decoder, *adapter, dir / "fp32", tokenizer);

  // The reported figure is ||Q(W') - W'||_F / ||W'||_F over all projections: recompute it directly.
  double err = 0, norm = 0;
  for (const AdapterModule& m : adapter->modules()) {
    at::Tensor w = m.impl->merged_weight(decoder_projection(model_->decoder->layers()[m.layer], m.name)).to(at::kDouble);
    QuantizedMatrix q = quantize_matrix(w.to(at::kFloat), QuantFormat::kNF4);
    err += (dequantize_matrix(q).to(at::kDouble) - w).pow(2).sum().item<double>();
    norm += w.pow(2).sum().item<double>();
  }
  ASSERT_TRUE(r.requantization_relative_error.has_value());
  EXPECT_NEAR(*r.requantization_relative_error, std::sqrt(err / norm), 1e-6);
  EXPECT_GT(*r.requantization_relative_error, 0.01);

  // The folder loads as a mapped nf4 model whose projections are exactly nf4(W'), and it records
  // the merged weights' fingerprint: the one its fp32 twin gets, not the base's.
  LoadedModel requantized = load_model(dir / "nf4", LoadOptions{});
  LoadedModel full = load_model(dir / "fp32", LoadOptions{});
  EXPECT_EQ(requantized.format, "quantized");
  EXPECT_EQ(requantized.fingerprint, full.fingerprint);
  EXPECT_NE(requantized.fingerprint, model_->fingerprint);
  const AdapterModule& first = adapter->modules().front();
  const Linear& packed = decoder_projection(requantized.decoder->layers()[first.layer], first.name);
  ASSERT_TRUE(packed.quantized_weight() != nullptr);
  EXPECT_EQ(packed.quantized_weight()->format, QuantFormat::kNF4);
  const at::Tensor merged_w = decoder_projection(full.decoder->layers()[first.layer], first.name).weight_fp32();
  EXPECT_TRUE(at::equal(packed.weight_fp32(), dequantize_matrix(quantize_matrix(merged_w, QuantFormat::kNF4))));
}

TEST_F(Merge, Bf16FolderLoadsWithTheBaseShape) {
  auto adapter = Adapter::create(*model_->decoder, AdapterConfig{});
  const fs::path out = testing::fresh_temp_dir("merge_bf16") / "merged";
  MergeOptions bf16;
  bf16.dtype = at::kBFloat16;
  merge_adapter_to_folder(*model_->decoder, *adapter, out, {}, bf16);
  LoadedModel merged = load_model(out, LoadOptions{}, find_tokenizer(testing::stories260k_dir()));
  EXPECT_EQ(merged.decoder->config().num_layers, model_->decoder->config().num_layers);
}

TEST_F(Merge, RefusesAnAdapterForAnotherModel) {
  LoadedModel tiny = testing::load_tiny(false);
  auto adapter = Adapter::create(*tiny.decoder, AdapterConfig{});
  const fs::path out = testing::fresh_temp_dir("merge_wrong") / "merged";
  EXPECT_THROW(merge_adapter_to_folder(*model_->decoder, *adapter, out, {}), Error);
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace hearth
