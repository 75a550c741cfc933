#include "trainer/packing.h"

#include "core/error.h"

namespace hearth::trainer {

int64_t PackedRows::trained_tokens() const {
  return weights.defined() ? weights.sum().item<double>() : 0;
}

PackedRows pack_documents(const std::vector<TokenDocument>& docs, int64_t seq_len) {
  require(seq_len >= 2, ErrorCode::kInvalidArgument, "--seq-len must be at least 2");
  std::vector<int64_t> tokens, targets, positions, segments;
  std::vector<float> weights;
  int64_t column = 0, segment = 0;
  for (const TokenDocument& doc : docs) {
    const size_t pairs = doc.tokens.size() < 2 ? 0 : doc.tokens.size() - 1;
    int64_t position = 0;
    for (size_t i = 0; i < pairs; ++i) {
      tokens.push_back(doc.tokens[i]);
      targets.push_back(doc.tokens[i + 1]);
      weights.push_back(doc.trained[i + 1] ? 1.0f : 0.0f);
      positions.push_back(position++);
      segments.push_back(segment);
      if (++column == seq_len) {  // row full: the rest of the document starts a new segment
        column = 0;
        segment = 0;
        position = 0;
      }
    }
    if (column != 0) ++segment;
  }
  if (column != 0) {  // pad the last row
    for (; column < seq_len; ++column) {
      tokens.push_back(0);
      targets.push_back(0);
      weights.push_back(0.0f);
      positions.push_back(0);
      segments.push_back(segment);
    }
  }
  PackedRows rows;
  const int64_t r = int64_t(tokens.size()) / seq_len;
  if (r == 0) return rows;
  rows.tokens = at::tensor(tokens, at::kLong).view({r, seq_len});
  rows.targets = at::tensor(targets, at::kLong).view({r, seq_len});
  rows.weights = at::tensor(weights, at::kFloat).view({r, seq_len});
  rows.positions = at::tensor(positions, at::kLong).view({r, seq_len});
  rows.segments = at::tensor(segments, at::kLong).view({r, seq_len});
  return rows;
}

}  // namespace hearth::trainer
