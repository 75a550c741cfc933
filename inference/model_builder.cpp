#include "inference/model_builder.h"

#include "core/error.h"
#include "inference/linear_quantized.h"
#include "inference/quant/quant.h"
#include "inference/split_table.h"

namespace hearth {
namespace {

class Builder {
 public:
  Builder(const ModelConfig& config, const TensorSource& tensors, const LoadOptions& options,
          const std::optional<QuantizationInfo>& packed)
      : config_(config), tensors_(tensors), options_(options), packed_(packed) {}

  std::shared_ptr<Decoder> build() {
    const int64_t h = config_.hidden_size, q = config_.num_heads * config_.head_dim,
                  kv = config_.num_kv_heads * config_.head_dim, ff = config_.intermediate_size;
    std::vector<DecoderLayer> layers(config_.num_layers);
    for (int64_t l = 0; l < config_.num_layers; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".";
      DecoderLayer& layer = layers[l];
      for (const auto& [name, member] : DecoderLayer::norm_names(config_)) {
        // q/k norms ("self_attn.q_norm") weigh one head; the others the hidden state.
        const bool per_head = name.rfind("self_attn.", 0) == 0;
        layer.*member = norm(p + name, per_head ? config_.head_dim : h);
      }
      const bool bias = config_.attention_bias;
      layer.q = projection(p + "self_attn.q_proj", q, h, bias);
      layer.k = projection(p + "self_attn.k_proj", kv, h, bias);
      layer.v = projection(p + "self_attn.v_proj", kv, h, bias);
      layer.o = projection(p + "self_attn.o_proj", h, q, false);
      layer.gate = projection(p + "mlp.gate_proj", ff, h, false);
      layer.up = projection(p + "mlp.up_proj", ff, h, false);
      layer.down = projection(p + "mlp.down_proj", h, ff, false);
    }
    // Mixed precision names its projections; a name matching none is a damaged config.
    require(!packed_ || overrides_used_ == packed_->overrides.size(), ErrorCode::kCorruptFile,
            "the quantized model's config lists format overrides for tensors it does not have");
    at::Tensor final_norm = norm("model.norm.weight", h);
    Embedding embedding;
    Linear head;
    const bool tied = config_.tie_word_embeddings || !(tensors_.contains("lm_head.weight") || tensors_.contains("lm_head.codes"));
    if (packed_ && packed_->table_split) {
      auto table = read_split("model.embed_tokens", *packed_->table_split, *embedding_quant_format(packed_->embeddings));
      embedding = Embedding::split(table);
      head = Linear::split(tied ? table : read_split("lm_head", *packed_->table_split, *embedding_quant_format(packed_->embeddings)));
      return std::make_shared<Decoder>(config_, std::move(embedding), std::move(layers), final_norm, std::move(head));
    }
    if (packed_ && embedding_quant_format(packed_->embeddings)) {
      const QuantFormat format = *embedding_quant_format(packed_->embeddings);
      auto table = read_packed("model.embed_tokens", format, config_.vocab_size, h);
      embedding = Embedding::quantized(table);
      head = Linear::quantized(tied ? table : read_packed("lm_head", format, config_.vocab_size, h));
      return std::make_shared<Decoder>(config_, std::move(embedding), std::move(layers), final_norm, std::move(head));
    }
    if (auto table = source_packed("model.embed_tokens.weight", config_.vocab_size, h)) {
      // A block-format table (GGUF) is used as stored; so is the head's, or the table itself when tied.
      embedding = Embedding::quantized(table);
      if (tied) {
        head = Linear::quantized(table);
      } else if (auto packed_head = source_packed("lm_head.weight", config_.vocab_size, h)) {
        head = Linear::quantized(packed_head);
      } else {
        head = Linear::dense(to_compute(checked("lm_head.weight", {config_.vocab_size, h})));
      }
      return std::make_shared<Decoder>(config_, std::move(embedding), std::move(layers), final_norm, std::move(head));
    }
    at::Tensor table = checked("model.embed_tokens.weight", {config_.vocab_size, h});
    if (!tied) {
      if (auto packed_head = source_packed("lm_head.weight", config_.vocab_size, h)) {
        embedding = Embedding::dense(to_compute(table));
        head = Linear::quantized(packed_head);
        return std::make_shared<Decoder>(config_, std::move(embedding), std::move(layers), final_norm, std::move(head));
      }
    }
    if (quantize_embeddings()) {
      auto packed = quantize_for_load(table, embedding_format());
      tensors_.release("model.embed_tokens.weight");
      embedding = Embedding::quantized(packed);
      if (tied) {
        head = Linear::quantized(packed);
      } else {
        head = Linear::quantized(quantize_for_load(checked("lm_head.weight", {config_.vocab_size, h}), embedding_format()));
        tensors_.release("lm_head.weight");
      }
    } else {
      at::Tensor dense = to_compute(table);
      embedding = Embedding::dense(dense);
      head = tied ? Linear::dense(dense) : Linear::dense(to_compute(checked("lm_head.weight", {config_.vocab_size, h})));
    }
    return std::make_shared<Decoder>(config_, std::move(embedding), std::move(layers), final_norm, std::move(head));
  }

 private:
  at::Tensor checked(const std::string& name, std::vector<int64_t> shape) {
    at::Tensor t = tensors_.get(name);
    require(t.sizes().vec() == shape, ErrorCode::kCorruptFile,
            "tensor \"" + name + "\" has shape " + c10::str(t.sizes()) + ", the config implies " + c10::str(at::IntArrayRef(shape)));
    require(t.is_floating_point(), ErrorCode::kCorruptFile, "tensor \"" + name + "\" is not floating point");
    return t;
  }
  at::Tensor norm(const std::string& name, int64_t size) { return owned_copy(name, {size}).to(at::kFloat); }
  // Norms and biases, read on every token, are copied out of a mapped file: reading them there
  // faults in whole page-cache folios around them, the released codes of the neighbouring
  // projections with them (8 MB on SmolLM2 by its first prompt).
  at::Tensor owned_copy(const std::string& name, std::vector<int64_t> shape) {
    at::Tensor t = checked(name, std::move(shape)).clone();
    tensors_.release(name);
    return t;
  }
  // Dense weights stay views of the file when its dtype is already the compute dtype.
  at::Tensor to_compute(const at::Tensor& t) { return t.to(options_.compute_dtype).contiguous(); }

  std::shared_ptr<const QuantizedMatrix> read_packed(const std::string& prefix, QuantFormat format, int64_t rows, int64_t cols) {
    auto file = tensors_.file_of(prefix + ".codes");
    require(file != nullptr, ErrorCode::kCorruptFile, "the quantized model has no tensor \"" + prefix + ".codes\"");
    return std::make_shared<const QuantizedMatrix>(read_quantized(*file, prefix, format, rows, cols));
  }

  std::shared_ptr<const SplitTable> read_split(const std::string& prefix, QuantFormat frequent, QuantFormat rare) {
    auto file = tensors_.file_of(prefix + ".frequent_rows");
    require(file != nullptr, ErrorCode::kCorruptFile, "the quantized model has no tensor \"" + prefix + ".frequent_rows\"");
    return read_split_table(*file, prefix, frequent, rare, config_.vocab_size, config_.hidden_size);
  }

  // The source's own block-format matrix for `name` (GGUF), checked against the config's shape.
  std::shared_ptr<const QuantizedMatrix> source_packed(const std::string& name, int64_t rows, int64_t cols) {
    if (packed_ || !tensors_.contains(name)) return nullptr;
    auto m = tensors_.packed(name);
    if (m) {
      require(m->rows == rows && m->cols == cols, ErrorCode::kCorruptFile,
              "tensor \"" + name + "\" has shape [" + std::to_string(m->rows) + ", " + std::to_string(m->cols) +
                  "], the config implies [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
    }
    return m;
  }

  Linear projection(const std::string& prefix, int64_t out, int64_t in, bool bias) {
    at::Tensor b = bias ? owned_copy(prefix + ".bias", {out}) : at::Tensor();
    if (packed_) {
      if (packed_->overrides.count(prefix)) ++overrides_used_;
      return Linear::quantized(read_packed(prefix, packed_->format_of(prefix), out, in), b);
    }
    if (auto m = source_packed(prefix + ".weight", out, in)) return Linear::quantized(m, b);
    at::Tensor w = checked(prefix + ".weight", {out, in});
    if (options_.quant) {
      auto packed = quantize_for_load(w, *options_.quant);
      tensors_.release(prefix + ".weight");
      return Linear::quantized(packed, b);
    }
    return Linear::dense(to_compute(w), b);
  }

  bool quantize_embeddings() const { return options_.quant && embedding_quant_format(options_.embeddings); }
  QuantFormat embedding_format() const { return *embedding_quant_format(options_.embeddings); }

  const ModelConfig& config_;
  const TensorSource& tensors_;
  const LoadOptions& options_;
  const std::optional<QuantizationInfo>& packed_;
  size_t overrides_used_ = 0;
};

}  // namespace

std::shared_ptr<Decoder> build_decoder(const ModelConfig& config, const TensorSource& tensors, const LoadOptions& options,
                                       const std::optional<QuantizationInfo>& packed) {
  LoadOptions effective = options;
  if (packed) {
    effective.quant = packed->format;
    effective.embeddings = packed->embeddings;
  }
  // A quantized base computes its remaining dense parts (bf16 embeddings) in bf16.
  if (effective.quant && effective.embeddings == EmbeddingStorage::kBF16) effective.compute_dtype = at::kBFloat16;
  return Builder(config, tensors, effective, packed).build();
}

}  // namespace hearth
