// Quantization-aware distillation on stories260K and real TinyStories text: the nf4 model built
// from the tuned weights is closer to the full-precision model on text it never saw than the
// nf4 model of the original weights, and the folder written from them records it.
#include <gtest/gtest.h>

#include <c10/core/InferenceMode.h>

#include <fstream>

#include "core/json.h"
#include "inference/calibration_data.h"
#include "inference/model_builder.h"
#include "inference/split_table.h"
#include "test_helpers.h"
#include "trainer/quantization_distillation.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

// Lines [first, first + count) of valid_a.txt as a file.
fs::path text_file(const fs::path& dir, const std::string& name, int first, int count) {
  std::ifstream in(asset_path("data/tinystories/valid_a.txt"));
  const fs::path path = dir / name;
  std::ofstream out(path);
  std::string line;
  for (int n = 0; std::getline(in, line) && n < first + count; ++n)
    if (n >= first) out << line << "\n";
  return path;
}

at::Tensor windows_of(const ModelSource& source, const fs::path& file, int64_t tokens, int64_t length) {
  const auto tokenizer = load_tokenizer(source.tokenizer);
  return read_calibration_text(*tokenizer, {file}, tokens, length).windows;
}

// Mean KL(full precision ‖ model) per token over `windows`.
double divergence(const Decoder& reference, const Decoder& model, const at::Tensor& windows) {
  c10::InferenceMode no_grad;
  const ForwardInput input{windows, {}, {}, nullptr};
  const at::Tensor t = at::log_softmax(reference.forward(input), -1), m = at::log_softmax(model.forward(input), -1);
  return ((t.exp() * (t - m)).sum() / static_cast<double>(windows.numel())).item<double>();
}

std::shared_ptr<Decoder> nf4_model(const ModelSource& source, const TensorSource& tensors) {
  LoadOptions nf4;
  nf4.quant = QuantFormat::kNF4;
  nf4.embeddings = EmbeddingStorage::kNF4;
  return build_decoder(source.config, tensors, nf4);
}

// 2,048 calibration tokens from the start of valid_a in windows of 64: quick to distil over.
QuantizeRequest small_calibrated_request(const fs::path& dir) {
  QuantizeRequest request;
  request.calibration = {text_file(dir, "train.txt", 0, 400)};
  request.calibration_tokens = 2048;
  request.window = 64;
  return request;
}

TEST(QuantizationDistillation, TunedWeightsRoundToAModelCloserToFullPrecisionOnUnseenText) {
  const fs::path dir = testing::fresh_temp_dir("distill_unseen");
  const ModelSource source = open_model_source(testing::stories260k_dir());
  const at::Tensor train = windows_of(source, text_file(dir, "train.txt", 0, 400), 4096, 64);
  const at::Tensor unseen = windows_of(source, text_file(dir, "unseen.txt", 2000, 200), 2048, 64);
  trainer::DistillOptions options;
  options.steps = 100;
  options.lr = 3e-4;
  options.batch = 8;
  const trainer::MatrixFormats nf4 = trainer::uniform_formats(source.config, QuantFormat::kNF4, QuantFormat::kNF4);
  const trainer::DistillResult r = trainer::distill_for_quantization(source, *source.tensors, train, nf4, options);
  EXPECT_LT(r.last_loss, r.first_loss);
  const auto reference = build_decoder(source.config, *source.tensors, LoadOptions{});
  const OverlayTensorSource tuned(*source.tensors, r.tensors);
  const double before = divergence(*reference, *nf4_model(source, *source.tensors), unseen);
  const double after = divergence(*reference, *nf4_model(source, tuned), unseen);
  std::printf("nf4 KL on unseen text: %.4f before, %.4f after\n", before, after);
  // Measured: 0.17 before, 0.07 after (native and scalar kernels). A third less is a margin
  // that a distillation that did not learn (or rounded differently from the format) misses,
  // and run-to-run noise does not reach.
  EXPECT_LT(after, before * 2 / 3);
  // It tuned the norms and the table as well as the projections.
  EXPECT_TRUE(r.tensors.count("model.norm.weight"));
  EXPECT_TRUE(r.tensors.count("model.embed_tokens.weight"));
  EXPECT_FALSE(at::equal(r.tensors.at("model.layers.0.input_layernorm.weight"),
                         source.tensors->get("model.layers.0.input_layernorm.weight").to(at::kFloat)));
}

TEST(QuantizationDistillation, FolderRecordsTheDistillationAndTheOriginalBase) {
  const fs::path dir = testing::fresh_temp_dir("distill_folder");
  const ModelSource source = open_model_source(testing::stories260k_dir());
  QuantizeRequest request = small_calibrated_request(dir);
  trainer::DistillOptions options;
  options.steps = 3;
  options.average = 0.5;
  const QuantizeSummary s = trainer::quantize_with_distillation(dir / "q", source, request, options);
  EXPECT_EQ(s.recipe.at("distillation").at("steps").get<int64_t>(), 3);
  EXPECT_EQ(s.recipe.at("distillation").at("average").get<double>(), 0.5);
  const ModelSource written = open_model_source(dir / "q");
  ASSERT_TRUE(written.quantization);
  EXPECT_EQ(written.quantization->source_fingerprint, source.fingerprint());
  EXPECT_EQ(written.quantization->recipe, s.recipe);
  // The tuned norms are the ones stored.
  EXPECT_FALSE(at::equal(written.tensors->get("model.norm.weight").to(at::kFloat), source.tensors->get("model.norm.weight").to(at::kFloat)));
}

TEST(QuantizationDistillation, ABudgetIsAllocatedFirstAndTheTunedWeightsKeepItsFormats) {
  const fs::path dir = testing::fresh_temp_dir("distill_budget");
  const ModelSource source = open_model_source(testing::stories260k_dir());
  QuantizeRequest request = small_calibrated_request(dir);
  request.bits = 4.5;
  request.embeddings_fixed = false;
  // What the budget chooses on the original weights, without distillation.
  const QuantizeSummary plain = quantize_model_folder(dir / "plain", source, request);
  ASSERT_GT(plain.high_precision, 0);
  trainer::DistillOptions options;
  options.steps = 3;
  const QuantizeSummary s = trainer::quantize_with_distillation(dir / "q", source, request, options);
  const ModelSource chosen = open_model_source(dir / "plain"), written = open_model_source(dir / "q");
  ASSERT_TRUE(chosen.quantization && written.quantization);
  // The same matrices in int8, the same table storage, so the same bits; under the budget.
  EXPECT_EQ(written.quantization->overrides, chosen.quantization->overrides);
  EXPECT_EQ(written.quantization->embeddings, chosen.quantization->embeddings);
  EXPECT_DOUBLE_EQ(s.bits_per_weight, plain.bits_per_weight);
  EXPECT_LE(s.bits_per_weight, 4.5);
  EXPECT_EQ(s.high_precision, plain.high_precision);
  EXPECT_EQ(s.recipe.at("distillation").at("budget").at("high_precision_matrices").get<int64_t>(), plain.high_precision);
  EXPECT_FALSE(fs::exists(dir / "q.rounded.tmp"));
  // Distilled weights, not the plain folder's: the stored norms moved.
  EXPECT_FALSE(at::equal(written.tensors->get("model.norm.weight").to(at::kFloat), source.tensors->get("model.norm.weight").to(at::kFloat)));
}

// A split table sized by the budget: the student trains with the whole table in int8, the final
// rounding splits it exactly as the budget chose on the original weights.
TEST(QuantizationDistillation, ASplitTableKeepsTheRowsTheBudgetChose) {
  const fs::path dir = testing::fresh_temp_dir("distill_split");
  const ModelSource source = open_model_source(testing::stories260k_dir());
  QuantizeRequest request = small_calibrated_request(dir);
  request.format = QuantFormat::kNF4_32;
  request.bits = 4.5;
  request.embeddings_fixed = false;
  request.split_table_rows = kSplitRowsByBudget;
  const QuantizeSummary plain = quantize_model_folder(dir / "plain", source, request);
  ASSERT_GT(plain.split_table_rows, 0);
  trainer::DistillOptions options;
  options.steps = 3;
  const QuantizeSummary s = trainer::quantize_with_distillation(dir / "q", source, request, options);
  EXPECT_EQ(s.split_table_rows, plain.split_table_rows);
  EXPECT_DOUBLE_EQ(s.bits_per_weight, plain.bits_per_weight);
  EXPECT_LE(s.bits_per_weight, 4.5);
  const LoadedModel chosen = load_model(dir / "plain", LoadOptions{}), written = load_model(dir / "q", LoadOptions{});
  ASSERT_TRUE(chosen.decoder->embedding().split_table() && written.decoder->embedding().split_table());
  EXPECT_TRUE(written.decoder->embedding().split_table()->frequent_mask.equal(chosen.decoder->embedding().split_table()->frequent_mask));
  EXPECT_EQ(s.recipe.at("table_split").at("frequent_rows").get<int64_t>(), plain.split_table_rows);
  EXPECT_FALSE(fs::exists(dir / "q.rounded.tmp"));
}

TEST(QuantizationDistillation, BadOptionsAreRefusedBeforeAnyWork) {
  const fs::path dir = testing::fresh_temp_dir("distill_bad");
  const ModelSource source = open_model_source(testing::stories260k_dir());
  QuantizeRequest request;
  trainer::DistillOptions options;
  options.steps = 5;
  // No calibration text.
  EXPECT_THROW(trainer::quantize_with_distillation(dir / "q", source, request, options), Error);
  request.calibration = {text_file(dir, "train.txt", 0, 50)};
  using Change = void (*)(trainer::DistillOptions&);
  const Change changes[] = {[](trainer::DistillOptions& o) { o.steps = -1; }, [](trainer::DistillOptions& o) { o.lr = std::nan(""); },
                            [](trainer::DistillOptions& o) { o.lr = 0; }, [](trainer::DistillOptions& o) { o.batch = 0; },
                            [](trainer::DistillOptions& o) { o.average = -0.1; }, [](trainer::DistillOptions& o) { o.average = 1.5; },
                            [](trainer::DistillOptions& o) { o.average = std::nan(""); }};
  for (Change bad : changes) {
    trainer::DistillOptions o = options;
    bad(o);
    EXPECT_THROW(trainer::quantize_with_distillation(dir / "q", source, request, o), Error);
  }
  // A bad quantization request is refused before distilling, not after.
  request.bits = 1e9;
  EXPECT_THROW(trainer::quantize_with_distillation(dir / "q", source, request, options), Error);
  EXPECT_FALSE(fs::exists(dir / "q"));
}

}  // namespace
}  // namespace hearth
