// The output-layer loss computed a tile of the vocabulary at a time, forward and backward, so
// the logits of a whole batch ([N, vocab]) never exist at once: backward recomputes each tile.
#pragma once
#include <ATen/ATen.h>

#include "inference/decoder.h"

namespace hearth::trainer {

// sum_i weights[i] * -log softmax(decoder.logits(hidden[i]))[targets[i]] as an fp32 scalar.
// hidden [N, H] fp32; targets [N] int64; weights [N] fp32 (0 = no loss; such positions are
// dropped before any logit is computed). Differentiable with respect to hidden and, when it
// requires grad, the dense output head's weight. The head's rows are visited in tiles of
// `vocab_tile` (<= 0: about 4 MiB of logits per tile); a quantized head is dequantized one
// tile at a time. The head must carry no adapter.
at::Tensor chunked_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                                 const at::Tensor& weights, int64_t vocab_tile = 0);

// The plain reference: full logits, log_softmax, weighted sum. For tests and tiny vocabularies.
at::Tensor full_cross_entropy(const Decoder& decoder, const at::Tensor& hidden, const at::Tensor& targets,
                              const at::Tensor& weights);

}  // namespace hearth::trainer
