#include "inference/gguf_metaspace_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "inference/gguf_tokenizer.h"
#include "inference/tokenizer/bpe_tokenizer.h"
#include "inference/tokenizer/utf8.h"

namespace hearth {
namespace {

constexpr const char* kSentencePieceSpace = "\xE2\x96\x81";  // U+2581 '▁'

bool is_byte_piece(const std::string& piece) {
  return piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>' && std::isxdigit(piece[3]) &&
         std::isxdigit(piece[4]);
}

std::vector<float> token_scores(const GgufFile& f, size_t n) {
  std::vector<float> scores(n, 0.0f);
  if (!f.find("tokenizer.ggml.scores")) return scores;
  const GgufValue& s = f.get_array("tokenizer.ggml.scores", GgufValueType::kFloat32);
  require(s.count == n, ErrorCode::kCorruptFile, f.name() + ": tokenizer.ggml.scores and tokens differ in count");
  std::memcpy(scores.data(), s.data, n * sizeof(float));
  for (size_t id = 0; id < n; ++id) {
    // A NaN would break the ordering of merges by score.
    require(std::isfinite(scores[id]), ErrorCode::kCorruptFile, f.name() + ": token " + std::to_string(id) + " has a non-finite score");
  }
  return scores;
}

bool mergeable(int32_t type) { return type == kGgufNormal || type == kGgufUserDefined; }

// Deriving merges looks up both halves at every cut of a piece: quadratic in its length, so a
// hostile file of long pieces would take hours. SentencePiece trains pieces of at most 16
// characters by default; Gemma's longest is 93 bytes.
constexpr size_t kMaxPieceBytes = 512;

// Every split of a mergeable piece into two mergeable pieces, best-scored piece first (then by
// id and cut, so equal scores rank in a fixed order), as [left, right] merges.
Json merges_from_scores(const GgufValue& tokens, const std::vector<float>& scores, const std::vector<int32_t>& types,
                        const std::string& what) {
  std::unordered_map<std::string_view, int32_t> pieces;
  for (size_t id = 0; id < tokens.count; ++id) {
    if (mergeable(types[id])) pieces.emplace(tokens.strings[id], static_cast<int32_t>(id));
  }
  struct Split {
    float score;
    int32_t id;
    uint32_t cut;
  };
  std::vector<Split> splits;
  for (size_t id = 0; id < tokens.count; ++id) {
    const std::string_view text = tokens.strings[id];
    if (!mergeable(types[id]) || text.empty()) continue;
    require(text.size() <= kMaxPieceBytes, ErrorCode::kCorruptFile,
            what + ": token " + std::to_string(id) + " is " + std::to_string(text.size()) + " bytes long; SentencePiece pieces are at most " +
                std::to_string(kMaxPieceBytes));
    for (size_t cut = tokenizer::utf8_sequence_length(text[0]); cut < text.size();
         cut += tokenizer::utf8_sequence_length(text[cut])) {
      if (pieces.count(text.substr(0, cut)) && pieces.count(text.substr(cut))) {
        splits.push_back({scores[id], static_cast<int32_t>(id), static_cast<uint32_t>(cut)});
      }
    }
  }
  std::sort(splits.begin(), splits.end(), [](const Split& a, const Split& b) {
    if (a.score != b.score) return a.score > b.score;
    return a.id != b.id ? a.id < b.id : a.cut < b.cut;
  });
  Json merges = Json::array();
  merges.get_ref<Json::array_t&>().reserve(splits.size());
  for (const Split& s : splits) {
    const std::string_view text = tokens.strings[s.id];
    merges.push_back(Json::array({std::string(text.substr(0, s.cut)), std::string(text.substr(s.cut))}));
  }
  return merges;
}

std::string token_at(const GgufValue& tokens, int64_t id, const std::string& what, const char* key) {
  require(id >= 0 && static_cast<uint64_t>(id) < tokens.count, ErrorCode::kCorruptFile,
          what + ": " + key + " " + std::to_string(id) + " is not a token id");
  return std::string(tokens.strings[id]);
}

// tokenizer_config.json's BOS, EOS and chat template from the metadata.
Json config_from_metadata(const GgufFile& f, const GgufValue& tokens) {
  Json config = Json::object();
  if (auto bos = f.find_int("tokenizer.ggml.bos_token_id"); bos && f.find_bool("tokenizer.ggml.add_bos_token").value_or(true)) {
    config["bos_token"] = token_at(tokens, *bos, f.name(), "bos_token_id");
  }
  if (auto eos = f.find_int("tokenizer.ggml.eos_token_id")) config["eos_token"] = token_at(tokens, *eos, f.name(), "eos_token_id");
  if (auto tmpl = f.find_string("tokenizer.chat_template")) config["chat_template"] = *tmpl;
  return config;
}

}  // namespace

bool is_metaspace_tokenizer_json(const Json& tokenizer_json) {
  const Json normalizer = tokenizer_json.value("normalizer", Json());
  return normalizer.is_object() && normalizer.value("type", "") == "Replace" &&
         normalizer.value("pattern", Json()).is_object() && normalizer["pattern"].value("String", "") == " " &&
         normalizer.value("content", "") == kSentencePieceSpace;
}

std::unique_ptr<Tokenizer> load_gguf_metaspace_tokenizer(const GgufFile& f) {
  const std::string& what = f.name();
  const GgufValue& tokens = f.get_array("tokenizer.ggml.tokens", GgufValueType::kString);
  const std::vector<int32_t> types = gguf_token_types(f, tokens.count);
  const std::vector<float> scores = token_scores(f, tokens.count);
  Json vocab = Json::object(), added = Json::array();
  for (size_t id = 0; id < tokens.count; ++id) {
    const std::string text(tokens.strings[id]);
    if (types[id] == kGgufUnused || text.empty()) continue;
    require(!vocab.contains(text), ErrorCode::kCorruptFile, what + ": token \"" + text + "\" appears twice");
    vocab[text] = id;
    // Control and user-defined tokens are matched whole before merging, as llama.cpp and
    // Hugging Face's added tokens are.
    if (types[id] == kGgufControl || types[id] == kGgufUserDefined) {
      added.push_back({{"id", id}, {"content", text}, {"special", types[id] == kGgufControl}});
    }
  }
  Json model = {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", merges_from_scores(tokens, scores, types, what)},
                {"byte_fallback", true}, {"fuse_unk", true}};
  if (auto unk = f.find_int("tokenizer.ggml.unknown_token_id")) model["unk_token"] = token_at(tokens, *unk, what, "unknown_token_id");
  const Json tokenizer = {{"added_tokens", std::move(added)},
                          {"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSentencePieceSpace}}},
                          {"pre_tokenizer", nullptr},
                          {"model", std::move(model)}};
  return std::make_unique<BpeTokenizer>(tokenizer, config_from_metadata(f, tokens), what + " (GGUF tokenizer)");
}

void write_gguf_metaspace_tokenizer(GgufWriter& out, const Json& j, const Json& config, int64_t vocab_size,
                                    const std::string& what) {
  std::vector<std::string> tokens(vocab_size);
  std::vector<int32_t> types(vocab_size, kGgufUnused);
  std::unordered_map<std::string, int64_t> ids;
  const auto put = [&](int64_t id, const std::string& text, int32_t type) {
    require(id >= 0 && id < vocab_size, ErrorCode::kInvalidArgument,
            what + ": token id " + std::to_string(id) + " is outside the model's " + std::to_string(vocab_size) + " embeddings");
    tokens[id] = text;
    types[id] = type;
    ids[text] = id;
  };
  const Json& model = j.at("model");
  for (const auto& item : model.at("vocab").items()) put(item.value().get<int64_t>(), item.key(), is_byte_piece(item.key()) ? kGgufByte : kGgufNormal);
  for (const Json& t : j.value("added_tokens", Json::array())) {
    // Gemma 3's <image_soft_token> (262144) is past a text model's 262,144 embeddings: no input
    // of the model can hold it, so it is left out (a vocabulary entry that far is still an error).
    if (t.at("id").get<int64_t>() >= vocab_size) continue;
    put(t.at("id").get<int64_t>(), t.at("content").get<std::string>(), t.value("special", false) ? kGgufControl : kGgufUserDefined);
  }
  const auto id_of = [&](const std::string& text) -> int64_t {
    const auto it = ids.find(text);
    return it == ids.end() ? -1 : it->second;
  };
  const int64_t unk = model.value("unk_token", Json()).is_string() ? id_of(model["unk_token"].get<std::string>()) : -1;
  if (unk >= 0) types[unk] = kGgufUnknown;
  // Minus the rank of the first merge making the piece; pieces no merge makes score below all.
  const Json& merge_list = model.at("merges");
  std::vector<float> scores(vocab_size, -static_cast<float>(merge_list.size() + 1));
  std::vector<bool> made(vocab_size, false);
  for (size_t rank = 0; rank < merge_list.size(); ++rank) {
    const Json& m = merge_list[rank];
    std::string joined;
    if (m.is_array() && m.size() == 2) {
      joined = m[0].get<std::string>() + m[1].get<std::string>();
    } else {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      require(space != std::string::npos, ErrorCode::kCorruptFile, what + ": merge \"" + s + "\" has no space");
      joined = s.substr(0, space) + s.substr(space + 1);
    }
    const int64_t id = id_of(joined);
    require(id >= 0, ErrorCode::kCorruptFile, what + ": merge " + std::to_string(rank) + " makes a token not in the vocabulary");
    if (!made[id]) scores[id] = -static_cast<float>(rank), made[id] = true;
  }
  for (int64_t id = 0; id < vocab_size; ++id) {
    if (types[id] == kGgufUnused) tokens[id] = "[PAD" + std::to_string(id) + "]";
  }
  const auto config_id = [&](const char* key) -> int64_t {
    if (!config.is_object() || !config.contains(key) || config[key].is_null()) return -1;
    return id_of(config[key].is_string() ? config[key].get<std::string>() : config[key].value("content", ""));
  };
  out.set_string("tokenizer.ggml.model", "llama");
  out.set_string("tokenizer.ggml.pre", "default");
  out.set_strings("tokenizer.ggml.tokens", tokens);
  out.set_float32s("tokenizer.ggml.scores", scores);
  out.set_int32s("tokenizer.ggml.token_type", types);
  if (unk >= 0) out.set_uint32("tokenizer.ggml.unknown_token_id", static_cast<uint32_t>(unk));
  const int64_t bos = config_id("bos_token"), eos = config_id("eos_token"), pad = config_id("pad_token");
  if (bos >= 0) out.set_uint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(bos));
  if (eos >= 0) out.set_uint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(eos));
  if (pad >= 0) out.set_uint32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(pad));
  out.set_bool("tokenizer.ggml.add_bos_token", bos >= 0 && config.value("add_bos_token", true));
  out.set_bool("tokenizer.ggml.add_eos_token", false);
  out.set_bool("tokenizer.ggml.add_space_prefix", false);
  if (config.is_object() && config.contains("chat_template") && config["chat_template"].is_string()) {
    out.set_string("tokenizer.chat_template", config["chat_template"].get<std::string>());
  }
}

}  // namespace hearth
