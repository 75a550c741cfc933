#include "inference/model_loader.h"

#include <regex>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "core/error.h"
#include "core/library_pages.h"
#include "core/json.h"
#include "inference/fingerprint.h"
#include "inference/fused_projections.h"
#include "inference/gguf_model.h"
#include "inference/gguf_tokenizer.h"
#include "inference/llama2c_model.h"
#include "inference/model_builder.h"
#include "inference/quant/quantized_matrix.h"
#include "inference/split_table.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

bool is_llama2c_tokenizer_name(const std::string& name) {
  static const std::regex pattern("tokenizer\\.bin|tok[0-9]+\\.bin");
  return std::regex_match(name, pattern);
}

// The one llama2.c model file in a folder (a .bin that is not a tokenizer).
fs::path find_llama2c_file(const fs::path& dir) {
  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && entry.path().extension() == ".bin" && !is_llama2c_tokenizer_name(name)) {
      candidates.push_back(entry.path());
    }
  }
  require(!candidates.empty(), ErrorCode::kNotFound,
          dir.string() + " holds no model: expected config.json (Hugging Face) or a llama2.c .bin file");
  require(candidates.size() == 1, ErrorCode::kInvalidArgument,
          dir.string() + " holds several llama2.c .bin files; name one with --model");
  return candidates.front();
}

// Every quantized projection and the head of d with row tiles as well (with_row_tiles). Pages
// of the row-major codes and block scales that a quantized folder maps then leave resident memory
// (they come back from the file if read: a merge), the codes slice by slice as they are tiled;
// codes quantized while loading stay.
void add_row_tiles(Decoder& d, const TensorSource& tensors) {
  auto tiled = [&](const std::shared_ptr<const QuantizedMatrix>& m, const std::string& prefix) {
    const std::string codes = prefix + ".codes";
    const int64_t row_bytes = m->codes.size(1);
    auto rows_copied = [&](int64_t r0, int64_t r1) { tensors.release_part(codes, r0 * row_bytes, (r1 - r0) * row_bytes); };
    auto out = with_row_tiles(m, rows_copied);
    // The tiles carry copies of the codes and of the per-block scales; the kernels read those.
    if (out->tiles)
      for (const char* part : {".codes", ".absmax_codes", ".scales"}) tensors.release(prefix + part);
    return out;
  };
  auto tile = [&](Linear& l, const std::string& prefix) {
    if (l.is_quantized()) l = Linear::quantized(tiled(l.quantized_weight(), prefix), l.bias());
  };
  for (size_t i = 0; i < d.layers().size(); ++i)
    for (auto& [name, linear] : d.layers()[i].projections())
      tile(*linear, "model.layers." + std::to_string(i) + "." + DecoderLayer::module_path(name));
  const bool tied = d.head_is_embedding();
  tile(d.lm_head(), tied ? "model.embed_tokens" : "lm_head");
  // The table's lookups read the tied head's tiles as well, so its released pages stay out.
  if (tied && d.lm_head().is_quantized() && d.lm_head().quantized_weight()->tiles)
    d.embedding() = Embedding::quantized(d.lm_head().quantized_weight());
  if (d.lm_head().is_split()) {
    const SplitTable& t = *d.lm_head().split_weight();
    const std::string prefix = tied ? "model.embed_tokens" : "lm_head";
    auto both = with_parts(t, tiled(t.frequent, prefix + ".frequent"), tiled(t.rare, prefix + ".rare"));
    d.lm_head() = Linear::split(both);
    if (tied) d.embedding() = Embedding::split(both);
  }
}

// Returns the heap that loading freed to the system (the tokenizer's JSON: ~14 MB on SmolLM2):
// malloc keeps it otherwise, and the weights' large buffers never reuse it (they are mapped).
void return_freed_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace

fs::path find_tokenizer(const fs::path& model) {
  const fs::path dir = fs::is_directory(model) ? model : model.parent_path();
  if (fs::exists(dir / "tokenizer.json")) return dir / "tokenizer.json";
  if (fs::exists(dir / "tokenizer.bin")) return dir / "tokenizer.bin";
  std::vector<fs::path> found;
  for (const auto& entry : fs::directory_iterator(dir.empty() ? fs::path(".") : dir)) {
    if (is_llama2c_tokenizer_name(entry.path().filename().string())) found.push_back(entry.path());
  }
  require(!found.empty(), ErrorCode::kNotFound,
          "no tokenizer beside " + model.string() + " (tokenizer.json, tokenizer.bin or tok<N>.bin); name one with --tokenizer");
  require(found.size() == 1, ErrorCode::kInvalidArgument, "several tokenizers beside " + model.string() + "; name one with --tokenizer");
  return found.front();
}

std::string ModelSource::fingerprint() const {
  if (gguf) return gguf_fingerprint(*gguf);
  return quantization ? quantization->source_fingerprint : weights_fingerprint(*tensors);
}

ModelSource open_model_source(const fs::path& model, const fs::path& tokenizer) {
  require(fs::exists(model), ErrorCode::kNotFound, "model not found: " + model.string());
  ModelSource source;
  if (fs::is_directory(model) && fs::exists(model / "config.json")) {
    const std::string what = (model / "config.json").string();
    const Json config = read_json_file(model / "config.json");
    source.config = ModelConfig::from_hf_json(config, what);
    source.quantization = QuantizationInfo::from_config(config, what);
    source.tensors = split_fused_projections(open_safetensors_folder(model), source.config);
    source.format = source.quantization ? "quantized" : "huggingface";
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "tokenizer.bin"}) {
      if (fs::exists(model / name)) source.tokenizer_files.push_back(model / name);
    }
  } else if (fs::is_regular_file(model) && GgufFile::looks_like_gguf(model)) {
    source.gguf = GgufFile::open(model);
    GgufModel m = read_gguf_model(source.gguf);
    source.config = m.config;
    source.tensors = split_fused_projections(std::move(m.tensors), source.config);
    source.format = "gguf";
    // The tokenizer is in the file's metadata unless --tokenizer names another.
    source.tokenizer = tokenizer;
    return source;
  } else {
    const fs::path file = fs::is_directory(model) ? find_llama2c_file(model) : model;
    Llama2cModel m = read_llama2c_model(file);
    source.config = m.config;
    source.tensors = std::move(m.tensors);
    source.format = "llama2c";
  }
  source.tokenizer = tokenizer.empty() ? find_tokenizer(model) : tokenizer;
  if (source.tokenizer_files.empty()) source.tokenizer_files.push_back(source.tokenizer);
  return source;
}

LoadedModel load_model(const fs::path& model, const LoadOptions& options, const fs::path& tokenizer) {
  // Before the weights come in as well as after: the process's peak is start-up's library pages
  // plus the weights otherwise.
  if (options.release_library_pages) release_library_pages();
  ModelSource source = open_model_source(model, tokenizer);
  LoadedModel loaded;
  // The tokenizer first, its parse's garbage returned, so it is never resident with the weights.
  loaded.tokenizer_file = source.tokenizer;
  loaded.tokenizer = source.gguf && source.tokenizer.empty() ? load_gguf_tokenizer(*source.gguf) : load_tokenizer(source.tokenizer);
  if (options.release_library_pages) return_freed_heap();
  loaded.decoder = build_decoder(source.config, *source.tensors, options, source.quantization);
  if (options.row_tiles) add_row_tiles(*loaded.decoder, *source.tensors);
  loaded.fingerprint = source.fingerprint();
  loaded.format = source.format;
  loaded.gguf = source.gguf;
  require(loaded.tokenizer->vocab_size() <= loaded.decoder->config().vocab_size, ErrorCode::kInvalidArgument,
          "the tokenizer has " + std::to_string(loaded.tokenizer->vocab_size()) + " tokens but the model only " +
              std::to_string(loaded.decoder->config().vocab_size));
  if (options.release_library_pages) {
    release_library_pages();
    return_freed_heap();
  }
  return loaded;
}

}  // namespace hearth
