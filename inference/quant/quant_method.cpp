#include "inference/quant/quant_method.h"

#include "core/error.h"
#include "inference/quant/quant_grid.h"
#include "inference/quant/scale_refit.h"

namespace hearth {

QuantMethod parse_quant_method(const std::string& name) {
  if (name == "rtn") return QuantMethod::kRtn;
  if (name == "hqq") return QuantMethod::kHqq;
  if (name == "awq") return QuantMethod::kAwq;
  if (name == "gptq") return QuantMethod::kGptq;
  if (name == "awq-gptq") return QuantMethod::kAwqGptq;
  fail(ErrorCode::kInvalidArgument, "unknown quantization method \"" + name + "\"; expected rtn, hqq, awq, gptq or awq-gptq");
}

const char* quant_method_name(QuantMethod method) {
  switch (method) {
    case QuantMethod::kRtn: return "rtn";
    case QuantMethod::kHqq: return "hqq";
    case QuantMethod::kAwq: return "awq";
    case QuantMethod::kGptq: return "gptq";
    case QuantMethod::kAwqGptq: return "awq-gptq";
  }
  return "invalid";
}

bool method_needs_calibration(QuantMethod method) {
  return method == QuantMethod::kAwq || method == QuantMethod::kGptq || method == QuantMethod::kAwqGptq;
}

bool method_scales_channels(QuantMethod method) { return method == QuantMethod::kAwq || method == QuantMethod::kAwqGptq; }

namespace {

// Rows of a weight handled at a time where rows are independent (scale choice, rounding).
constexpr int64_t kChunkRows = 4096;

// fn(rows [r0, r0 + n) of w as float) -> [n, blocks], gathered into one [rows, blocks] tensor.
template <typename Fn>
at::Tensor by_row_chunks(const at::Tensor& w, int64_t blocks, Fn&& fn) {
  at::Tensor out = at::empty({w.size(0), blocks}, at::kFloat);
  for (int64_t r0 = 0; r0 < w.size(0); r0 += kChunkRows) {
    const int64_t n = std::min(kChunkRows, w.size(0) - r0);
    const at::Tensor part = w.narrow(0, r0, n).to(at::kFloat);
    require(at::isfinite(part).all().item<bool>(), ErrorCode::kInvalidArgument, "quantize: the weight has NaN or infinite values");
    out.narrow(0, r0, n).copy_(fn(part));
  }
  return out;
}

at::Tensor nearest_levels(QuantFormat format, const at::Tensor& w, const at::Tensor& scales) {
  at::Tensor levels = at::empty(w.sizes(), at::kByte);
  for (int64_t r0 = 0; r0 < w.size(0); r0 += kChunkRows) {
    const int64_t n = std::min(kChunkRows, w.size(0) - r0);
    levels.narrow(0, r0, n).copy_(round_to_grid(format, w.narrow(0, r0, n), scales.narrow(0, r0, n)));
  }
  return levels;
}

}  // namespace

QuantizedMatrix quantize_matrix_by(const at::Tensor& weight, QuantFormat format, QuantMethod method, const at::Tensor& hessian,
                                   const MethodOptions& o) {
  if (method == QuantMethod::kRtn) return quantize_matrix(weight, format);
  require(!method_needs_calibration(method) || hessian.defined(), ErrorCode::kInvalidArgument,
          std::string(quant_method_name(method)) + " needs calibration statistics (--calibrate FILES)");
  require(weight.dim() == 2 && weight.size(0) > 0 && weight.size(1) > 0, ErrorCode::kInvalidArgument,
          "quantize needs a non-empty 2-D weight");
  require(o.refit_rounds >= 0 && o.refit_rounds <= 16, ErrorCode::kInvalidArgument, "refit rounds must be between 0 and 16");
  const int64_t nb = (weight.size(1) + quant_block_size(format) - 1) / quant_block_size(format);
  const at::Tensor wanted = by_row_chunks(weight, nb, [&](const at::Tensor& w) {
    return method == QuantMethod::kHqq ? hqq_block_scales(format, w, absmax_block_scales(format, w), o.hqq)
                                       : search_block_scales(format, w, hessian, o.search);
  });
  StoredScales scales = store_block_scales(format, wanted);
  const bool gptq = method == QuantMethod::kGptq || method == QuantMethod::kAwqGptq;
  const auto codes = [&] { return gptq ? gptq_levels(format, weight, scales.values, hessian, o.gptq) : nearest_levels(format, weight, scales.values); };
  at::Tensor levels = codes();
  if (method_needs_calibration(method)) {
    for (int round = 0; round < o.refit_rounds; ++round) {
      scales = store_block_scales(format, refit_block_scales(format, weight, levels, hessian, scales.values));
      if (gptq && round + 1 < o.refit_rounds) levels = codes();
    }
  }
  return pack_quantized(scales, levels);
}

at::Tensor round_trip_absmax(const at::Tensor& weight, QuantFormat format) {
  const at::Tensor w = weight.to(at::kFloat);
  const StoredScales scales = store_block_scales(format, absmax_block_scales(format, w));
  return grid_dequantize(format, round_to_grid(format, w, scales.values), scales.values).to(at::kFloat);
}

}  // namespace hearth
