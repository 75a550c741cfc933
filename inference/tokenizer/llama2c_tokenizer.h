// The tokenizer of llama2.c models (tokenizer.bin / tok<N>.bin): scored pieces merged greedily
// by best score, with a dummy-prefix space and <0xXX> byte fallback, as in llama2.c's run.c.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "inference/tokenizer/tokenizer.h"

namespace hearth {

class Llama2cTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;
  static constexpr int32_t kFirstByteToken = 3;  // <0x00> .. <0xFF> are ids 3 .. 258

  // pieces[id] and scores[id] for every token. Throws kCorruptFile naming `what` when the
  // vocabulary is too small for the byte tokens or repeats a piece.
  Llama2cTokenizer(std::vector<std::string> pieces, std::vector<float> scores, const std::string& what);

  // Reads the file format: int32 max_token_length, then per token float score, int32 length,
  // bytes. The count is read to the end of the file; a name tok<N>.bin must hold N tokens.
  static std::unique_ptr<Llama2cTokenizer> load(const std::filesystem::path& path);
  // The same format from bytes in memory; `what` names them in errors, and `expected_count`
  // (from a tok<N>.bin name) is the number of tokens they must hold.
  static std::unique_ptr<Llama2cTokenizer> from_bytes(std::string_view data, const std::string& what,
                                                      std::optional<size_t> expected_count = std::nullopt);

  std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;
  // The leading space of the piece after BOS is dropped; BOS and EOS decode to nothing.
  std::string decode(const std::vector<int32_t>& ids) const override;
  // One piece with <0xXX> mapped to its byte (BOS and EOS to nothing).
  std::string decode_token(int32_t id) const override;
  std::string decode_next(int32_t previous, int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos_id() const override { return kBos; }
  int32_t eos_id() const override { return kEos; }

  const std::string& piece(int32_t id) const { return pieces_[id]; }
  float score(int32_t id) const { return scores_[id]; }
  // The id of a piece, or -1.
  int32_t find(std::string_view piece) const;

 private:
  // The tokens of the text before merging: one per code point, or its bytes when not a piece.
  std::vector<int32_t> initial_tokens(std::string_view text) const;
  void merge_by_score(std::vector<int32_t>& tokens) const;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string_view, int32_t> ids_;  // views into pieces_
};

}  // namespace hearth
