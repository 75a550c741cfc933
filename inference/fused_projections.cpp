#include "inference/fused_projections.h"

#include <map>
#include <optional>
#include <regex>

#include "core/error.h"
#include "inference/quant/quantized_matrix.h"

namespace hearth {
namespace {

// One fused tensor and its parts, in row order: "self_attn.qkv_proj" -> q, k, v.
struct ProjectionFusion {
  const char* fused;
  std::vector<const char*> parts;
};
const ProjectionFusion kFusions[] = {
    {"self_attn.qkv_proj", {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}},
    {"mlp.gate_up_proj", {"mlp.gate_proj", "mlp.up_proj"}},
};

// Rows of each part under `config`: q heads * head_dim, kv heads * head_dim, intermediate.
int64_t part_rows(const std::string& part, const ModelConfig& c) {
  if (part == "self_attn.q_proj") return c.num_heads * c.head_dim;
  if (part == "self_attn.k_proj" || part == "self_attn.v_proj") return c.num_kv_heads * c.head_dim;
  return c.intermediate_size;
}

// "model.layers.N." and the rest of a layer tensor's name, or nullopt.
std::optional<std::pair<std::string, std::string>> split_layer_name(const std::string& name) {
  static const std::regex layer(R"((model\.layers\.\d{1,4}\.)(.+))");
  std::smatch m;
  if (!std::regex_match(name, m, layer)) return std::nullopt;
  return std::make_pair(m[1].str(), m[2].str());
}

// Where a part lives in its fused tensor.
struct PartSlice {
  std::string fused;  // full name of the fused tensor
  int64_t offset = 0, rows = 0, total = 0;
  bool last = false;  // the last part read: the fused tensor's pages may go after it
};

class SplitFusedSource : public TensorSource {
 public:
  SplitFusedSource(std::unique_ptr<TensorSource> inner, const ModelConfig& config) : inner_(std::move(inner)) {
    for (const std::string& name : inner_->names()) {
      const auto layer = split_layer_name(name);
      const ProjectionFusion* fusion = nullptr;
      for (const ProjectionFusion& f : kFusions)
        if (layer && layer->second == std::string(f.fused) + ".weight") fusion = &f;
      if (!fusion) {
        names_.push_back(name);
        continue;
      }
      int64_t total = 0;
      for (const char* part : fusion->parts) total += part_rows(part, config);
      int64_t offset = 0;
      for (const char* part : fusion->parts) {
        const std::string split = layer->first + part + ".weight";
        const int64_t rows = part_rows(part, config);
        slices_[split] = {name, offset, rows, total, part == fusion->parts.back()};
        names_.push_back(split);
        offset += rows;
      }
    }
  }
  bool contains(const std::string& name) const override { return slices_.count(name) || inner_->contains(name); }
  std::vector<std::string> names() const override { return names_; }
  at::Tensor get(const std::string& name) const override {
    const PartSlice* s = slice(name);
    if (!s) return inner_->get(name);
    at::Tensor fused = inner_->get(s->fused);
    check_rows(*s, fused.dim() == 2 ? fused.size(0) : -1);
    return fused.narrow(0, s->offset, s->rows);
  }
  std::shared_ptr<const QuantizedMatrix> packed(const std::string& name) const override {
    const PartSlice* s = slice(name);
    if (!s) return inner_->packed(name);
    auto m = inner_->packed(s->fused);
    if (!m) return nullptr;
    check_rows(*s, m->rows);
    // GGUF's block formats keep each row's blocks (and their scales) in the row's own bytes.
    require(!m->absmax_codes.defined(), ErrorCode::kUnsupported, "tensor \"" + s->fused + "\": an nf4 matrix cannot be split by rows");
    auto part = std::make_shared<QuantizedMatrix>(*m);
    part->rows = s->rows;
    part->codes = m->codes.narrow(0, s->offset, s->rows);
    if (m->scales.defined()) part->scales = m->scales.narrow(0, s->offset, s->rows);
    return part;
  }
  std::shared_ptr<SafetensorsFile> file_of(const std::string& name) const override {
    return slice(name) ? nullptr : inner_->file_of(name);
  }
  void release(const std::string& name) const override {
    const PartSlice* s = slice(name);
    if (!s) return inner_->release(name);
    if (s->last) inner_->release(s->fused);
  }

 private:
  const PartSlice* slice(const std::string& name) const {
    auto it = slices_.find(name);
    return it == slices_.end() ? nullptr : &it->second;
  }
  static void check_rows(const PartSlice& s, int64_t rows) {
    require(rows == s.total, ErrorCode::kCorruptFile,
            "tensor \"" + s.fused + "\" has " + std::to_string(rows) + " rows, the config implies " + std::to_string(s.total));
  }

  std::unique_ptr<TensorSource> inner_;
  std::map<std::string, PartSlice> slices_;
  std::vector<std::string> names_;
};

// The fusion `name` (a full fused name) stands for and its layer prefix, or nullptr.
const ProjectionFusion* fusion_of_fused(const std::string& name, std::string& prefix) {
  const auto layer = split_layer_name(name);
  if (!layer) return nullptr;
  for (const ProjectionFusion& f : kFusions) {
    if (layer->second == std::string(f.fused) + ".weight") {
      prefix = layer->first;
      return &f;
    }
  }
  return nullptr;
}

// The fusion whose part `name` is (a full split name), or nullptr.
const ProjectionFusion* fusion_of_part(const std::string& name) {
  const auto layer = split_layer_name(name);
  if (!layer) return nullptr;
  for (const ProjectionFusion& f : kFusions)
    for (const char* part : f.parts)
      if (layer->second == std::string(part) + ".weight") return &f;
  return nullptr;
}

// The parts as one tensor without a copy when they lie back to back in memory (the split views
// of a fused tensor, as loading and model init leave them): their bytes then are the
// concatenation, kept alive by the parts. Undefined otherwise.
at::Tensor back_to_back(const std::vector<at::Tensor>& parts) {
  const at::Tensor& first = parts.front();
  if (first.dim() != 2) return {};
  const int64_t cols = first.size(1);
  int64_t rows = 0;
  for (const at::Tensor& p : parts) {
    const char* expected = static_cast<const char*>(first.data_ptr()) + rows * cols * first.element_size();
    if (p.dim() != 2 || p.size(1) != cols || !p.is_contiguous() || p.scalar_type() != first.scalar_type() ||
        static_cast<const char*>(p.data_ptr()) != expected)
      return {};
    rows += p.size(0);
  }
  return at::from_blob(first.data_ptr(), {rows, cols}, [keep = parts](void*) {}, first.options());
}

}  // namespace

std::unique_ptr<TensorSource> split_fused_projections(std::unique_ptr<TensorSource> inner, const ModelConfig& config) {
  if (!config.fused_projections()) return inner;
  return std::make_unique<SplitFusedSource>(std::move(inner), config);
}

bool FusedProjectionsView::contains(const std::string& name) const {
  std::string prefix;
  if (!fuse_) return split_.contains(name);
  if (const ProjectionFusion* f = fusion_of_fused(name, prefix)) return split_.contains(prefix + f->parts.front() + ".weight");
  return fusion_of_part(name) == nullptr && split_.contains(name);
}

std::vector<std::string> FusedProjectionsView::names() const {
  if (!fuse_) return split_.names();
  std::vector<std::string> out;
  for (const std::string& name : split_.names()) {
    const ProjectionFusion* f = fusion_of_part(name);
    if (!f) {
      out.push_back(name);
    } else if (name.find(f->parts.front()) != std::string::npos) {
      out.push_back(split_layer_name(name)->first + f->fused + ".weight");  // once, for the first part
    }
  }
  return out;
}

at::Tensor FusedProjectionsView::get(const std::string& name) const {
  std::string prefix;
  const ProjectionFusion* f = fuse_ ? fusion_of_fused(name, prefix) : nullptr;
  if (!f) return split_.get(name);
  std::vector<at::Tensor> parts;
  for (const char* part : f->parts) parts.push_back(split_.get(prefix + part + ".weight"));
  at::Tensor whole = back_to_back(parts);
  return whole.defined() ? whole : at::cat(parts, 0);
}

void FusedProjectionsView::release(const std::string& name) const {
  std::string prefix;
  const ProjectionFusion* f = fuse_ ? fusion_of_fused(name, prefix) : nullptr;
  if (!f) return split_.release(name);
  for (const char* part : f->parts) split_.release(prefix + part + ".weight");
}

}  // namespace hearth
