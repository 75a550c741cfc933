#include "inference/tokenizer/bpe_model.h"

#include <queue>

#include "core/error.h"

namespace hearth::tokenizer {

namespace {
constexpr size_t kCacheCapacity = 200000;
constexpr size_t kMaxCachedWordBytes = 256;
}  // namespace

BpeModel::BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
                   bool ignore_merges, const std::string& what)
    : vocabulary_(std::move(tokens), merges, what), ignore_merges_(ignore_merges) {
  for (int b = 0; b < 256; ++b) {
    byte_ids_[b] = find(std::string(1, static_cast<char>(b)));
    require(byte_ids_[b] >= 0, ErrorCode::kCorruptFile,
            what + ": the vocabulary lacks the token for byte " + std::to_string(b));
  }
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_ || word.size() == 1) {
    const int32_t whole = find(word);
    if (whole >= 0) {
      ids.push_back(whole);
      return;
    }
  }
  if (word.size() <= kMaxCachedWordBytes) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    const auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = merge(word);
  ids.insert(ids.end(), merged.begin(), merged.end());
  if (word.size() <= kMaxCachedWordBytes) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();
    cache_.emplace(std::string(word), std::move(merged));
  }
}

// Symbols form a linked list over byte positions; a heap holds candidate merges ordered by
// (rank, position of the left symbol). Entries made stale by earlier merges are skipped when
// popped: their symbols are gone or have changed.
std::vector<int32_t> BpeModel::merge(std::string_view word) const {
  const int n = static_cast<int>(word.size());
  std::vector<int32_t> id(n);
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    id[i] = byte_ids_[static_cast<unsigned char>(word[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int left, right;
    int32_t left_id, right_id, result;  // result kept so applying the merge needs no second lookup
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto consider = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const BpeVocabulary::Merge* m = vocabulary_.merge(id[left], id[next[left]]);
    if (m) queue.push({m->rank, left, next[left], id[left], id[next[left]], m->result});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    if (id[c.left] != c.left_id || next[c.left] != c.right || id[c.right] != c.right_id) continue;
    id[c.left] = c.result;
    id[c.right] = -1;  // removed
    next[c.left] = next[c.right];
    if (next[c.left] >= 0) prev[next[c.left]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  std::vector<int32_t> out;
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
  return out;
}

}  // namespace hearth::tokenizer
