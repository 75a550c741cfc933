// What both BPE models are built from: the tokens by id and by text, and the ranked merges as
// (left id, right id) -> (rank, merged id).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace hearth::tokenizer {

class BpeVocabulary {
 public:
  struct Merge {
    int32_t rank;
    int32_t result;
  };

  // tokens[id] is the token (empty for ids the model does not use); merges are (left, right)
  // in rank order, each part and their concatenation a token. A repeated merge keeps its first
  // (lowest) rank, as a rank lookup table would. Throws kCorruptFile naming `what`.
  BpeVocabulary(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
                const std::string& what);

  // The id of a token given by its text, or -1.
  int32_t find(std::string_view text) const {
    const auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
  }
  // The merge of two adjacent tokens, or nullptr where the pair does not merge.
  const Merge* merge(int32_t left, int32_t right) const {
    const auto it = merges_.find(pair_key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }
  // Token id's text (the caller checks the range).
  const std::string& token(int32_t id) const { return tokens_[id]; }
  int32_t size() const { return static_cast<int32_t>(tokens_.size()); }

 private:
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }

  std::vector<std::string> tokens_;
  std::unordered_map<std::string_view, int32_t> ids_;  // views into tokens_
  std::unordered_map<uint64_t, Merge> merges_;
};

}  // namespace hearth::tokenizer
