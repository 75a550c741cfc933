// The decoder's forward pass for training, optionally with gradient checkpointing per block:
// a checkpointed block keeps only its input and recomputes itself during backward.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "inference/decoder.h"

namespace hearth::trainer {

// Final-normed hidden states [B, T, H], like Decoder::hidden_states (no cache). With
// `checkpoint`, each block runs without recording a graph and is recomputed in backward with
// the state of the default CPU generator and of every generator in `replay` (e.g. an
// adapter's dropout generator) restored, so dropout draws the same masks both times.
//
// `recompute_rows` > 0 recomputes and back-propagates a block that many batch rows at a time,
// which divides the activations held during backward by about B / recompute_rows (a block
// treats rows independently, so the gradients are the same up to float summation order). Only
// for blocks that draw no random numbers: a row group would draw its dropout masks in a
// different order than the forward did.
at::Tensor training_hidden_states(const Decoder& decoder, const ForwardInput& input, bool checkpoint,
                                  const std::vector<at::Generator>& replay = {}, int64_t recompute_rows = 0);

}  // namespace hearth::trainer
