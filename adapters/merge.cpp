#include "adapters/merge.h"

#include <cmath>
#include <functional>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "inference/gguf_export.h"
#include "inference/model_files.h"
#include "inference/quantized_model_files.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/tensor_source.h"

namespace fs = std::filesystem;

namespace hearth {
namespace {

// The decoder's tensors under Hugging Face names, each produced when asked for: projections
// the adapter targets come out merged; nothing else is copied until the writer asks.
class MergedTensors : public TensorSource {
 public:
  MergedTensors(const Decoder& decoder, const Adapter& adapter, std::optional<QuantFormat> requantize)
      : decoder_(decoder), requantize_(requantize) {
    for (const AdapterModule& m : adapter.modules()) modules_[{m.layer, m.name}] = m.impl.get();
    const ModelConfig& c = decoder.config();
    add("model.embed_tokens.weight", [this] { return decoder_.embedding().table_fp32(); });
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const DecoderLayer& layer = decoder.layers()[l];
      for (const auto& [name, member] : DecoderLayer::norm_names(c)) add(p + name, [&layer, member = member] { return layer.*member; });
      for (const std::string& name : all_projection_names()) {
        const std::string key = p + DecoderLayer::module_path(name);
        add(key + ".weight", [this, l, name] { return projection(l, name); });
        const Linear& linear = decoder_projection(layer, name);
        if (linear.bias().defined()) add(key + ".bias", [&linear] { return linear.bias(); });
      }
    }
    add("model.norm.weight", [this] { return decoder_.final_norm_weight(); });
    if (!c.tie_word_embeddings) add("lm_head.weight", [this] { return decoder_.lm_head().weight_fp32(); });
  }

  bool contains(const std::string& name) const override { return producers_.count(name) != 0; }
  // Sorted, as a safetensors folder lists them, so the fingerprint a re-quantized folder records
  // equals the one its full-precision twin gets on load.
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : producers_) out.push_back(kv.first);
    return out;
  }
  at::Tensor get(const std::string& name) const override {
    auto it = producers_.find(name);
    require(it != producers_.end(), ErrorCode::kInternal, "merge: no tensor " + name);
    return it->second();
  }

  int64_t merged_modules() const { return merged_; }
  std::optional<double> requantization_error() const {
    if (!requantize_) return std::nullopt;
    return norm_sq_ > 0 ? std::sqrt(error_sq_ / norm_sq_) : 0.0;
  }

 private:
  void add(const std::string& name, std::function<at::Tensor()> producer) { producers_[name] = std::move(producer); }

  at::Tensor projection(int64_t layer, const std::string& name) const {
    at::NoGradGuard no_grad;
    const Linear& base = decoder_projection(decoder_.layers()[layer], name);
    auto it = modules_.find({layer, name});
    at::Tensor w = it == modules_.end() ? base.weight_fp32() : it->second->merged_weight(base);
    if (it != modules_.end()) ++merged_;
    measure_requantization(w);
    return w;
  }

  // Quantizes w a second time (the writer quantizes it too) rather than threading the packed
  // matrix through the TensorSource interface: one extra pass per projection, merge is offline.
  void measure_requantization(const at::Tensor& w) const {
    if (!requantize_) return;
    const at::Tensor exact = w.to(at::kDouble);
    norm_sq_ += exact.pow(2).sum().item<double>();
    const at::Tensor back = dequantize_matrix(quantize_matrix(w, *requantize_));
    error_sq_ += (back.to(at::kDouble) - exact).pow(2).sum().item<double>();
  }

  const Decoder& decoder_;
  std::map<std::pair<int64_t, std::string>, const LowRankLayer*> modules_;
  std::map<std::string, std::function<at::Tensor()>> producers_;
  std::optional<QuantFormat> requantize_;
  mutable double error_sq_ = 0;
  mutable double norm_sq_ = 0;
  mutable int64_t merged_ = 0;
};

void check_fits(const Decoder& decoder, const Adapter& adapter) {
  require(adapter.num_layers() == static_cast<int64_t>(decoder.layers().size()), ErrorCode::kInvalidArgument,
          "merge: the adapter was made for a model with " + std::to_string(adapter.num_layers()) + " layers");
  for (const AdapterModule& m : adapter.modules()) {
    const Linear& l = decoder_projection(decoder.layers()[m.layer], m.name);
    require(l.in_features() == m.impl->in_features() && l.out_features() == m.impl->out_features(),
            ErrorCode::kInvalidArgument, "merge: adapter module " + m.peft_prefix() + " does not fit this model");
  }
}

}  // namespace

MergeReport merge_adapter_to_gguf(const Decoder& decoder, const Adapter& adapter, const fs::path& out,
                                  const GgufFile* tokenizer_source, const fs::path& tokenizer_file,
                                  std::optional<QuantFormat> format) {
  check_fits(decoder, adapter);
  MergedTensors tensors(decoder, adapter, format);
  GgufExportOptions options;
  options.format = format;
  options.name = "hearth-merged";
  const GgufExportReport written = write_gguf_model(out, decoder.config(), tensors, tokenizer_source, tokenizer_file, options);
  MergeReport report;
  report.merged_modules = tensors.merged_modules();
  report.tensors_written = written.tensors;
  report.requantization_relative_error = tensors.requantization_error();
  return report;
}

MergeReport merge_adapter_to_folder(const Decoder& decoder, const Adapter& adapter, const fs::path& out,
                                    const std::vector<fs::path>& tokenizer_files, const MergeOptions& options) {
  require(options.dtype == at::kFloat || options.dtype == at::kBFloat16, ErrorCode::kInvalidArgument,
          "merge: the output dtype must be fp32 or bf16");
  check_fits(decoder, adapter);
  for (const fs::path& f : tokenizer_files)
    require(fs::is_regular_file(f), ErrorCode::kNotFound, "merge: tokenizer file " + f.string() + " does not exist");
  MergedTensors tensors(decoder, adapter, options.requantize);
  if (options.requantize) {
    QuantizationInfo info;
    info.format = *options.requantize;
    info.embeddings = options.embeddings;  // source_fingerprint left empty: the writer fingerprints W'
    write_quantized_model(out, decoder.config(), tensors, info, tokenizer_files);
  } else {
    StagedDirectory staged(out);
    write_hf_files(staged.path(), decoder.config(), tensors, tokenizer_files, options.dtype);
    staged.commit();
  }
  MergeReport report;
  report.merged_modules = tensors.merged_modules();
  report.tensors_written = static_cast<int64_t>(tensors.names().size());
  report.requantization_relative_error = tensors.requantization_error();
  return report;
}

}  // namespace hearth
