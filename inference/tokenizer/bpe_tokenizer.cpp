#include "inference/tokenizer/bpe_tokenizer.h"

#include <algorithm>

#include "core/log.h"
#include "inference/tokenizer/byte_level.h"
#include "inference/tokenizer/unicode_nfc.h"
#include "inference/tokenizer/utf8.h"

namespace hearth {
namespace {

using tokenizer::AddedToken;
using tokenizer::RegexSplitter;

constexpr const char* kMetaspace = "\xE2\x96\x81";  // U+2581 '▁', SentencePiece's space

// The ByteLevel pre-tokenizer's own split pattern (GPT-2), used when its use_regex is set.
const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A field this loader does not know may change the meaning of the file: refuse it.
void reject_unknown_fields(const Json& j, std::initializer_list<std::string_view> allowed, const std::string& what) {
  if (!j.is_object()) fail(ErrorCode::kCorruptFile, what + ": expected a JSON object, got " + j.type_name());
  for (const auto& item : j.items()) {
    if (std::find(allowed.begin(), allowed.end(), item.key()) == allowed.end()) {
      fail(ErrorCode::kCorruptFile, what + ": unknown field \"" + item.key() + "\"");
    }
  }
}

// A special token in tokenizer_config.json: a string, an object with "content", or null.
std::string config_token(const Json& config, const std::string& key, const std::string& what) {
  if (!config.is_object() || !config.contains(key) || config.at(key).is_null()) return "";
  const Json& value = config.at(key);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object()) return json_get<std::string>(value, "content", what + " " + key);
  fail(ErrorCode::kCorruptFile, what + ": field \"" + key + "\" has the wrong type (" + value.type_name() + ")");
}

std::string config_chat_template(const Json& config, const std::string& what) {
  if (!config.is_object() || !config.contains("chat_template") || config.at("chat_template").is_null()) return "";
  const Json& value = config.at("chat_template");
  if (value.is_string()) return value.get<std::string>();
  // Newer configs list named templates; the one named "default" is the chat template.
  if (value.is_array()) {
    for (const Json& entry : value) {
      if (json_get<std::string>(entry, "name", what + " chat_template") == "default") {
        return json_get<std::string>(entry, "template", what + " chat_template");
      }
    }
    return "";
  }
  fail(ErrorCode::kCorruptFile, what + ": field \"chat_template\" has the wrong type (" + value.type_name() + ")");
}

}  // namespace

BpeTokenizer::BpeTokenizer(const Json& tokenizer_json, const Json& config, const std::string& what) {
  reject_unknown_fields(tokenizer_json,
                        {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                         "post_processor", "decoder", "model"},
                        what);
  read_normalizer(tokenizer_json.value("normalizer", Json()), what);
  read_pre_tokenizer(tokenizer_json.value("pre_tokenizer", Json()), what);
  if (!tokenizer_json.contains("model")) fail(ErrorCode::kCorruptFile, what + ": missing field \"model\"");
  const Json& added = tokenizer_json.contains("added_tokens") ? tokenizer_json.at("added_tokens") : Json::array();
  read_model(tokenizer_json.at("model"), added.is_array() ? added.size() : 0, what);
  read_added_tokens(tokenizer_json.value("added_tokens", Json::array()), what);
  read_config(config, what);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::load(const std::filesystem::path& tokenizer_json) {
  const Json json = read_json_file(tokenizer_json);
  const auto config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
  const Json config = std::filesystem::exists(config_path) ? read_json_file(config_path) : Json();
  return std::make_unique<BpeTokenizer>(json, config, tokenizer_json.string());
}

void BpeTokenizer::read_normalizer(const Json& normalizer, const std::string& what) {
  if (normalizer.is_null()) return;
  const std::string where = what + " normalizer";
  const std::string type = json_get<std::string>(normalizer, "type", where);
  if (type == "NFC") {
    nfc_ = true;
    return;
  }
  // SentencePiece's whitespace: every space becomes '▁' (Gemma 3).
  const bool metaspace = type == "Replace" && json_get<Json>(normalizer, "pattern", where).value("String", "") == " " &&
                         json_get<std::string>(normalizer, "content", where) == kMetaspace;
  require(metaspace, ErrorCode::kUnsupported,
          what + ": normalizer \"" + type + "\" is not supported (NFC, or Replace of spaces by \"\u2581\")");
  metaspace_ = true;
}

void BpeTokenizer::read_pre_tokenizer(const Json& pre_tokenizer, const std::string& what) {
  const std::string where = what + " pre_tokenizer";
  if (metaspace_) {
    // Gemma's Split on " " runs after the normalizer has replaced every space: it splits nothing.
    const bool no_op = pre_tokenizer.is_null() || (json_get<std::string>(pre_tokenizer, "type", where) == "Split" &&
                                                   json_get<Json>(pre_tokenizer, "pattern", where).value("String", "") == " ");
    require(no_op, ErrorCode::kUnsupported, where + ": a SentencePiece-style BPE supports no pre-tokenizer but a Split on spaces");
    return;
  }
  if (pre_tokenizer.is_null()) fail(ErrorCode::kUnsupported, where + ": a byte-level BPE needs a ByteLevel pre-tokenizer");
  std::vector<Json> steps;
  const std::string type = json_get<std::string>(pre_tokenizer, "type", where);
  if (type == "Sequence") {
    steps = json_get<std::vector<Json>>(pre_tokenizer, "pretokenizers", where);
  } else {
    steps.push_back(pre_tokenizer);
  }
  bool byte_level = false;
  for (const Json& step : steps) {
    const std::string step_type = json_get<std::string>(step, "type", where);
    if (step_type == "Split") {
      const Json pattern = json_get<Json>(step, "pattern", where);
      const std::string regex = json_get<std::string>(pattern, "Regex", where + " Split pattern");
      // "Isolated": matches and the text between them are pre-tokens. "Removed" with invert: the
      // matches are kept and what lies between them is dropped (GPT-4o's o200k, whose pattern
      // matches all text, so nothing is dropped in practice).
      const std::string behavior = json_get<std::string>(step, "behavior", where);
      const bool invert = json_get_or<bool>(step, "invert", false, where);
      const bool isolated = behavior == "Isolated" && !invert, keep_matches = behavior == "Removed" && invert;
      require(isolated || keep_matches, ErrorCode::kUnsupported,
              where + ": only Split with behavior \"Isolated\" (invert false) or \"Removed\" (invert true) is supported");
      splitters_.push_back(std::make_unique<RegexSplitter>(regex, where, /*keep_gaps=*/isolated));
    } else if (step_type == "ByteLevel") {
      byte_level = true;
      add_prefix_space_ = json_get_or<bool>(step, "add_prefix_space", false, where);
      if (json_get_or<bool>(step, "use_regex", true, where)) {
        splitters_.push_back(std::make_unique<RegexSplitter>(kGpt2Pattern, where));
      }
    } else {
      fail(ErrorCode::kUnsupported, where + ": pre-tokenizer \"" + step_type + "\" is not supported");
    }
  }
  require(byte_level, ErrorCode::kUnsupported, where + ": only byte-level BPE tokenizers are supported");
}

void BpeTokenizer::read_model(const Json& model, size_t added_tokens, const std::string& what) {
  const std::string where = what + " model";
  reject_unknown_fields(model,
                        {"type", "dropout", "unk_token", "continuing_subword_prefix", "end_of_word_suffix", "fuse_unk",
                         "byte_fallback", "ignore_merges", "vocab", "merges"},
                        where);
  require(json_get<std::string>(model, "type", where) == "BPE", ErrorCode::kUnsupported,
          where + ": only BPE models are supported");
  require(json_get_or<std::string>(model, "continuing_subword_prefix", "", where).empty() &&
              json_get_or<std::string>(model, "end_of_word_suffix", "", where).empty() &&
              model.value("dropout", Json()).is_null(),
          ErrorCode::kUnsupported, where + ": subword prefixes/suffixes and dropout are not supported");
  // Byte fallback is what a SentencePiece-style vocabulary does for characters it lacks; a
  // byte-level one has every byte.
  require(metaspace_ || !json_get_or<bool>(model, "byte_fallback", false, where), ErrorCode::kUnsupported,
          where + ": byte fallback is supported for SentencePiece-style (metaspace) tokenizers only");

  // References, not json_get copies: the vocabulary and merges are hundreds of thousands of entries.
  if (!model.contains("vocab") || !model.contains("merges")) {
    fail(ErrorCode::kCorruptFile, where + ": missing field \"vocab\" or \"merges\"");
  }
  const Json& vocab = model.at("vocab");
  if (!vocab.is_object()) fail(ErrorCode::kCorruptFile, where + ": \"vocab\" must be an object of token -> id");
  // Ids are nearly dense: added tokens fill most gaps, and a few ids may stay unassigned (GPT-4o's
  // o200k reserves 200000..200017). A much larger id would size the token table (one string per
  // id) by the id, not by the file, so a few bytes could claim gigabytes: 1,024 spare ids at most.
  constexpr size_t kSpareIds = 1024;
  const size_t id_limit = std::min<size_t>(vocab.size() + added_tokens + kSpareIds, size_t(1) << 24);
  std::vector<std::string> tokens;
  for (const auto& item : vocab.items()) {
    if (!item.value().is_number_integer() || item.value().get<int64_t>() < 0) {
      fail(ErrorCode::kCorruptFile, where + ": vocab entry \"" + item.key() + "\" has no valid id");
    }
    const auto id = item.value().get<size_t>();
    if (id >= id_limit) {
      fail(ErrorCode::kCorruptFile, where + ": vocab entry \"" + item.key() + "\" has id " + std::to_string(id) +
                                        ", but the file holds only " + std::to_string(vocab.size() + added_tokens) +
                                        " tokens (ids from " + std::to_string(id_limit) + " are refused)");
    }
    auto bytes = token_text(item.key());
    if (!bytes) fail(ErrorCode::kCorruptFile, where + ": vocab entry \"" + item.key() + "\" is not byte-level text");
    if (tokens.size() <= id) tokens.resize(id + 1);
    require(tokens[id].empty(), ErrorCode::kCorruptFile, where + ": two vocab entries have id " + std::to_string(id));
    tokens[id] = std::move(*bytes);
  }

  std::vector<std::pair<std::string, std::string>> merges;
  const Json& merge_list = model.at("merges");
  if (!merge_list.is_array()) fail(ErrorCode::kCorruptFile, where + ": \"merges\" must be an array");
  merges.reserve(merge_list.size());
  for (const Json& m : merge_list) {
    // Older files write "left right"; tokenizers >= 0.20 write ["left", "right"].
    std::string left, right;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      const size_t space = s.find(' ');
      if (space == std::string::npos) fail(ErrorCode::kCorruptFile, where + ": merge \"" + s + "\" has no space");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get_ref<const std::string&>();
      right = m[1].get_ref<const std::string&>();
    } else {
      fail(ErrorCode::kCorruptFile, where + ": a merge must be \"left right\" or [left, right]");
    }
    auto l = token_text(left), r = token_text(right);
    if (!l || !r) fail(ErrorCode::kCorruptFile, where + ": merge \"" + left + " " + right + "\" is not byte-level text");
    merges.emplace_back(std::move(*l), std::move(*r));
  }
  vocab_size_ = static_cast<int32_t>(tokens.size());
  if (metaspace_) {
    const std::string unk = json_get_or<std::string>(model, "unk_token", "", where);
    int32_t unk_id = -1;
    for (size_t id = 0; id < tokens.size() && !unk.empty(); ++id) {
      if (tokens[id] == unk) unk_id = static_cast<int32_t>(id);
    }
    metaspace_model_ = std::make_unique<tokenizer::MetaspaceBpeModel>(std::move(tokens), merges, unk_id, where);
    return;
  }
  model_ = std::make_unique<tokenizer::BpeModel>(std::move(tokens), merges,
                                                 json_get_or<bool>(model, "ignore_merges", false, where), where);
}

std::optional<std::string> BpeTokenizer::token_text(const std::string& entry) const {
  if (metaspace_) return entry;
  return tokenizer::byte_level_to_bytes(entry);
}

void BpeTokenizer::read_added_tokens(const Json& added_tokens, const std::string& what) {
  const std::string where = what + " added_tokens";
  if (!added_tokens.is_array()) fail(ErrorCode::kCorruptFile, where + ": must be an array");
  std::vector<AddedToken> tokens;
  for (const Json& t : added_tokens) {
    reject_unknown_fields(t, {"id", "content", "single_word", "lstrip", "rstrip", "normalized", "special"}, where);
    AddedToken token;
    token.content = json_get<std::string>(t, "content", where);
    const auto id = json_get<int64_t>(t, "id", where);
    require(id >= 0 && id < (1 << 24) && !token.content.empty(), ErrorCode::kCorruptFile,
            where + ": token \"" + token.content + "\" has an invalid id or empty content");
    tokenizer::require_valid_utf8(token.content, where);
    token.id = static_cast<int32_t>(id);
    token.lstrip = json_get_or<bool>(t, "lstrip", false, where);
    token.rstrip = json_get_or<bool>(t, "rstrip", false, where);
    added_content_[token.id] = token.content;
    vocab_size_ = std::max(vocab_size_, token.id + 1);
    tokens.push_back(std::move(token));
  }
  added_ = tokenizer::AddedTokenMatcher(std::move(tokens));
}

void BpeTokenizer::read_config(const Json& config, const std::string& what) {
  const std::string where = what + " tokenizer_config.json";
  const auto id_of = [&](const std::string& token, const char* key) {
    if (token.empty()) return -1;
    const int32_t id = token_id(token);
    if (id < 0) fail(ErrorCode::kCorruptFile, where + ": " + key + " \"" + token + "\" is not in the vocabulary");
    return id;
  };
  const std::string bos = config_token(config, "bos_token", where);
  bos_id_ = id_of(bos, "bos_token");
  eos_id_ = id_of(config_token(config, "eos_token", where), "eos_token");
  if (eos_id_ < 0) {
    for (const char* guess : {"<|end_of_text|>", "<|endoftext|>", "</s>"}) {
      if ((eos_id_ = token_id(guess)) >= 0) break;
    }
  }
  const std::string jinja = config_chat_template(config, where);
  if (jinja.empty()) return;
  try {
    chat_template_ = ChatTemplate::from_jinja(jinja, bos);
  } catch (const Error& e) {
    // Tokenizing still works without the template; only chat rendering is unavailable.
    if (e.code() != ErrorCode::kUnsupported) throw;
    spdlog::warn("{}: {}; chat rendering is unavailable", where, e.what());
  }
}

int32_t BpeTokenizer::token_id(std::string_view text) const {
  for (const auto& [id, content] : added_content_) {
    if (content == text) return id;
  }
  return metaspace_model_ ? metaspace_model_->find(text) : model_->find(text);
}

std::vector<int32_t> BpeTokenizer::stop_ids() const {
  std::vector<int32_t> ids;
  if (eos_id_ >= 0) ids.push_back(eos_id_);
  for (const char* name : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>", "<end_of_turn>"}) {
    const int32_t id = token_id(name);
    if (id >= 0 && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos) const {
  tokenizer::require_valid_utf8(text, "text to encode");
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos && bos_id_ >= 0) ids.push_back(bos_id_);
  for (const tokenizer::TextSection& section : added_.split(text)) {
    if (section.id >= 0) {
      ids.push_back(section.id);
    } else {
      encode_ordinary(section.text, ids);
    }
  }
  return ids;
}

void BpeTokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& ids) const {
  std::string normalized;
  if (metaspace_) {
    for (char c : text) {
      if (c == ' ') {
        normalized += kMetaspace;
      } else {
        normalized += c;
      }
    }
    metaspace_model_->encode(normalized, ids);
    return;
  }
  if (nfc_) {
    normalized = tokenizer::normalize_nfc(text);
    text = normalized;
  }
  if (add_prefix_space_ && !text.empty() && text[0] != ' ') {
    normalized = " " + std::string(text);
    text = normalized;
  }
  std::vector<std::string_view> pieces{text}, next;
  for (const auto& splitter : splitters_) {
    next.clear();
    for (std::string_view piece : pieces) splitter->split(piece, next);
    pieces.swap(next);
  }
  for (std::string_view piece : pieces) model_->encode_word(piece, ids);
}

std::string BpeTokenizer::decode_token(int32_t id) const {
  const auto added = added_content_.find(id);
  if (added != added_content_.end()) {
    // Gemma's decoder maps '▁' to a space in every token, added ones ("▁▁", ...) included.
    return metaspace_ ? tokenizer::MetaspaceBpeModel::with_spaces(added->second) : added->second;
  }
  const bool known = metaspace_model_ ? metaspace_model_->has(id) : id >= 0 && id < model_->size() && !model_->token_bytes(id).empty();
  if (!known) {
    fail(ErrorCode::kInvalidArgument, "token id " + std::to_string(id) + " is not in the vocabulary (size " +
                                          std::to_string(vocab_size_) + ")");
  }
  return metaspace_model_ ? metaspace_model_->decode(id) : model_->token_bytes(id);
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += decode_token(id);
  return out;
}

}  // namespace hearth
