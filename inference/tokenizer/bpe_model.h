// A byte-pair-encoding model over raw bytes: a vocabulary and ranked merges, and the merge of
// one pre-token into token ids, lowest-ranked pair first (leftmost on ties), with a cache.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "inference/tokenizer/bpe_vocabulary.h"

namespace hearth::tokenizer {

class BpeModel {
 public:
  // tokens[id] holds the raw bytes of token id (empty for ids the model does not use); merges
  // are (left, right) raw-byte pairs in rank order. Every single byte must be a token, and each
  // merge's parts and result too. ignore_merges: a pre-token that is itself a token is not
  // merged (Llama 3). Throws kCorruptFile naming `what`.
  BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
           bool ignore_merges, const std::string& what);

  // Appends the ids of one pre-token (raw bytes).
  void encode_word(std::string_view word, std::vector<int32_t>& ids) const;

  // The raw bytes of token id (the caller checks the range).
  const std::string& token_bytes(int32_t id) const { return vocabulary_.token(id); }
  // The id of a token given by its raw bytes, or -1.
  int32_t find(std::string_view bytes) const { return vocabulary_.find(bytes); }
  int32_t size() const { return vocabulary_.size(); }

 private:
  std::vector<int32_t> merge(std::string_view word) const;

  BpeVocabulary vocabulary_;
  int32_t byte_ids_[256];
  bool ignore_merges_;

  // Pre-tokens repeat (words), so their merged ids are remembered; bounded, cleared when full.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace hearth::tokenizer
