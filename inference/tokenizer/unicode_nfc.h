// Unicode Normalization Form C (canonical decomposition, canonical ordering, canonical
// composition), for tokenizers whose tokenizer.json asks for an NFC normalizer (Qwen).
#pragma once
#include <string>
#include <string_view>

namespace hearth::tokenizer {

// Returns the NFC form of `text`, which must be valid UTF-8. Text whose code points are all
// below U+0300 is already NFC and is returned unchanged without decoding.
std::string normalize_nfc(std::string_view text);

}  // namespace hearth::tokenizer
