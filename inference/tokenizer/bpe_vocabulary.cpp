#include "inference/tokenizer/bpe_vocabulary.h"

#include "core/error.h"

namespace hearth::tokenizer {

BpeVocabulary::BpeVocabulary(std::vector<std::string> tokens,
                             const std::vector<std::pair<std::string, std::string>>& merges, const std::string& what)
    : tokens_(std::move(tokens)) {
  ids_.reserve(tokens_.size());
  for (size_t id = 0; id < tokens_.size(); ++id) {
    if (tokens_[id].empty()) continue;
    if (!ids_.emplace(tokens_[id], static_cast<int32_t>(id)).second) {
      fail(ErrorCode::kCorruptFile, what + ": token " + std::to_string(id) + " repeats an earlier token");
    }
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const int32_t l = find(left), r = find(right), result = find(left + right);
    if (l < 0 || r < 0 || result < 0) {
      fail(ErrorCode::kCorruptFile, what + ": merge " + std::to_string(rank) + " names a token not in the vocabulary");
    }
    merges_.emplace(pair_key(l, r), Merge{static_cast<int32_t>(rank), result});
  }
}

}  // namespace hearth::tokenizer
