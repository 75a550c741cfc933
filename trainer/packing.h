// Packs tokenized documents into full rows of seq_len positions for training: documents are
// laid end to end, each keeps its own attention segment and positions that start at 0.
#pragma once
#include <ATen/ATen.h>

#include <vector>

#include "trainer/token_document.h"

namespace hearth::trainer {

// Rows of (input, target) pairs: position j of row r predicts targets[r][j] from inputs
// [r][<= j] of the same segment. A document of n tokens gives n-1 pairs; one longer than the
// space left in a row continues in the next row as a new segment (positions from 0 again).
struct PackedRows {
  at::Tensor tokens;     // int64 [R, L] inputs
  at::Tensor targets;    // int64 [R, L]
  at::Tensor weights;    // fp32 [R, L]: 1 where the target is trained, 0 elsewhere (and in padding)
  at::Tensor positions;  // int64 [R, L]
  at::Tensor segments;   // int64 [R, L]: document pieces numbered from 0 within each row
  int64_t rows() const { return tokens.defined() ? tokens.size(0) : 0; }
  // Positions with a trained target.
  int64_t trained_tokens() const;
};

// Every row is full except possibly the last, whose tail is padding (weight 0, its own segment).
PackedRows pack_documents(const std::vector<TokenDocument>& docs, int64_t seq_len);

}  // namespace hearth::trainer
