// `hearth quantize` with a method and a bit budget: runs the model over calibration text one
// layer at a time (only one layer's statistics in memory), rounds every projection by the
// chosen method (quant_method.h), and under a budget keeps the most sensitive matrices in a
// higher-precision format. Writes a quantized folder that records how it was made.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/json.h"
#include "inference/model_loader.h"
#include "inference/quant/quant_method.h"

namespace hearth {

enum class Propagation { kAuto, kQuantized, kFullPrecision };

struct QuantizeRequest {
  QuantFormat format = QuantFormat::kNF4;  // the projections' format
  EmbeddingStorage embeddings = EmbeddingStorage::kInt8;
  // false: under a budget the table (embeddings, head) is a candidate too, `format` or `high_format`.
  bool embeddings_fixed = true;
  QuantMethod method = QuantMethod::kRtn;
  MethodOptions options;
  std::vector<std::filesystem::path> calibration;  // files or folders; empty = none
  int64_t calibration_tokens = 8192;
  int64_t window = 0;  // tokens per calibration window; 0 = min(512, the model's context)
  // Average bits per weight over every quantized matrix (projections and the table, every
  // stored byte counted); 0 = no budget, every projection in `format`.
  double bits = 0;
  QuantFormat high_format = QuantFormat::kInt8;
  // Projections whose format was chosen beforehand (a budget's allocation before weights were
  // tuned for it, trainer/quantization_distillation.h), by prefix ("model.layers.3.mlp.down_proj"):
  // each is rounded in that format instead of `format`. Not with `bits`.
  std::map<std::string, QuantFormat> fixed_formats;
  // A split table (split_table.h): the rows of the tokens most frequent in the calibration text
  // in high_format, the others in the table's format (`embeddings` when fixed, else `format`).
  // 0 = no split; kSplitRowsByBudget = as many rows as `bits` leaves once every projection is in
  // `format` (the budget then buys no high-precision projections).
  int64_t split_table_rows = 0;
  // What the next layer's statistics come from: this layer's quantized output (GPTQ's
  // sequential order) or its full-precision one. kAuto: full precision for a distillation's
  // start (it then fits the teacher's activations; measured better, docs/quantization.md),
  // quantized otherwise.
  Propagation propagation = Propagation::kAuto;
  // The base the folder records (adapters match it): empty = `source`'s own fingerprint; weights
  // tuned before quantizing (trainer/quantization_distillation.h) record their original's.
  std::string source_fingerprint;
  Json distillation;  // how the weights were tuned before quantizing, for the recipe; null = not
};

constexpr int64_t kSplitRowsByBudget = -1;

// True when the request's layers are calibrated on the quantized layers' output (kAuto: yes).
inline bool propagates_quantized(const QuantizeRequest& r) { return r.propagation != Propagation::kFullPrecision; }
const char* propagation_name(const QuantizeRequest& r);  // as the recipe records it

// "auto", "quantized" or "fp" (kInvalidArgument naming --propagate otherwise).
Propagation parse_propagation(const std::string& name);

struct QuantizeSummary {
  double bits_per_weight = 0;    // every quantized matrix, scales and padding included
  double projection_bits = 0;    // the projections only
  int64_t calibration_tokens = 0;
  int64_t high_precision = 0;    // matrices the budget kept in high_format
  int64_t split_table_rows = 0;  // a split table's rows in high_format; 0 = no split
  Json recipe;                   // as recorded in the folder's config.json
};

// Fails (kInvalidArgument, naming the option) on a request that cannot run on a model of
// `config`; quantize_model_folder checks with it before any work.
void check_quantize_request(const QuantizeRequest& request, const ModelConfig& config);

// Writes the quantized folder `out` from `source` (a full-precision model). Every check on the
// request happens before any work; failures leave nothing at `out`.
QuantizeSummary quantize_model_folder(const std::filesystem::path& out, const ModelSource& source,
                                      const QuantizeRequest& request);

}  // namespace hearth
