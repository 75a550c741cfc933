// The ways Hearth turns a full-precision weight into a quantized one, by name: plain rounding
// (rtn), data-free scale refinement (hqq), activation-aware scaling (awq), error-compensating
// rounding (gptq) and both (awq-gptq). This file rounds one matrix; scaling the input
// channels (AWQ's folding) and collecting statistics are the model-level pipeline's part.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "inference/quant/awq.h"
#include "inference/quant/gptq.h"
#include "inference/quant/hqq.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/quant/scale_search.h"

namespace hearth {

enum class QuantMethod { kRtn, kHqq, kAwq, kGptq, kAwqGptq };

// "rtn" | "hqq" | "awq" | "gptq" | "awq-gptq"; anything else is kInvalidArgument.
QuantMethod parse_quant_method(const std::string& name);
const char* quant_method_name(QuantMethod method);
// awq, gptq and awq-gptq run the model over calibration text; rtn and hqq need none.
bool method_needs_calibration(QuantMethod method);
bool method_scales_channels(QuantMethod method);  // awq, awq-gptq

struct MethodOptions {
  GptqOptions gptq;
  HqqOptions hqq;
  AwqOptions awq;
  ScaleSearchOptions search;
  // Calibrated methods: after rounding, refit the block scales to the chosen codes (least output
  // error, scale_refit.h); with GPTQ, round again against the refitted scales, this many times.
  int refit_rounds = 1;
};

// How a method picks block scales and codes, per matrix:
//   rtn: absmax scales, nearest codes (quantize_matrix, unchanged);
//   hqq: HQQ refinement of absmax scales, nearest codes;
//   awq: the clipping search judged by the output error, nearest codes, scales refitted (needs H);
//   gptq / awq-gptq: the same search, GPTQ's codes, scales refitted (needs H).
// (AWQ's channel scaling happens before, on the model.) `hessian` (double [cols, cols]) may be
// undefined for rtn and hqq. Large matrices are processed a chunk of rows at a time.
QuantizedMatrix quantize_matrix_by(const at::Tensor& weight, QuantFormat format, QuantMethod method,
                                   const at::Tensor& hessian, const MethodOptions& options = {});

// Plain rounding's result as a float [rows, cols] matrix (absmax scales, nearest codes): what
// AWQ's search rounds its scaled candidates with.
at::Tensor round_trip_absmax(const at::Tensor& weight, QuantFormat format);

}  // namespace hearth
