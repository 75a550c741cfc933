// Writes the seed corpus of every fuzz target into <out>/<target>/, generated at run time from
// the real assets in $HEARTH_ASSETS (nothing of ../shared is committed): `fuzz_write_seeds <out>`.
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>

#include "adapters/adapter_bundle.h"
#include "adapters/peft_files.h"
#include "core/assets.h"
#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "fuzz/fixtures.h"
#include "fuzz/harness.h"
#include "fuzz/input_parts.h"
#include "fuzz/seed_models.h"
#include "fuzz/seed_tokenizers.h"
#include "fuzz/test_records.h"
#include "inference/gguf_export.h"
#include "inference/llama2c_model.h"
#include "inference/model_files.h"
#include "inference/quantized_model_files.h"
#include "inference/split_table.h"
#include "inference/tokenizer/synthetic_tokenizer.h"
#include "privacy/data_key.h"
#include "privacy/sealed_file.h"
#include "storage/training_example.h"

using namespace hearth;
namespace fs = std::filesystem;

namespace {

const std::string kSep(fuzz::kPartSeparator);

class SeedWriter {
 public:
  explicit SeedWriter(fs::path out) : out_(std::move(out)) {}
  void add(const std::string& target, const std::string& name, const std::string& bytes) {
    fs::create_directories(out_ / target);
    std::ofstream(out_ / target / name, std::ios::binary) << bytes;
    ++counts_[target];
  }
  const std::map<std::string, int>& counts() const { return counts_; }
  fs::path scratch(const std::string& name) const {
    const fs::path dir = out_ / ".scratch" / name;
    fs::remove_all(dir);
    fs::create_directories(dir.parent_path());
    return dir;
  }

 private:
  fs::path out_;
  std::map<std::string, int> counts_;
};

std::string joined(std::initializer_list<std::string> parts) {
  std::string out;
  for (auto part = parts.begin(); part != parts.end(); ++part) out += (part == parts.begin() ? "" : kSep) + *part;
  return out;
}

// A SentencePiece-style (Gemma) tokenizer.json of exactly 264 tokens: 4 specials, the 256 byte
// pieces, and "▁", "t", "h", "▁t" with one merge, so GGUF carries a "llama" vocabulary without
// a dummy prefix whose merges the reader re-derives from scores.
void write_small_metaspace_tokenizer(const fs::path& dir) {
  Json vocab = Json::object(), added = Json::array();
  int id = 0;
  for (const char* special : {"<pad>", "<eos>", "<bos>", "<unk>"}) {
    added.push_back({{"id", id}, {"content", special}, {"special", true}});
    vocab[special] = id++;
  }
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof(piece), "<0x%02X>", b);
    vocab[piece] = id++;
  }
  for (const char* piece : {"\xE2\x96\x81", "t", "h", "\xE2\x96\x81t"}) vocab[piece] = id++;
  const Json tokenizer = {
      {"added_tokens", added},
      {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}},
      {"pre_tokenizer", nullptr},
      {"model",
       {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array({Json::array({"\xE2\x96\x81", "t"})})},
        {"byte_fallback", true}, {"unk_token", "<unk>"}}}};
  fs::create_directories(dir);
  write_file_atomic(dir / "tokenizer.json", tokenizer.dump());
  write_file_atomic(dir / "tokenizer_config.json", Json({{"bos_token", "<bos>"}, {"eos_token", "<eos>"}}).dump());
}

// The small model as GGUF files in the types Hearth reads, with the smallest tokenizer GGUF can
// carry for it: a synthetic byte-level BPE of 3 special tokens, 256 bytes and 5 merges (the
// embedding table grows to those 264 rows, from stories260K's corner).
void gguf_seeds(SeedWriter& w, const fuzz::SmallModel& small, const TensorSource& stories) {
  constexpr int32_t kVocab = 264;
  ModelConfig config = small.config;
  config.vocab_size = kVocab;
  TensorMap tensors;
  for (const std::string& name : small.tensors.names()) tensors.add(name, small.tensors.get(name));
  const int64_t hidden = config.hidden_size;
  tensors.add("model.embed_tokens.weight",
              stories.get("model.embed_tokens.weight").narrow(0, 0, kVocab).narrow(1, 0, hidden).contiguous());
  const fs::path dir = w.scratch("gguf");
  write_synthetic_bpe_tokenizer(dir / "tokenizer", kVocab, ChatFamily::kChatML);
  for (const auto& [label, format] : std::vector<std::pair<std::string, std::optional<QuantFormat>>>{
           {"f32", std::nullopt}, {"q8_0", QuantFormat::kQ8_0}, {"q4_0", QuantFormat::kQ4_0}}) {
    GgufExportOptions options;
    options.format = format;
    const fs::path file = dir / (label + ".gguf");
    write_gguf_model(file, config, tensors, nullptr, dir / "tokenizer" / "tokenizer.json", options);
    w.add("gguf", config.architecture_name() + "_" + label, read_file(file));
  }
  write_small_metaspace_tokenizer(dir / "metaspace");
  const fs::path file = dir / "metaspace.gguf";
  write_gguf_model(file, config, tensors, nullptr, dir / "metaspace" / "tokenizer.json", GgufExportOptions{});
  w.add("gguf", config.architecture_name() + "_metaspace_vocab", read_file(file));
}

void model_seeds(SeedWriter& w) {
  const Llama2cModel stories = read_llama2c_model(asset_path("models/stories260K/stories260K.bin"));
  const fuzz::SmallModel llama = fuzz::small_real_model(*stories.tensors, Architecture::kLlama);
  const fuzz::SmallModel qwen = fuzz::small_real_model(*stories.tensors, Architecture::kQwen2);
  w.add("llama2c_model", "small_real.bin", fuzz::llama2c_bytes(llama));

  SafetensorsWriter few;  // a handful of real tensors, with metadata, in three dtypes
  few.set_metadata("format", "pt");
  few.add("model.norm.weight", stories.tensors->get("model.norm.weight"));
  few.add("layers.0.attn_norm.bf16", stories.tensors->get("model.layers.0.input_layernorm.weight").to(at::kBFloat16));
  few.add("embed.corner.f16", stories.tensors->get("model.embed_tokens.weight").narrow(0, 0, 4).to(at::kHalf));
  w.add("safetensors", "real_three_dtypes.safetensors", few.to_bytes());
  SafetensorsWriter ints;
  ints.add("ids", at::arange(6, at::kLong).view({2, 3}));
  ints.add("mask", at::ones({3}, at::kBool));
  ints.add("bytes", at::arange(5, at::kByte));
  ints.add("empty", at::empty({0, 4}, at::kFloat));
  w.add("safetensors", "integer_dtypes.safetensors", ints.to_bytes());

  const std::pair<QuantFormat, EmbeddingStorage> formats[] = {{QuantFormat::kNF4, EmbeddingStorage::kInt8},
                                                              {QuantFormat::kInt4, EmbeddingStorage::kBF16},
                                                              {QuantFormat::kInt8, EmbeddingStorage::kInt4},
                                                              {QuantFormat::kNF4, EmbeddingStorage::kNF4},
                                                              {QuantFormat::kNF4_32, EmbeddingStorage::kNF4_32}};
  for (const auto& [format, embeddings] : formats) {
    for (const fuzz::SmallModel* m : {&llama, &qwen}) {
      const fs::path dir = w.scratch("quantized");
      write_quantized_model(dir, m->config, m->tensors, QuantizationInfo{format, embeddings, ""}, {});
      w.add("quantized_folder",
            m->config.architecture_name() + "_" + quant_format_name(format) + "_" + embedding_storage_name(embeddings),
            fuzz::folder_seed(dir));
    }
  }
  for (const fuzz::SmallModel* m : {&llama, &qwen}) {
    // A split table (every third row int8, the rest nf4-32): the row mask and both sets parsed.
    QuantizationInfo info{QuantFormat::kNF4_32, EmbeddingStorage::kNF4_32, ""};
    info.table_split = QuantFormat::kInt8;
    PreparedWeights prepared;
    for (const std::string prefix : {"model.embed_tokens", "lm_head"}) {
      if (!m->tensors.contains(prefix + ".weight")) continue;
      const at::Tensor table = m->tensors.get(prefix + ".weight").to(at::kFloat);
      prepared.split_tables[prefix] = split_table_from(table, at::arange(table.size(0), at::kLong).remainder(3) == 0,
                                                       QuantFormat::kInt8, QuantFormat::kNF4_32);
    }
    const fs::path dir = w.scratch("quantized");
    write_quantized_model(dir, m->config, m->tensors, info, {}, &prepared);
    w.add("quantized_folder", m->config.architecture_name() + "_nf4-32_split_table", fuzz::folder_seed(dir));
  }
  const fs::path dense = w.scratch("dense");
  fs::create_directories(dense);
  write_hf_files(dense, qwen.config, qwen.tensors, {}, at::kBFloat16);
  w.add("quantized_folder", "hf_qwen2_bf16", fuzz::folder_seed(dense));
  const fs::path sharded = w.scratch("sharded");
  fuzz::write_sharded_folder(llama, sharded);
  w.add("quantized_folder", "hf_llama_sharded", fuzz::folder_seed(sharded));
  gguf_seeds(w, llama, *stories.tensors);
  gguf_seeds(w, qwen, *stories.tensors);
}

std::vector<std::pair<std::string, AdapterConfig>> adapter_configs() {
  AdapterConfig lora;
  lora.rank = 2, lora.alpha = 4, lora.targets = {"q_proj", "v_proj"}, lora.seed = 1;
  AdapterConfig dora;
  dora.method = AdapterMethod::kDoRA, dora.rank = 1, dora.alpha = 2, dora.rslora = true;
  dora.targets = {"o_proj", "down_proj"}, dora.first_layer = 1, dora.last_layer = 2, dora.seed = 2;
  AdapterConfig all;
  all.rank = 1, all.alpha = 1.5, all.first_layer = 4, all.last_layer = 4, all.seed = 3;
  return {{"lora_qv", lora}, {"dora_rslora_layers_1_2", dora}, {"lora_all_last_layer", all}};
}

void adapter_seeds(SeedWriter& w) {
  const LoadedModel& base = fuzz::stories260k();
  for (const auto& [name, config] : adapter_configs()) {
    auto adapter = Adapter::create(*base.decoder, config);
    {
      at::NoGradGuard no_grad;  // B starts at zero; a seed with values exercises more of the loader
      for (auto& [key, t] : adapter->named_parameters())
        if (key.find("lora_B") != std::string::npos) t.fill_(0.01);
    }
    const Json summary = {{"steps", 3}, {"final_loss", 2.5}};
    w.add("adapter_bundle", name, adapter_to_bundle(*adapter, "stories260K", base.fingerprint, summary));
    const fs::path dir = w.scratch("adapter");
    save_peft_adapter(dir, *adapter, "stories260K", base.fingerprint, summary);
    const std::string config_json = read_file(dir / "adapter_config.json"), weights = read_file(dir / "adapter_model.safetensors");
    w.add("peft_adapter", name, joined({config_json, weights, read_file(dir / "hearth.json")}));
    w.add("peft_adapter", name + "_peft_only", joined({config_json, weights}));
  }
}

void tokenizer_seeds(SeedWriter& w) {
  const std::vector<std::string> messages = {"s:You are a helpful assistant.", "u:Tell me a story about a cat.",
                                             "a:<think>\nShort and kind.\n</think>\n\nOnce upon a time, a cat.",
                                             "u:  Thanks! \xf0\x9f\x98\x80  ", "a:You're welcome."};
  std::string conversation;
  for (const std::string& m : messages) conversation += kSep + m;
  for (const char* family : {"qwen3", "llama3"}) {
    const fs::path dir = asset_path(std::string("tokenizers/") + family);
    const Json config = fuzz::trimmed_tokenizer_config(read_json_file(dir / "tokenizer_config.json"));
    const Json tokenizer = fuzz::trimmed_tokenizer_json(read_json_file(dir / "tokenizer.json"), 200);
    w.add("tokenizer_json", std::string(family) + "_trimmed", joined({tokenizer.dump(), config.dump()}));
    w.add("tokenizer_json", std::string(family) + "_trimmed_no_config", tokenizer.dump(1));
    w.add("tokenizer_config", family, config.dump(1) + conversation);
  }
  for (ChatFamily family : {ChatFamily::kChatML, ChatFamily::kLlama3}) {
    const fs::path dir = w.scratch("synthetic_tokenizer");
    write_synthetic_bpe_tokenizer(dir, 300, family);
    const std::string name = family == ChatFamily::kChatML ? "synthetic_chatml" : "synthetic_llama3";
    w.add("tokenizer_json", name, joined({read_file(dir / "tokenizer.json"), read_file(dir / "tokenizer_config.json")}));
    w.add("tokenizer_config", name, read_file(dir / "tokenizer_config.json") + conversation);
  }
  const std::string tok512 = read_file(asset_path("models/stories260K/tok512.bin"));
  w.add("llama2c_tokenizer", "tok512.bin", tok512);
  w.add("llama2c_tokenizer", "tok512_first_300.bin", fuzz::trimmed_llama2c_tokenizer(tok512, 300));
}

// Real questions and answers from GSM8K, as prompt/completion lines and as chats.
void jsonl_seeds(SeedWriter& w) {
  std::ifstream gsm8k(asset_path("data/gsm8k/train.jsonl"));
  std::string line, completion_lines, chat_lines;
  for (int i = 0; i < 3 && std::getline(gsm8k, line); ++i) {
    const Json j = parse_json(line, "gsm8k");
    completion_lines += Json{{"prompt", j["question"]}, {"completion", j["answer"]}}.dump() + "\n";
    chat_lines += Json{{"messages", {{{"role", "user"}, {"content", j["question"]}}, {{"role", "assistant"}, {"content", j["answer"]}}}}}.dump() + "\n";
  }
  w.add("training_jsonl", "gsm8k_prompt_completion.jsonl", completion_lines);
  w.add("training_jsonl", "gsm8k_chat.jsonl", chat_lines);
  w.add("training_jsonl", "gsm8k_mixed_crlf.jsonl", completion_lines.substr(0, completion_lines.find('\n')) + "\r\n\r\n" + chat_lines);

  // Sealed records: the same examples stored as the database stores them, and the other sealed kinds.
  const std::string example = storage::canonical_example_json(storage::parse_example_line(chat_lines.substr(0, chat_lines.find('\n')), "seed"));
  auto tagged = [](fuzz::SealedInput kind, const std::string& bytes) { return std::string(1, static_cast<char>(kind)) + bytes; };
  w.add("sealed_record", "example_record", tagged(fuzz::SealedInput::kRecord, privacy::seal(fuzz::test_key(), example, fuzz::kExampleRow)));
  w.add("sealed_record", "example_plaintext", tagged(fuzz::SealedInput::kPlaintext, example));
  const fs::path sealed = w.scratch("sealed_file");
  privacy::seal_file(sealed, example, fuzz::test_key(), fuzz::kAdapterFile);
  w.add("sealed_record", "sealed_file", tagged(fuzz::SealedInput::kFile, read_file(sealed)));
  w.add("sealed_record", "wrapped_key",
        tagged(fuzz::SealedInput::kWrappedKey, privacy::wrap_data_key(fuzz::test_key(), privacy::SecretKey::random(), fuzz::kKeyUser)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus folder>\n", argv[0]);
    return 2;
  }
  fuzz::init();
  try {
    SeedWriter w(argv[1]);
    model_seeds(w);
    adapter_seeds(w);
    tokenizer_seeds(w);
    jsonl_seeds(w);
    fs::remove_all(fs::path(argv[1]) / ".scratch");
    for (const auto& [target, count] : w.counts()) std::printf("%-20s %d seeds\n", target.c_str(), count);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
