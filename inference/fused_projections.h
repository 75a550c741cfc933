// Phi-3's fused projections: checkpoints hold self_attn.qkv_proj (q rows, then k, then v) and
// mlp.gate_up_proj (gate rows, then up); the decoder, adapters and kernels take them split.
#pragma once
#include <memory>

#include "inference/model_config.h"
#include "inference/tensor_source.h"

namespace hearth {

// `inner` with each fused tensor presented as its parts (q_proj, k_proj, v_proj, gate_proj,
// up_proj), as row slices: views of the mapped file, or of a GGUF block matrix's rows, never
// copies. Other tensors (and sources already split, as Hearth's quantized folders) pass through.
std::unique_ptr<TensorSource> split_fused_projections(std::unique_ptr<TensorSource> inner, const ModelConfig& config);

// `split` with the parts fused again, for writers of files other tools read (Hugging Face
// folders, GGUF): a view when the parts are consecutive rows of one buffer (as split_fused_projections
// and model init leave them), else concatenated. Without fused projections in `config`: `split` as is.
class FusedProjectionsView : public TensorSource {
 public:
  FusedProjectionsView(const TensorSource& split, const ModelConfig& config) : split_(split), fuse_(config.fused_projections()) {}
  bool contains(const std::string& name) const override;
  at::Tensor get(const std::string& name) const override;
  std::vector<std::string> names() const override;
  void release(const std::string& name) const override;

 private:
  const TensorSource& split_;
  bool fuse_;
};

}  // namespace hearth
