#include "inference/tokenizer/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "inference/tokenizer/utf8.h"

namespace hearth::tokenizer {

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const std::string& pattern, const std::string& what, bool keep_gaps)
    : compiled_(std::make_unique<Compiled>()), keep_gaps_(keep_gaps) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // UCP makes \s, \w and friends Unicode-aware, as in the Rust and JavaScript regex engines.
  compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP, &error_code, &error_offset, nullptr);
  if (compiled_->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    fail(ErrorCode::kCorruptFile, what + ": pre-tokenizer regex does not compile at offset " +
                                      std::to_string(error_offset) + ": " + reinterpret_cast<char*>(message));
  }
  // JIT makes matching several times faster; without it (unsupported CPU) matching still works.
  pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> match(
      pcre2_match_data_create_from_pattern(compiled_->code, nullptr), &pcre2_match_data_free);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t gap_start = 0, pos = 0;
  while (pos < text.size()) {
    // The text was validated once by the caller; skip PCRE2's own check on every call.
    const int rc = pcre2_match(compiled_->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail(ErrorCode::kInternal, "pre-tokenizer regex failed with PCRE2 error " + std::to_string(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (begin > gap_start && keep_gaps_) pieces.push_back(text.substr(gap_start, begin - gap_start));
    if (end > begin) {
      pieces.push_back(text.substr(begin, end - begin));
      gap_start = pos = end;
    } else {
      // An empty match: step over one whole character so the search moves on.
      gap_start = begin;
      pos = begin + utf8_sequence_length(static_cast<unsigned char>(text[begin]));
    }
  }
  if (gap_start < text.size() && keep_gaps_) pieces.push_back(text.substr(gap_start));
}

}  // namespace hearth::tokenizer
