#include "fuzz/seed_tokenizers.h"

#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "inference/tokenizer/byte_level.h"

namespace hearth::fuzz {
namespace {

// A merge as its two byte-level halves, from either form tokenizer.json writes.
std::pair<std::string, std::string> merge_halves(const Json& m) {
  if (m.is_array()) return {m[0].get<std::string>(), m[1].get<std::string>()};
  const std::string s = m.get<std::string>();
  const size_t space = s.find(' ');
  return {s.substr(0, space), s.substr(space + 1)};
}

}  // namespace

Json trimmed_tokenizer_json(const Json& full, size_t merges) {
  std::set<std::string> kept;
  for (const auto& item : full["model"]["vocab"].items()) {
    const auto bytes = tokenizer::byte_level_to_bytes(item.key());
    if (bytes && bytes->size() == 1) kept.insert(item.key());
  }
  Json kept_merges = Json::array();
  for (const Json& m : full["model"]["merges"]) {
    if (kept_merges.size() >= merges) break;
    const auto [left, right] = merge_halves(m);
    if (!kept.count(left) || !kept.count(right) || !full["model"]["vocab"].contains(left + right)) continue;
    kept.insert(left + right);
    kept_merges.push_back(m);
  }
  // Dense ids in the original order, so the trimmed vocabulary has no holes.
  std::map<int64_t, std::string> by_id;
  for (const std::string& token : kept) by_id[full["model"]["vocab"][token].get<int64_t>()] = token;
  Json vocab = Json::object();
  int64_t next = 0;
  for (const auto& [id, token] : by_id) vocab[token] = next++;
  Json trimmed = full;
  trimmed["model"]["vocab"] = vocab;
  trimmed["model"]["merges"] = kept_merges;
  Json added = Json::array();
  for (Json token : full["added_tokens"]) {
    if (token["content"].get<std::string>().find("reserved") != std::string::npos) continue;
    token["id"] = next++;
    added.push_back(token);
  }
  trimmed["added_tokens"] = added;
  trimmed["post_processor"] = nullptr;
  return trimmed;
}

Json trimmed_tokenizer_config(const Json& full) {
  Json config = full;
  config.erase("added_tokens_decoder");
  return config;
}

std::string trimmed_llama2c_tokenizer(const std::string& file, size_t count) {
  std::string out = file.substr(0, 4), space_entry;
  size_t pos = 4;
  for (size_t i = 0; pos + 8 <= file.size(); ++i) {
    int32_t length = 0;
    std::memcpy(&length, file.data() + pos + 4, 4);
    const std::string entry = file.substr(pos, 8 + static_cast<size_t>(length));
    if (i < count) out += entry;
    else if (entry.substr(8) == " ") space_entry = entry;
    pos += entry.size();
  }
  return out + space_entry;
}

}  // namespace hearth::fuzz
