#include "inference/tokenizer/byte_level.h"

#include <array>

#include "inference/tokenizer/utf8.h"

namespace hearth::tokenizer {
namespace {

// Printable Latin-1 bytes stand for themselves; the other 68 bytes are moved, in order, to
// U+0100 onwards (so a space is written U+0120 'Ġ').
struct Alphabet {
  std::array<char32_t, 256> to_char{};
  std::array<int, 324> to_byte{};  // indexed by code point; -1 if not in the alphabet
  Alphabet() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_char[b] = printable ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = b;
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet instance;
  return instance;
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) append_utf8(alphabet().to_char[static_cast<unsigned char>(c)], out);
  return out;
}

std::optional<std::string> byte_level_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    // Only 1- and 2-byte sequences can be in the alphabet (code points below 324).
    if (lead >= 0xE0 || (lead >= 0x80 && lead < 0xC2) || (lead >= 0xC2 && pos + 1 >= text.size())) return std::nullopt;
    const char32_t cp = next_code_point(text, pos);
    if (cp >= alphabet().to_byte.size() || alphabet().to_byte[cp] < 0) return std::nullopt;
    out += static_cast<char>(alphabet().to_byte[cp]);
  }
  return out;
}

}  // namespace hearth::tokenizer
