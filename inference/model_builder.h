// Builds a Decoder from a config and named tensors, converting or quantizing each weight on
// its own as it is read, so the whole model never exists twice in memory.
#pragma once
#include <memory>

#include "inference/decoder.h"
#include "inference/load_options.h"
#include "inference/tensor_source.h"

namespace hearth {

std::shared_ptr<Decoder> build_decoder(const ModelConfig& config, const TensorSource& tensors, const LoadOptions& options);

}  // namespace hearth
