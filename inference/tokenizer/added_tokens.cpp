#include "inference/tokenizer/added_tokens.h"

#include <algorithm>

#include "inference/tokenizer/utf8.h"

namespace hearth::tokenizer {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  tokens_.erase(std::remove_if(tokens_.begin(), tokens_.end(), [](const AddedToken& t) { return t.content.empty(); }),
                tokens_.end());
  std::sort(tokens_.begin(), tokens_.end(), [](const AddedToken& a, const AddedToken& b) {
    const auto fa = static_cast<unsigned char>(a.content[0]), fb = static_cast<unsigned char>(b.content[0]);
    if (fa != fb) return fa < fb;
    return a.content.size() > b.content.size();
  });
  first_byte_begin_.assign(257, 0);
  for (const auto& t : tokens_) {
    const auto first = static_cast<unsigned char>(t.content[0]);
    first_bytes_.set(first);
    ++first_byte_begin_[first + 1];
  }
  for (size_t i = 1; i < first_byte_begin_.size(); ++i) first_byte_begin_[i] += first_byte_begin_[i - 1];
}

int AddedTokenMatcher::longest_match(std::string_view text, size_t pos) const {
  const auto first = static_cast<unsigned char>(text[pos]);
  for (uint32_t i = first_byte_begin_[first]; i < first_byte_begin_[first + 1]; ++i) {
    if (text.compare(pos, tokens_[i].content.size(), tokens_[i].content) == 0) return static_cast<int>(i);
  }
  return -1;
}

std::vector<TextSection> AddedTokenMatcher::split(std::string_view text) const {
  std::vector<TextSection> sections;
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    const int match = first_bytes_.test(static_cast<unsigned char>(text[pos])) ? longest_match(text, pos) : -1;
    if (match < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[match];
    std::string_view before = text.substr(start, pos - start);
    if (token.lstrip) before = trim_whitespace(before, false, true);
    if (!before.empty()) sections.push_back({before, -1});
    sections.push_back({std::string_view(token.content), token.id});
    pos += token.content.size();
    if (token.rstrip) pos = text.size() - trim_whitespace(text.substr(pos), true, false).size();
    start = pos;
  }
  if (start < text.size()) sections.push_back({text.substr(start), -1});
  return sections;
}

}  // namespace hearth::tokenizer
