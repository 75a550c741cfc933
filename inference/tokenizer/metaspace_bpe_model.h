// The BPE model of SentencePiece-style tokenizer.json files (Gemma): tokens are text whose
// spaces are '▁', merges join Unicode characters, and a character outside the vocabulary falls
// back to its UTF-8 bytes as <0xXX> tokens. A whole line is one word, so merging uses a heap.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "inference/tokenizer/bpe_vocabulary.h"

namespace hearth::tokenizer {

class MetaspaceBpeModel {
 public:
  // tokens[id] is the token's text (empty for unused ids); merges are (left, right) in rank
  // order; unk_id the token for a character without tokens or byte tokens (-1: none). Throws
  // kCorruptFile naming `what`.
  MetaspaceBpeModel(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
                    int32_t unk_id, const std::string& what);

  // Appends the ids of `text` (valid UTF-8, spaces already replaced by '▁').
  void encode(std::string_view text, std::vector<int32_t>& ids) const;
  // The bytes token `id` stands for: '▁' as a space, <0xXX> as that byte (the caller checks the range).
  std::string decode(int32_t id) const;
  // `text` with every '▁' as a space (how added tokens decode in such a tokenizer too).
  static std::string with_spaces(std::string_view text);
  // The id of a token given by its text, or -1.
  int32_t find(std::string_view text) const { return vocabulary_.find(text); }
  int32_t size() const { return vocabulary_.size(); }
  bool has(int32_t id) const { return id >= 0 && id < size() && !vocabulary_.token(id).empty(); }

 private:
  // The initial symbols of `text`: one per character, or its byte tokens, or unk.
  std::vector<int32_t> characters(std::string_view text) const;

  BpeVocabulary vocabulary_;
  int32_t byte_ids_[256];  // <0xXX> tokens, -1 where absent
  int32_t unk_id_;
};

}  // namespace hearth::tokenizer
