// The output-layer loss computed a chunk of positions at a time, forward and backward, so the
// logits of a whole batch ([N, vocab]) never exist at once: backward recomputes each chunk.
#pragma once
#include <ATen/ATen.h>

#include "inference/decoder.h"

namespace hearth::trainer {

// sum_i weights[i] * -log softmax(decoder.logits(hidden[i]))[targets[i]] as an fp32 scalar.
// hidden [N, H] fp32; targets [N] int64; weights [N] fp32 (0 = no loss). Differentiable with
// respect to hidden and, when they require grad, the output head's weights (accumulated into
// their .grad during backward). chunk_rows <= 0 picks about 16 MB of logits per chunk.
at::Tensor chunked_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                                 const at::Tensor& weights, int64_t chunk_rows = 0);

// The plain reference: full logits, log_softmax, weighted sum. For tests and tiny vocabularies.
at::Tensor full_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                              const at::Tensor& weights);

}  // namespace hearth::trainer
