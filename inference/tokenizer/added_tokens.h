// Finds added (special) tokens such as "<|im_start|>" in text before it is normalized and
// split, so they always become their own ids: the longest token at the earliest position wins.
#pragma once
#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::tokenizer {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool lstrip = false;  // whitespace before the token is dropped
  bool rstrip = false;  // whitespace after the token is dropped
};

// A stretch of text: an added token (id >= 0) or ordinary text to tokenize (id == -1).
struct TextSection {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

  // Splits `text` into sections; empty ordinary sections are left out.
  std::vector<TextSection> split(std::string_view text) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // The index in tokens_ of the longest token starting at text[pos], or -1.
  int longest_match(std::string_view text, size_t pos) const;

  std::vector<AddedToken> tokens_;  // sorted by first byte, then longest first
  std::bitset<256> first_bytes_;
  std::vector<uint32_t> first_byte_begin_;  // 257 offsets into tokens_ by first byte
};

}  // namespace hearth::tokenizer
