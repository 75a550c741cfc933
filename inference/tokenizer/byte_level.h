// The GPT-2 byte-level alphabet: each of the 256 byte values is written as one printable
// Unicode character, so byte-level BPE vocabularies (tokenizer.json) are plain strings.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace hearth::tokenizer {

// The byte-level string (UTF-8) for raw bytes.
std::string bytes_to_byte_level(std::string_view bytes);
// The raw bytes a byte-level string stands for; nullopt if it holds a character outside the
// alphabet (or is not valid UTF-8).
std::optional<std::string> byte_level_to_bytes(std::string_view text);

}  // namespace hearth::tokenizer
