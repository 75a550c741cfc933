// Writes a synthetic byte-level BPE tokenizer (tokenizer.json + tokenizer_config.json) of any
// vocabulary size, for random-weight models whose real tokenizer is not on the machine.
#pragma once
#include <cstdint>
#include <filesystem>

#include "inference/tokenizer/chat_template.h"

namespace hearth {

// Writes dir/tokenizer.json and dir/tokenizer_config.json (atomically, creating dir) describing
// exactly vocab_size tokens: the family's special tokens first (ChatML: <|endoftext|>,
// <|im_start|>, <|im_end|> as in SmolLM2; Llama 3: <|begin_of_text|>, <|end_of_text|>,
// <|start_header_id|>, <|end_header_id|>, <|eot_id|>), then the 256 byte tokens, then merged
// tokens formed deterministically from common English letters. load_tokenizer reads it back
// with the family's chat template. Throws kInvalidArgument when vocab_size is too small or the
// family is Gemma (not a byte-level tokenizer's).
void write_synthetic_bpe_tokenizer(const std::filesystem::path& dir, int32_t vocab_size, ChatFamily family);

}  // namespace hearth
