// Quantization-aware distillation before quantizing: the full-precision model teaches a copy of
// itself whose matrices are rounded to their 4-bit format in every forward (straight through in
// the backward), on calibration text; the copy's tuned weights are then quantized as usual.
// What the rounding loses, the other weights and the norms learn to make up for. On small
// models this is where most of 4-bit's remaining loss goes (docs/quantization.md).
// Memory: the model four times over in fp32 (weights, teacher, AdamW's two moments; five with
// averaging) plus activations, so it is for small models; quantize_with_distillation refuses large ones.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "inference/calibrated_quantize.h"
#include "inference/model_loader.h"

namespace hearth::trainer {

struct DistillOptions {
  int64_t steps = 0;   // AdamW updates; 0: no distillation
  double lr = 1e-4;    // peak rate (after a 10% warm-up, cosine down to a tenth)
  int64_t batch = 4;   // calibration windows per update
  uint64_t seed = 1;   // which windows each update sees
  // The share of the last updates whose weights are averaged into the result (0: the last
  // update's weights). Averaging makes the result depend less on which windows the last
  // updates saw; a quarter measured 0.9 points better on stories260K (docs/quantization.md).
  double average = 0.25;
};

struct DistillResult {
  std::map<std::string, at::Tensor> tensors;  // the tuned fp32 matrices and norms, by checkpoint name
  double first_loss = 0;  // KL(teacher ‖ rounded student), nats per token, before any update
  double last_loss = 0;   // the same over the last tenth of the updates
};

// Each matrix's format by checkpoint weight name ("model.layers.3.mlp.down_proj.weight",
// "model.embed_tokens.weight"): the student rounds it so in every forward. Absent: not rounded.
using MatrixFormats = std::map<std::string, QuantFormat>;

// Every projection in `projections`; the embedding table and an untied head in `table` if set.
MatrixFormats uniform_formats(const ModelConfig& config, QuantFormat projections, std::optional<QuantFormat> table);

// Tunes every projection, the embedding table and untied head (each rounded to its format in
// `formats`) and every norm, starting from `start`'s weights, so that the rounded model matches
// `source`'s over `windows` (int64 [n, length]).
DistillResult distill_for_quantization(const ModelSource& source, const TensorSource& start, const at::Tensor& windows,
                                       const MatrixFormats& formats, const DistillOptions& options);

// The largest model distillation takes (parameters): about 16 bytes each (20 averaging), 2-2.5 GB.
constexpr int64_t kMaxDistillParameters = 128LL << 20;

// quantize_model_folder over the weights distillation tuned on the request's calibration text
// (which it needs). A calibrated method rounds first (Propagation::kAuto: on full-precision
// activations) and the distillation starts from its result; a bit budget is allocated first (on the original weights) and the student trains in
// the formats it chose; the tuned weights are then rounded plainly in those formats, as the
// student was trained. The folder records the distillation (and the budget's choice) in its
// recipe and the original weights' fingerprint as its base.
// Without steps, quantize_model_folder itself.
QuantizeSummary quantize_with_distillation(const std::filesystem::path& out, const ModelSource& source,
                                           const QuantizeRequest& request, const DistillOptions& options);

// Checks the options up front (kInvalidArgument naming the option and its range).
void validate(const DistillOptions& options);

}  // namespace hearth::trainer
