// The adapter slot of a frozen linear layer: an adapter (LoRA, DoRA, ...) sees the layer's
// input and the frozen base output, and returns the adapted output.
#pragma once
#include <ATen/ATen.h>

namespace hearth {

class Linear;

class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // x: the layer input [..., in]; base_out: W x + b [..., out]. Returns the adapted output.
  virtual at::Tensor apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const = 0;
};

}  // namespace hearth
