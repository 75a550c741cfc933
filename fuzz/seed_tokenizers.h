// Seeds for the tokenizer targets, cut from the real Qwen3, Llama 3 and llama2.c tokenizers:
// small vocabularies that keep each file's real structure (pre-tokenizer, added tokens, merges).
#pragma once
#include <cstddef>
#include <string>

#include "core/json.h"

namespace hearth::fuzz {

// `full` (a parsed tokenizer.json) with its 256 byte tokens, the first `merges` merges and the
// tokens they form, renumbered densely; the added tokens follow, reserved ones left out.
Json trimmed_tokenizer_json(const Json& full, size_t merges);

// tokenizer_config.json without its added_tokens_decoder table (the loader never reads it).
Json trimmed_tokenizer_config(const Json& full);

// The first `count` pieces of a llama2.c tokenizer file (count >= 259 keeps the byte pieces),
// and the " " piece every encoding starts with, wherever it was.
std::string trimmed_llama2c_tokenizer(const std::string& file, size_t count);

}  // namespace hearth::fuzz
