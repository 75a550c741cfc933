// Tokenizers in GGUF metadata (tokenizer.ggml.*): read into Hearth's tokenizers ("gpt2": byte-level
// BPE with merges and a pre-tokenizer named by tokenizer.ggml.pre; "llama": SentencePiece pieces
// with scores and byte fallback, laid out as llama2.c's or, without a dummy-prefix space, as
// Gemma's: gguf_metaspace_tokenizer.h), and written from a model's tokenizer files.
#pragma once
#include <filesystem>
#include <memory>
#include <vector>

#include "inference/gguf_file.h"
#include "inference/gguf_writer.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {

// The tokenizer the metadata describes, with its chat template (tokenizer.chat_template).
// kUnsupported naming what Hearth does not implement (another tokenizer model or pre-tokenizer);
// kCorruptFile for inconsistent metadata.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& file);

// Writes the tokenizer.* metadata of a model with `vocab_size` embedding rows: copied from
// `source` when it is a GGUF file, else converted from `tokenizer_file` (a tokenizer.json with
// its tokenizer_config.json beside it, or a llama2.c tokenizer .bin). Token lists shorter than
// the vocabulary are padded with unused "[PAD<id>]" tokens, as llama.cpp's converter does.
void write_gguf_tokenizer(GgufWriter& out, const GgufFile* source, const std::filesystem::path& tokenizer_file,
                          int64_t vocab_size);

// tokenizer.ggml.token_type for `n` tokens (all normal when absent); kCorruptFile on a count mismatch.
std::vector<int32_t> gguf_token_types(const GgufFile& file, size_t n);

}  // namespace hearth
