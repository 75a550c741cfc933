#include "inference/llama2c_model.h"

#include <cstring>

#include "core/error.h"

namespace hearth {

Llama2cModel read_llama2c_model(const std::filesystem::path& path) { return read_llama2c_model(MappedFile::open(path)); }

Llama2cModel read_llama2c_model(std::shared_ptr<MappedFile> file) {
  const std::string what = "llama2.c model " + file->path().string();
  require(file->size() >= 28, ErrorCode::kCorruptFile, what + " is too short for its 28-byte header");
  int32_t h[7];
  std::memcpy(h, file->data(), sizeof(h));
  const int64_t dim = h[0], hidden = h[1], layers = h[2], heads = h[3], kv_heads = h[4], seq_len = h[6];
  const bool tied = h[5] > 0;
  const int64_t vocab = h[5] < 0 ? -int64_t(h[5]) : h[5];
  auto bad = [&](const std::string& m) { fail(ErrorCode::kCorruptFile, what + ": " + m); };
  if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kv_heads <= 0 || vocab <= 0 || seq_len <= 0) {
    bad("header has non-positive sizes (dim " + std::to_string(dim) + ", hidden " + std::to_string(hidden) + ", layers " +
        std::to_string(layers) + ", heads " + std::to_string(heads) + ", kv heads " + std::to_string(kv_heads) +
        ", vocab " + std::to_string(vocab) + ", seq_len " + std::to_string(seq_len) + ")");
  }
  if (dim > 65536 || hidden > 262144 || layers > 1024 || vocab > (1 << 22) || seq_len > (1 << 20)) bad("header sizes are implausibly large");
  if (dim % heads != 0 || heads % kv_heads != 0 || (dim / heads) % 2 != 0) bad("heads do not divide the model dimension");
  const int64_t head_dim = dim / heads, kv_dim = kv_heads * head_dim;
  // Every size in floats, in file order; their sum must match the file exactly.
  const int64_t sizes[] = {vocab * dim,        layers * dim,    layers * dim * dim, layers * kv_dim * dim,
                           layers * kv_dim * dim, layers * dim * dim, layers * dim,  layers * hidden * dim,
                           layers * dim * hidden, layers * hidden * dim, dim, seq_len * head_dim / 2,
                           seq_len * head_dim / 2, tied ? 0 : vocab * dim};
  int64_t floats = 0;
  for (int64_t s : sizes) floats += s;
  const int64_t expected = 28 + floats * 4;
  if (expected != static_cast<int64_t>(file->size())) {
    bad("the header describes " + std::to_string(expected) + " bytes but the file has " + std::to_string(file->size()) +
        " (truncated, or the header lies)");
  }

  Llama2cModel model;
  ModelConfig& c = model.config;
  c.architecture = Architecture::kLlama;
  c.hidden_size = dim;
  c.intermediate_size = hidden;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.vocab_size = vocab;
  c.max_position_embeddings = seq_len;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  c.tie_word_embeddings = tied;
  c.bos_token_id = 1;
  c.eos_token_id = 2;
  c.validate(what);

  model.tensors = std::make_unique<TensorMap>();
  // 28 bytes of header leave the floats 4-byte aligned, so every view is aligned.
  const float* p = reinterpret_cast<const float*>(file->data() + 28);
  auto take = [&](int64_t count, std::vector<int64_t> shape) {
    auto keep_alive = file;
    at::Tensor t = at::from_blob(const_cast<float*>(p), shape, [keep_alive](void*) {}, at::kFloat);
    p += count;
    return t;
  };
  auto per_layer = [&](const std::string& suffix, at::Tensor all) {
    for (int64_t l = 0; l < layers; ++l) model.tensors->add("model.layers." + std::to_string(l) + "." + suffix, all[l]);
  };
  model.tensors->add("model.embed_tokens.weight", take(sizes[0], {vocab, dim}));
  per_layer("input_layernorm.weight", take(sizes[1], {layers, dim}));
  // q/k rows are permuted to the half-split rotary layout (a copy of those two matrices), so
  // a llama2.c file and its converted Hugging Face folder run the very same computation.
  at::Tensor wq = take(sizes[2], {layers, dim, dim}), wk = take(sizes[3], {layers, kv_dim, dim});
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
    model.tensors->add(p + "q_proj.weight", permute_rotary_rows(wq[l], heads, head_dim));
    model.tensors->add(p + "k_proj.weight", permute_rotary_rows(wk[l], kv_heads, head_dim));
  }
  per_layer("self_attn.v_proj.weight", take(sizes[4], {layers, kv_dim, dim}));
  per_layer("self_attn.o_proj.weight", take(sizes[5], {layers, dim, dim}));
  per_layer("post_attention_layernorm.weight", take(sizes[6], {layers, dim}));
  per_layer("mlp.gate_proj.weight", take(sizes[7], {layers, hidden, dim}));
  per_layer("mlp.down_proj.weight", take(sizes[8], {layers, dim, hidden}));
  per_layer("mlp.up_proj.weight", take(sizes[9], {layers, hidden, dim}));
  model.tensors->add("model.norm.weight", take(sizes[10], {dim}));
  p += sizes[11] + sizes[12];  // precomputed rotary tables: recomputed instead
  if (!tied) model.tensors->add("lm_head.weight", take(sizes[13], {vocab, dim}));
  return model;
}

at::Tensor permute_rotary_rows(const at::Tensor& weight, int64_t heads, int64_t head_dim) {
  // Within each head, rows (0,1),(2,3),... are rotary pairs; Hugging Face pairs row i with
  // row i + head_dim/2. Taking even rows then odd rows maps one layout onto the other.
  const int64_t in = weight.size(1);
  return weight.view({heads, head_dim / 2, 2, in}).transpose(1, 2).reshape({heads * head_dim, in}).contiguous();
}

}  // namespace hearth
