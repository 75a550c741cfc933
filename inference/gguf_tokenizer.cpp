#include "inference/gguf_tokenizer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/json.h"
#include "inference/gguf_metaspace_tokenizer.h"
#include "inference/tokenizer/bpe_tokenizer.h"
#include "inference/tokenizer/llama2c_tokenizer.h"

namespace hearth {
namespace {

// Split patterns of the pre-tokenizers Hearth implements, as their tokenizer.json files write them.
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// GPT-4o's o200k (Phi-4-mini's vocabulary extends it), split with behavior "Removed", inverted.
const char* const kGpt4oPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kSpaceMark = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

Json split_step(const char* pattern) {
  return {{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}};
}
Json byte_level_step(bool use_regex) {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
}

// The tokenizer.json pre-tokenizer (and NFC, ignore_merges) that tokenizer.ggml.pre names.
struct PreTokenizer {
  Json steps;
  bool nfc = false;
  bool ignore_merges = false;
};

PreTokenizer pre_tokenizer(const std::string& pre, const std::string& what) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    return {Json::array({split_step(kLlama3Pattern), byte_level_step(false)}), false, true};
  }
  if (pre == "qwen2") return {Json::array({split_step(kQwen2Pattern), byte_level_step(false)}), true, false};
  if (pre == "gpt-4o") {
    Json split = split_step(kGpt4oPattern);
    split["behavior"] = "Removed";
    split["invert"] = true;
    return {Json::array({split, byte_level_step(false)}), false, false};
  }
  if (pre == "smollm") return {Json::array({split_step(R"(\p{N})"), byte_level_step(true)}), false, false};
  if (pre == "gpt-2" || pre == "gpt2" || pre == "default" || pre.empty()) return {Json::array({byte_level_step(true)}), false, false};
  fail(ErrorCode::kUnsupported, what + ": pre-tokenizer \"" + pre + "\" is not supported (llama-bpe, qwen2, gpt-4o, smollm, gpt-2)");
}

std::string token_text(const GgufValue& tokens, int64_t id, const std::string& what, const char* key) {
  require(id >= 0 && static_cast<uint64_t>(id) < tokens.count, ErrorCode::kCorruptFile,
          what + ": " + key + " " + std::to_string(id) + " is not a token id");
  return std::string(tokens.strings[id]);
}

std::unique_ptr<Tokenizer> load_bpe(const GgufFile& f) {
  const std::string& what = f.name();
  const GgufValue& tokens = f.get_array("tokenizer.ggml.tokens", GgufValueType::kString);
  const std::vector<int32_t> types = gguf_token_types(f, tokens.count);
  const PreTokenizer pre = pre_tokenizer(f.find_string("tokenizer.ggml.pre").value_or(""), what);
  Json vocab = Json::object(), added = Json::array();
  for (size_t id = 0; id < tokens.count; ++id) {
    const std::string text(tokens.strings[id]);
    if (types[id] == kGgufNormal || types[id] == kGgufByte) {
      require(!vocab.contains(text), ErrorCode::kCorruptFile, what + ": token \"" + text + "\" appears twice");
      vocab[text] = id;
    } else if (types[id] == kGgufControl || types[id] == kGgufUserDefined) {
      added.push_back({{"id", id}, {"content", text}, {"special", types[id] == kGgufControl}});
    }
  }
  Json merges = Json::array();
  if (f.find("tokenizer.ggml.merges")) {
    for (std::string_view m : f.get_array("tokenizer.ggml.merges", GgufValueType::kString).strings) merges.push_back(std::string(m));
  }
  Json model = {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}, {"ignore_merges", pre.ignore_merges}};
  Json tokenizer = {{"added_tokens", std::move(added)},
                    {"normalizer", pre.nfc ? Json{{"type", "NFC"}} : Json()},
                    {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pre.steps}}},
                    {"model", std::move(model)}};
  Json config = Json::object();
  if (auto bos = f.find_int("tokenizer.ggml.bos_token_id"); bos && f.find_bool("tokenizer.ggml.add_bos_token").value_or(false)) {
    config["bos_token"] = token_text(tokens, *bos, what, "bos_token_id");
  }
  if (auto eos = f.find_int("tokenizer.ggml.eos_token_id")) config["eos_token"] = token_text(tokens, *eos, what, "eos_token_id");
  if (auto tmpl = f.find_string("tokenizer.chat_template")) config["chat_template"] = *tmpl;
  return std::make_unique<BpeTokenizer>(tokenizer, config, what + " (GGUF tokenizer)");
}

// SentencePiece's visible space back to ' ', as llama2.c tokenizer files store pieces.
std::string unescape_spaces(std::string_view piece) {
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    if (piece.compare(i, 3, kSpaceMark) == 0) {
      out += ' ';
      i += 3;
    } else {
      out += piece[i++];
    }
  }
  return out;
}

std::string escape_spaces(const std::string& piece) {
  std::string out;
  for (char c : piece) out += c == ' ' ? std::string(kSpaceMark) : std::string(1, c);
  return out;
}

std::unique_ptr<Tokenizer> load_spm(const GgufFile& f) {
  const std::string& what = f.name();
  // Gemma's vocabulary: no dummy prefix, its own BOS / EOS ids and specials.
  if (!f.find_bool("tokenizer.ggml.add_space_prefix").value_or(true)) return load_gguf_metaspace_tokenizer(f);
  const GgufValue& tokens = f.get_array("tokenizer.ggml.tokens", GgufValueType::kString);
  std::vector<float> scores(tokens.count, 0.0f);
  if (f.find("tokenizer.ggml.scores")) {
    const GgufValue& s = f.get_array("tokenizer.ggml.scores", GgufValueType::kFloat32);
    require(s.count == tokens.count, ErrorCode::kCorruptFile, what + ": tokenizer.ggml.scores and tokens differ in count");
    std::memcpy(scores.data(), s.data, s.count * sizeof(float));
  }
  require(f.find_int("tokenizer.ggml.bos_token_id").value_or(1) == Llama2cTokenizer::kBos &&
              f.find_int("tokenizer.ggml.eos_token_id").value_or(2) == Llama2cTokenizer::kEos &&
              f.find_bool("tokenizer.ggml.add_space_prefix").value_or(true),
          ErrorCode::kUnsupported,
          what + ": Hearth reads SentencePiece vocabularies laid out as llama2.c's (BOS 1, EOS 2, bytes at 3..258, a dummy-prefix "
                 "space) or without a dummy-prefix space (Gemma's); pass the model's tokenizer.json with --tokenizer");
  std::vector<std::string> pieces;
  pieces.reserve(tokens.count);
  for (std::string_view t : tokens.strings) pieces.push_back(unescape_spaces(t));
  return std::make_unique<Llama2cTokenizer>(std::move(pieces), std::move(scores), what + " (GGUF tokenizer)");
}

// tokenizer.json -> tokenizer.ggml.* ("gpt2").
void write_bpe(GgufWriter& out, const std::filesystem::path& file, const Json& j, int64_t vocab_size) {
  const std::string what = file.string();
  const auto config_path = file.parent_path() / "tokenizer_config.json";
  const Json config = std::filesystem::exists(config_path) ? read_json_file(config_path) : Json::object();
  std::vector<std::string> tokens(vocab_size);
  std::vector<int32_t> types(vocab_size, kGgufUnused);
  const auto put = [&](int64_t id, std::string text, int32_t type) {
    require(id >= 0 && id < vocab_size, ErrorCode::kInvalidArgument,
            what + ": token id " + std::to_string(id) + " is outside the model's " + std::to_string(vocab_size) + " embeddings");
    tokens[id] = std::move(text);
    types[id] = type;
  };
  for (const auto& item : j.at("model").at("vocab").items()) put(item.value().get<int64_t>(), item.key(), kGgufNormal);
  for (const Json& t : j.value("added_tokens", Json::array())) {
    put(t.at("id").get<int64_t>(), t.at("content").get<std::string>(), t.value("special", false) ? kGgufControl : kGgufUserDefined);
  }
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (types[id] == kGgufUnused) tokens[id] = "[PAD" + std::to_string(id) + "]";
  }
  std::vector<std::string> merges;
  for (const Json& m : j.at("model").at("merges")) {
    merges.push_back(m.is_string() ? m.get<std::string>() : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
  }
  // The pre-tokenizer's name, recognised from its split pattern.
  const std::string dump = j.value("pre_tokenizer", Json()).dump();
  std::string pre;
  if (dump.find(Json(kLlama3Pattern).dump()) != std::string::npos) pre = "llama-bpe";
  else if (dump.find(Json(kQwen2Pattern).dump()) != std::string::npos) pre = "qwen2";
  else if (dump.find(Json(kGpt4oPattern).dump()) != std::string::npos) pre = "gpt-4o";
  else if (dump.find("\"Split\"") == std::string::npos && dump.find("\"Digits\"") == std::string::npos) pre = "gpt-2";
  else if (dump.find("\"Digits\"") != std::string::npos) pre = "smollm";
  else fail(ErrorCode::kUnsupported, what + ": its pre-tokenizer has no GGUF name Hearth knows (llama-bpe, qwen2, gpt-4o, smollm, gpt-2)");
  out.set_string("tokenizer.ggml.model", "gpt2");
  out.set_string("tokenizer.ggml.pre", pre);
  out.set_strings("tokenizer.ggml.tokens", tokens);
  out.set_int32s("tokenizer.ggml.token_type", types);
  out.set_strings("tokenizer.ggml.merges", merges);
  const auto id_of = [&](const char* key) -> int64_t {
    if (!config.contains(key) || config[key].is_null()) return -1;
    const std::string text = config[key].is_string() ? config[key].get<std::string>() : config[key].value("content", "");
    const auto it = std::find(tokens.begin(), tokens.end(), text);
    return it == tokens.end() ? -1 : it - tokens.begin();
  };
  const int64_t bos = id_of("bos_token"), eos = id_of("eos_token");
  if (bos >= 0) out.set_uint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
  if (eos >= 0) out.set_uint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
  out.set_bool("tokenizer.ggml.add_bos_token", bos >= 0);
  if (config.contains("chat_template") && config["chat_template"].is_string()) {
    out.set_string("tokenizer.chat_template", config["chat_template"].get<std::string>());
  }
}

// A llama2.c tokenizer -> tokenizer.ggml.* ("llama"), with the token types llama.cpp gives it.
void write_spm(GgufWriter& out, const std::filesystem::path& file, int64_t vocab_size) {
  auto tok = Llama2cTokenizer::load(file);
  require(tok->vocab_size() <= vocab_size, ErrorCode::kInvalidArgument, file.string() + " has more tokens than the model");
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (id >= tok->vocab_size()) {
      tokens.push_back("[PAD" + std::to_string(id) + "]");
      scores.push_back(0.0f);
      types.push_back(kGgufUnused);
      continue;
    }
    int32_t type = kGgufNormal;
    std::string text = escape_spaces(tok->piece(id));
    if (id == 0) type = kGgufUnknown, text = "<unk>";
    else if (id == Llama2cTokenizer::kBos) type = kGgufControl, text = "<s>";
    else if (id == Llama2cTokenizer::kEos) type = kGgufControl, text = "</s>";
    else if (id >= Llama2cTokenizer::kFirstByteToken && id < Llama2cTokenizer::kFirstByteToken + 256) type = kGgufByte;
    tokens.push_back(text);
    scores.push_back(tok->score(id));
    types.push_back(type);
  }
  out.set_string("tokenizer.ggml.model", "llama");
  out.set_strings("tokenizer.ggml.tokens", tokens);
  out.set_float32s("tokenizer.ggml.scores", scores);
  out.set_int32s("tokenizer.ggml.token_type", types);
  out.set_uint32("tokenizer.ggml.unknown_token_id", 0);
  out.set_uint32("tokenizer.ggml.bos_token_id", Llama2cTokenizer::kBos);
  out.set_uint32("tokenizer.ggml.eos_token_id", Llama2cTokenizer::kEos);
  out.set_bool("tokenizer.ggml.add_bos_token", true);
  out.set_bool("tokenizer.ggml.add_space_prefix", true);
}

}  // namespace

std::vector<int32_t> gguf_token_types(const GgufFile& f, size_t n) {
  std::vector<int32_t> types(n, kGgufNormal);
  if (const GgufValue* v = f.find("tokenizer.ggml.token_type")) {
    const GgufValue& arr = f.get_array("tokenizer.ggml.token_type", GgufValueType::kInt32);
    require(arr.count == n, ErrorCode::kCorruptFile, f.name() + ": tokenizer.ggml.token_type has " + std::to_string(arr.count) +
                                                         " entries for " + std::to_string(n) + " tokens");
    std::memcpy(types.data(), v->data, n * sizeof(int32_t));
  }
  return types;
}

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file) {
  const auto model = file.find_string("tokenizer.ggml.model");
  require(model.has_value(), ErrorCode::kCorruptFile,
          file.name() + " has no tokenizer (tokenizer.ggml.model); name one with --tokenizer");
  if (*model == "gpt2") return load_bpe(file);
  if (*model == "llama") return load_spm(file);
  fail(ErrorCode::kUnsupported, file.name() + ": tokenizer model \"" + *model + "\" is not supported (gpt2, llama)");
}

void write_gguf_tokenizer(GgufWriter& out, const GgufFile* source, const std::filesystem::path& tokenizer_file,
                          int64_t vocab_size) {
  if (source != nullptr && tokenizer_file.empty()) {
    for (const auto& [key, value] : source->metadata()) {
      if (key.rfind("tokenizer.", 0) == 0) out.copy_value(key, value);
    }
    return;
  }
  require(!tokenizer_file.empty(), ErrorCode::kInvalidArgument, "writing a GGUF model needs its tokenizer");
  if (tokenizer_file.extension() == ".json") {
    const Json j = read_json_file(tokenizer_file);
    if (!is_metaspace_tokenizer_json(j)) return write_bpe(out, tokenizer_file, j, vocab_size);
    const auto config_path = tokenizer_file.parent_path() / "tokenizer_config.json";
    const Json config = std::filesystem::exists(config_path) ? read_json_file(config_path) : Json::object();
    return write_gguf_metaspace_tokenizer(out, j, config, vocab_size, tokenizer_file.string());
  }
  write_spm(out, tokenizer_file, vocab_size);
}

}  // namespace hearth
