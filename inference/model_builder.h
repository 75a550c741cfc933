// Builds a Decoder from a config and named tensors, converting or quantizing each weight on
// its own as it is read, so the whole model never exists twice in memory.
#pragma once
#include <memory>

#include "inference/decoder.h"
#include "inference/load_options.h"
#include "inference/quantized_model_files.h"
#include "inference/tensor_source.h"

namespace hearth {

// `packed` set: the tensors are a quantized model folder's (packed weights are mapped, not
// copied; options.quant is then ignored).
std::shared_ptr<Decoder> build_decoder(const ModelConfig& config, const TensorSource& tensors, const LoadOptions& options,
                                       const std::optional<QuantizationInfo>& packed = std::nullopt);

}  // namespace hearth
