// A stable fingerprint of a model's weights, so an adapter can refuse a base it was not
// trained on. Cheap: names, shapes, dtypes and evenly spaced samples of every tensor's bytes.
#pragma once
#include <string>

#include "inference/tensor_source.h"

namespace hearth {

// 16 hex digits; equal for the same weights however they are stored (views, copies).
std::string weights_fingerprint(const TensorSource& tensors);

}  // namespace hearth
