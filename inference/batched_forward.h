// One forward step over several requests at once: the projections of all their new positions
// run as one batch (each weight is read once per step, whatever the number of requests), and
// attention runs per request against that request's own KV cache with the single-request code.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "inference/decoder.h"
#include "inference/kv_cache.h"

namespace hearth {

// The new positions of one request in a step: a piece of its prompt, or its last token.
struct SequenceStep {
  std::vector<int32_t> tokens;  // at least one
  KVCache* cache = nullptr;     // the request's own cache (batch 1); advanced by tokens.size()
};

// Runs every sequence's new tokens through `decoder` in one pass. The rows of the batch are the
// sequences' tokens in order (what an AdapterRouter's row groups refer to). Returns the logits
// of each sequence's last new position, fp32 [sequences, vocab]. Runs without autograd.
// A step where every sequence has one new token computes each row of a quantized product as a
// single decode step would (DecodeRowsScope); prompt rows as generate() computes a prompt's
// (PromptRowsScope). Mixing the two in one step would round decode rows differently from a
// request decoded alone where the format has no int8 kernels: the server does not.
at::Tensor batched_step(const Decoder& decoder, const std::vector<SequenceStep>& steps);

}  // namespace hearth
