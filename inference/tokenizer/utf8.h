// UTF-8 validation, decoding and encoding of code points, shared by the tokenizers: text must
// be valid UTF-8 before it is split, normalized or looked up.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace hearth::tokenizer {

// Throws Error(kInvalidArgument, "<what>: invalid UTF-8 at byte N") at the first byte that does
// not start or continue a well-formed sequence (overlong forms, surrogates and code points past
// U+10FFFF are invalid).
void require_valid_utf8(std::string_view text, const std::string& what);

// Decodes the code point starting at text[pos] (text must be valid UTF-8) and advances pos.
char32_t next_code_point(std::string_view text, size_t& pos);

// Appends the UTF-8 encoding of cp to out.
void append_utf8(char32_t cp, std::string& out);

// Length in bytes of the sequence starting with lead byte `lead` (1 for a stray byte).
size_t utf8_sequence_length(unsigned char lead);

// Whether cp is whitespace as JavaScript's String.prototype.trim sees it (ASCII whitespace,
// U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF): chat
// templates rendered by the reference trim with it.
bool is_trim_whitespace(char32_t cp);

// `text` (valid UTF-8) without the whitespace at its start (left) and/or end (right).
std::string_view trim_whitespace(std::string_view text, bool left, bool right);

}  // namespace hearth::tokenizer
