// The real model and tokenizers a fuzz target needs around its input (the base an adapter is
// loaded onto, the tokenizer training data is tokenized with), loaded once per process.
#pragma once
#include "adapters/adapter.h"
#include "core/json.h"
#include "inference/model_loader.h"
#include "inference/tokenizer/tokenizer.h"

namespace hearth::fuzz {

// stories260K from $HEARTH_ASSETS (fp32, with its tok512 tokenizer and weight fingerprint).
const LoadedModel& stories260k();

// One forward step of `base` with `adapter` attached (detached again after): loaded weights
// must compute. Checks the logits' shape.
void forward_with_adapter(const LoadedModel& base, const std::shared_ptr<Adapter>& adapter);

// The real Qwen3 tokenizer with its ChatML template.
const Tokenizer& qwen3_tokenizer();

// A small byte-level BPE tokenizer.json (a synthetic 300-token ChatML vocabulary) whose added
// tokens also hold the Llama 3 specials, so either family's tokenizer_config.json finds its
// BOS, EOS and end-of-turn tokens.
const Json& small_bpe_tokenizer_json();

}  // namespace hearth::fuzz
