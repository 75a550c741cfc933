#include "inference/model_files.h"

#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/range_check.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "inference/fused_projections.h"
#include "inference/llama2c_model.h"
#include "inference/model_loader.h"
#include "inference/tokenizer/synthetic_tokenizer.h"

namespace hearth {

namespace fs = std::filesystem;

void write_hf_files(const fs::path& dir, const ModelConfig& config, const TensorSource& tensors,
                    const std::vector<fs::path>& tokenizer_files, at::ScalarType dtype) {
  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  // Phi-3's q/k/v and gate/up are written fused, as its checkpoints hold them.
  const FusedProjectionsView fused(tensors, config);
  for (const std::string& name : fused.names()) writer.add(name, fused.get(name).to(dtype));
  writer.write(dir / "model.safetensors");
  write_file_atomic(dir / "config.json", config.to_hf_json().dump(2) + "\n");
  for (const fs::path& f : tokenizer_files) fs::copy_file(f, dir / f.filename(), fs::copy_options::overwrite_existing);
}

void convert_llama2c_to_hf(const fs::path& in, const fs::path& out, const fs::path& tokenizer) {
  fs::path file = in;
  if (fs::is_directory(in)) {
    for (const auto& entry : fs::directory_iterator(in)) {
      const std::string name = entry.path().filename().string();
      if (entry.path().extension() == ".bin" && name != "tokenizer.bin" && name.rfind("tok", 0) != 0) file = entry.path();
    }
    require(file != in, ErrorCode::kNotFound, in.string() + " holds no llama2.c model file");
  }
  Llama2cModel model = read_llama2c_model(file);
  const fs::path tok = tokenizer.empty() ? find_tokenizer(in) : tokenizer;
  StagedDirectory staged(out);
  write_hf_files(staged.path(), model.config, *model.tensors, {}, at::kFloat);
  // Saved as tokenizer.bin so the folder's tokenizer is found without naming it.
  fs::copy_file(tok, staged.path() / "tokenizer.bin");
  staged.commit();
}

std::string preset_names() {
  return "smollm2-135m, qwen2.5-0.5b, llama3.2-1b, qwen3-0.6b, gemma3-270m, gemma3-1b, phi-4-mini, tiny, tiny-qwen3, tiny-gemma3, "
         "tiny-phi3";
}

namespace {

// Phi-4-mini-instruct's longrope factors (its config.json): the short ones are all 1, the long
// ones stretch low frequencies up to 47.77 times for 128k positions.
const std::vector<float> kPhi4MiniLongFactor = {
    1.0f,        1.118320672f, 1.250641126f, 1.398617824f, 1.564103225f, 1.74916897f,  1.956131817f, 2.187582649f,
    2.446418898f, 2.735880826f, 3.059592084f, 3.421605075f, 3.826451687f, 4.279200023f, 4.785517845f, 5.351743533f,
    5.984965424f, 6.693110555f, 7.485043894f, 8.370679318f, 9.36110372f,  10.4687158f,  11.70738129f, 13.09260651f,
    14.64173252f, 16.37415215f, 18.31155283f, 20.47818807f, 22.90118105f, 25.61086418f, 28.64115884f, 32.03f,
    32.1f,        32.13f,       32.23f,       32.6f,        32.61f,       32.64f,       32.66f,       32.7f,
    32.71f,       32.93f,       32.97f,       33.28f,       33.49f,       33.5f,        44.16f,       47.77f};

// Phi-4-mini: fused q/k/v and gate/up, 96 of 128 head dimensions rotate, longrope from 4k to
// 128k, tied head. The tiny shape keeps each of those (12 of 16 rotate; short factors other than
// 1 so the tests see them; a context of 512 stretched to 2048, attention factor 1.10: llama.cpp
// pads its context to 256 and takes the long factors above the original context).
void set_phi3_preset(bool tiny, ModelConfig& c) {
  c.architecture = Architecture::kPhi3;
  if (!tiny) {
    c.hidden_size = 3072, c.intermediate_size = 8192, c.num_layers = 32, c.num_heads = 24, c.num_kv_heads = 8, c.head_dim = 128;
    c.vocab_size = 200064, c.max_position_embeddings = 131072, c.rope_theta = 10000, c.rms_norm_eps = 1e-5;
    c.bos_token_id = 199999, c.eos_token_id = 199999;
    c.rotary_dims = 96;
    c.long_rope = {true, std::vector<float>(48, 1.0f), kPhi4MiniLongFactor, 4096, 0.0};
    return;
  }
  c.hidden_size = 64, c.intermediate_size = 160, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 16;
  c.vocab_size = 512, c.max_position_embeddings = 2048, c.rope_theta = 10000, c.rms_norm_eps = 1e-5;
  c.bos_token_id = 1, c.eos_token_id = 2;
  c.rotary_dims = 12;
  c.long_rope = {true, {1.0f, 1.3f, 1.7f, 2.5f, 4.0f, 6.0f}, {1.0f, 2.0f, 4.0f, 8.0f, 16.0f, 32.0f}, 512, 0.0};
}

}  // namespace

ModelConfig preset_config(const std::string& arch) {
  ModelConfig c;
  c.tie_word_embeddings = true;
  c.head_dim = 64;
  if (arch == "smollm2-135m") {
    c.hidden_size = 576, c.intermediate_size = 1536, c.num_layers = 30, c.num_heads = 9, c.num_kv_heads = 3;
    c.vocab_size = 49152, c.max_position_embeddings = 8192, c.rope_theta = 100000, c.rms_norm_eps = 1e-5;
    c.bos_token_id = 1, c.eos_token_id = 2;
  } else if (arch == "qwen2.5-0.5b") {
    c.architecture = Architecture::kQwen2, c.attention_bias = true;
    c.hidden_size = 896, c.intermediate_size = 4864, c.num_layers = 24, c.num_heads = 14, c.num_kv_heads = 2;
    c.vocab_size = 151936, c.max_position_embeddings = 32768, c.rope_theta = 1000000, c.rms_norm_eps = 1e-6;
    c.bos_token_id = 151643, c.eos_token_id = 151643;
  } else if (arch == "llama3.2-1b") {
    c.hidden_size = 2048, c.intermediate_size = 8192, c.num_layers = 16, c.num_heads = 32, c.num_kv_heads = 8;
    c.vocab_size = 128256, c.max_position_embeddings = 131072, c.rope_theta = 500000, c.rms_norm_eps = 1e-5;
    c.rope_scaling = {true, 32.0, 1.0, 4.0, 8192};
    c.bos_token_id = 128000, c.eos_token_id = 128001;
  } else if (arch == "tiny") {
    c.hidden_size = 64, c.intermediate_size = 176, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 16;
    c.vocab_size = 512, c.max_position_embeddings = 512, c.rope_theta = 10000, c.rms_norm_eps = 1e-5;
    c.bos_token_id = 1, c.eos_token_id = 2;
  } else if (arch == "qwen3-0.6b" || arch == "tiny-qwen3") {
    // Qwen3: q/k norms, no biases, head_dim 128 independent of hidden / heads.
    c.architecture = Architecture::kQwen3;
    c.hidden_size = 1024, c.intermediate_size = 3072, c.num_layers = 28, c.num_heads = 16, c.num_kv_heads = 8, c.head_dim = 128;
    c.vocab_size = 151936, c.max_position_embeddings = 40960, c.rope_theta = 1000000, c.rms_norm_eps = 1e-6;
    c.bos_token_id = 151643, c.eos_token_id = 151645;
    if (arch == "tiny-qwen3") {
      c.hidden_size = 64, c.intermediate_size = 176, c.num_layers = 2, c.num_heads = 4, c.num_kv_heads = 2, c.head_dim = 32;
      c.vocab_size = 512, c.max_position_embeddings = 512, c.bos_token_id = 1, c.eos_token_id = 2;
    }
  } else if (arch == "gemma3-270m" || arch == "gemma3-1b" || arch == "tiny-gemma3") {
    // Gemma 3: five sliding-window layers (window 512, base 10k) per global one (base 1M).
    c.architecture = Architecture::kGemma3;
    c.num_heads = 4, c.num_kv_heads = 1, c.head_dim = 256, c.vocab_size = 262144, c.max_position_embeddings = 32768;
    c.rope_theta = 1000000, c.rope_local_theta = 10000, c.sliding_window = 512, c.sliding_window_pattern = 6;
    c.rms_norm_eps = 1e-6, c.bos_token_id = 2, c.eos_token_id = 1;
    if (arch == "gemma3-270m") {
      c.hidden_size = 640, c.intermediate_size = 2048, c.num_layers = 18;
    } else if (arch == "gemma3-1b") {
      c.hidden_size = 1152, c.intermediate_size = 6912, c.num_layers = 26;
    } else {
      // One global layer after five local ones, a window shorter than the tests' prompts.
      c.hidden_size = 64, c.intermediate_size = 128, c.num_layers = 6, c.head_dim = 32, c.sliding_window = 4;
      c.vocab_size = 512, c.max_position_embeddings = 512, c.bos_token_id = 1, c.eos_token_id = 2;
    }
  } else if (arch == "phi-4-mini" || arch == "tiny-phi3") {
    set_phi3_preset(arch == "tiny-phi3", c);
  } else {
    fail(ErrorCode::kInvalidArgument, "unknown --arch \"" + arch + "\" (" + preset_names() + ")");
  }
  c.validate("preset " + arch);
  return c;
}

namespace {

// Projections that share an input, each [rows, cols] under `prefix`. Fused (Phi-3): drawn as one
// tensor whose parts are row views, so writing it fused again copies nothing; separate otherwise.
template <typename Normal>
void add_parts(TensorMap& tensors, const std::string& prefix, const std::vector<std::pair<const char*, int64_t>>& parts,
               int64_t cols, bool fused, Normal& normal) {
  if (!fused) {
    for (const auto& [name, rows] : parts) tensors.add(prefix + name + ".weight", normal({rows, cols}));
    return;
  }
  int64_t total = 0;
  for (const auto& part : parts) total += part.second;
  const at::Tensor whole = normal({total, cols});
  int64_t offset = 0;
  for (const auto& [name, rows] : parts) {
    tensors.add(prefix + name + ".weight", whole.narrow(0, offset, rows));
    offset += rows;
  }
}

// Seeded N(0, 0.02) weights (norms 1) with `c`'s exact tensor shapes, in `dtype`.
TensorMap random_weights(const ModelConfig& c, uint64_t seed, at::ScalarType dtype) {
  TensorMap tensors;
  uint64_t stream = 0;
  auto normal = [&](std::vector<int64_t> shape) {
    at::Generator gen = make_generator(mix_seed(seed, stream++));
    return at::normal(0.0, 0.02, shape, gen, at::TensorOptions().dtype(at::kFloat)).to(dtype);
  };
  const int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim, ff = c.intermediate_size;
  // Norms scale by 1: stored as 1, or as 0 where the architecture scales by 1 + w (Gemma).
  const double unit = c.norm_adds_one() ? 0.0 : 1.0;
  tensors.add("model.embed_tokens.weight", normal({c.vocab_size, h}));
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const auto& [name, member] : DecoderLayer::norm_names(c)) {
      const bool per_head = name.rfind("self_attn.", 0) == 0;
      tensors.add(p + name, at::full({per_head ? c.head_dim : h}, unit, dtype));
    }
    add_parts(tensors, p + "self_attn.", {{"q_proj", q}, {"k_proj", kv}, {"v_proj", kv}}, h, c.fused_projections(), normal);
    tensors.add(p + "self_attn.o_proj.weight", normal({h, q}));
    if (c.attention_bias) {
      tensors.add(p + "self_attn.q_proj.bias", normal({q}));
      tensors.add(p + "self_attn.k_proj.bias", normal({kv}));
      tensors.add(p + "self_attn.v_proj.bias", normal({kv}));
    }
    add_parts(tensors, p + "mlp.", {{"gate_proj", ff}, {"up_proj", ff}}, h, c.fused_projections(), normal);
    tensors.add(p + "mlp.down_proj.weight", normal({h, ff}));
  }
  tensors.add("model.norm.weight", at::full({h}, unit, dtype));
  return tensors;
}

}  // namespace

void init_random_model(const std::string& arch, uint64_t seed, const fs::path& out) {
  const ModelConfig c = preset_config(arch);
  TensorMap tensors = random_weights(c, seed, at::kBFloat16);
  StagedDirectory staged(out);
  std::vector<fs::path> tokenizer_files;
  if (arch == "qwen2.5-0.5b" || arch == "qwen3-0.6b" || arch == "llama3.2-1b") {
    const fs::path dir = asset_path(arch == "llama3.2-1b" ? "tokenizers/llama3" : "tokenizers/qwen3");
    tokenizer_files = {dir / "tokenizer.json", dir / "tokenizer_config.json"};
  } else {
    write_synthetic_bpe_tokenizer(staged.path(), static_cast<int32_t>(c.vocab_size), ChatFamily::kChatML);
  }
  write_hf_files(staged.path(), c, tensors, tokenizer_files, at::kBFloat16);
  staged.commit();
}

ModelConfig custom_config(const CustomModelShape& shape, const Tokenizer& tokenizer) {
  require_integer_in_range("--layers", shape.layers, 1, 1024);
  require_integer_in_range("--hidden", shape.hidden, 2, 65536);
  require_integer_in_range("--heads", shape.heads, 1, shape.hidden);
  require_integer_in_range("--kv-heads", shape.kv_heads, 1, shape.heads);
  require_integer_in_range("--intermediate", shape.intermediate, 1, 4 * 65536);
  require_integer_in_range("--max-positions", shape.max_positions, 2, int64_t(1) << 20);
  require(shape.hidden % shape.heads == 0, ErrorCode::kInvalidArgument,
          "--hidden (" + std::to_string(shape.hidden) + ") must be a multiple of --heads (" + std::to_string(shape.heads) + ")");
  require(shape.heads % shape.kv_heads == 0, ErrorCode::kInvalidArgument,
          "--heads (" + std::to_string(shape.heads) + ") must be a multiple of --kv-heads (" + std::to_string(shape.kv_heads) + ")");
  ModelConfig c;
  c.tie_word_embeddings = true;
  c.hidden_size = shape.hidden, c.intermediate_size = shape.intermediate, c.num_layers = shape.layers;
  c.num_heads = shape.heads, c.num_kv_heads = shape.kv_heads, c.head_dim = shape.hidden / shape.heads;
  c.vocab_size = tokenizer.vocab_size(), c.max_position_embeddings = shape.max_positions;
  c.rope_theta = 10000, c.rms_norm_eps = 1e-5;
  c.bos_token_id = tokenizer.bos_id(), c.eos_token_id = tokenizer.eos_id();
  c.validate("custom model");
  // Every weight is held in memory (fp32) while the folder is written.
  constexpr int64_t kMaxCustomParameters = int64_t(1) << 31;
  require(c.parameter_count() <= kMaxCustomParameters, ErrorCode::kInvalidArgument,
          "a custom model of this shape has " + std::to_string(c.parameter_count()) + " parameters (" +
              std::to_string(c.parameter_count() * 4 / (1 << 20)) + " MiB in fp32), more than the limit of " +
              std::to_string(kMaxCustomParameters) + "; choose smaller --layers, --hidden or --intermediate");
  return c;
}

void init_custom_model(const CustomModelShape& shape, const fs::path& tokenizer_from, uint64_t seed, const fs::path& out) {
  const fs::path tok = fs::is_directory(tokenizer_from) ? find_tokenizer(tokenizer_from) : tokenizer_from;
  require(fs::exists(tok), ErrorCode::kNotFound, "tokenizer not found: " + tok.string());
  const ModelConfig c = custom_config(shape, *load_tokenizer(tok));
  StagedDirectory staged(out);
  std::vector<fs::path> tokenizer_files;
  if (tok.extension() == ".json") {
    tokenizer_files.push_back(tok);
    if (fs::exists(tok.parent_path() / "tokenizer_config.json")) tokenizer_files.push_back(tok.parent_path() / "tokenizer_config.json");
  } else {
    // A llama2.c tokenizer, saved as tokenizer.bin so the folder's tokenizer is found without naming it.
    fs::copy_file(tok, staged.path() / "tokenizer.bin");
  }
  write_hf_files(staged.path(), c, random_weights(c, seed, at::kFloat), tokenizer_files, at::kFloat);
  staged.commit();
}

}  // namespace hearth
