// SentencePiece BPE vocabularies without a dummy-prefix space (Gemma 3) in GGUF metadata: read
// as tokenizer.ggml.model "llama" with add_space_prefix false, written from a SentencePiece-style
// tokenizer.json. GGUF keeps pieces and scores, not merges: every split of a piece into two
// pieces is a merge, ranked by the score of the piece it makes, which is how SentencePiece and
// llama.cpp merge and how Hugging Face's converter derived the tokenizer.json merges.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/json.h"
#include "inference/gguf_file.h"
#include "inference/gguf_writer.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth {

// llama.cpp's token types (tokenizer.ggml.token_type).
enum GgufTokenType : int32_t { kGgufNormal = 1, kGgufUnknown = 2, kGgufControl = 3, kGgufUserDefined = 4, kGgufUnused = 5, kGgufByte = 6 };

// Whether a tokenizer.json is SentencePiece-style (its normalizer replaces spaces by '▁').
bool is_metaspace_tokenizer_json(const Json& tokenizer_json);

// The tokenizer of a "llama" vocabulary with add_space_prefix false. kCorruptFile naming the file
// for inconsistent metadata (counts, repeated pieces, ids out of range).
std::unique_ptr<Tokenizer> load_gguf_metaspace_tokenizer(const GgufFile& file);

// Writes tokenizer.* ("llama", add_space_prefix false) for a model of `vocab_size` embedding rows
// from a SentencePiece-style tokenizer.json and its tokenizer_config.json (`config`, may be null).
// A piece's score is minus the rank of the first merge that makes it, so reading it back ranks
// merges as the file does. Ids past the tokenizer's are unused "[PAD<id>]" tokens.
void write_gguf_metaspace_tokenizer(GgufWriter& out, const Json& tokenizer_json, const Json& config, int64_t vocab_size,
                                    const std::string& what);

}  // namespace hearth
