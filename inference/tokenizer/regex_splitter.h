// Splits text into pre-tokens with a pre-tokenizer regex from tokenizer.json (PCRE2, UTF and
// Unicode properties), keeping the matches and the text between them (behavior "Isolated"), or
// the matches only (behavior "Removed" with invert: GPT-4o's o200k).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace hearth::tokenizer {

class RegexSplitter {
 public:
  // Throws kCorruptFile naming `what` when the pattern does not compile.
  RegexSplitter(const std::string& pattern, const std::string& what, bool keep_gaps = true);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends to `pieces` the matches of the pattern in `text` and, when keeping gaps, the
  // non-empty gaps between them, in order (together they cover `text` exactly). `text` must be
  // valid UTF-8.
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;

 private:
  struct Compiled;
  std::unique_ptr<Compiled> compiled_;
  bool keep_gaps_;
};

}  // namespace hearth::tokenizer
