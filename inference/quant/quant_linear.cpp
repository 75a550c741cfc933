#include "inference/quant/quant_linear.h"

#include <torch/csrc/autograd/custom_function.h>

#include "core/error.h"
#include "inference/quant/quant_matmul.h"

namespace hearth {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Keeps the matrix alive inside the autograd graph (saved_data holds only IValues).
struct MatrixHolder : torch::CustomClassHolder {
  explicit MatrixHolder(std::shared_ptr<const QuantizedMatrix> m) : matrix(std::move(m)) {}
  std::shared_ptr<const QuantizedMatrix> matrix;
};

at::Tensor apply_flat(const at::Tensor& x, int64_t in, int64_t out, const std::function<at::Tensor(const at::Tensor&)>& fn) {
  std::vector<int64_t> shape = x.sizes().vec();
  at::Tensor y = fn(x.reshape({-1, in}));
  shape.back() = out;
  return y.view(shape);
}

struct QuantLinearFunction : torch::autograd::Function<QuantLinearFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, c10::intrusive_ptr<MatrixHolder> holder) {
    const QuantizedMatrix& m = *holder->matrix;
    ctx->saved_data["matrix"] = c10::IValue::make_capsule(holder);
    // Exact even for one row: the gradient check and the trainer expect the true product.
    return apply_flat(x, m.cols, m.rows, [&](const at::Tensor& x2) { return quant_matmul(m, x2, ActivationRounding::kExact); });
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto holder = c10::static_intrusive_pointer_cast<MatrixHolder>(ctx->saved_data["matrix"].toCapsule());
    const QuantizedMatrix& m = *holder->matrix;
    at::Tensor gx = apply_flat(grads[0], m.rows, m.cols, [&](const at::Tensor& g2) { return quant_matmul_transposed(m, g2); });
    return {gx, at::Tensor()};
  }
};

}  // namespace

at::Tensor quant_linear(const at::Tensor& x, std::shared_ptr<const QuantizedMatrix> m) {
  require(m != nullptr, ErrorCode::kInvalidArgument, "quant_linear: no matrix");
  require(x.dim() >= 1 && x.size(-1) == m->cols, ErrorCode::kInvalidArgument,
          "quant_linear: input's last dimension must be " + std::to_string(m->cols));
  at::Tensor xf = x.scalar_type() == at::kFloat ? x : x.to(at::kFloat);
  if (!xf.requires_grad()) {
    return apply_flat(xf, m->cols, m->rows, [&](const at::Tensor& x2) { return quant_matmul(*m, x2); });
  }
  return QuantLinearFunction::apply(xf, c10::make_intrusive<MatrixHolder>(std::move(m)));
}

}  // namespace hearth
