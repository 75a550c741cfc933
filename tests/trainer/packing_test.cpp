// Packing documents into rows: rows are full, targets are the next token of the same
// document, segments and positions restart per document piece, and loss weights follow the mask.
#include <gtest/gtest.h>

#include "core/error.h"
#include "trainer/packing.h"

namespace hearth {
namespace {

trainer::TokenDocument doc(int32_t first, int n, bool trained_from_half = false) {
  trainer::TokenDocument d;
  for (int i = 0; i < n; ++i) {
    d.tokens.push_back(first + i);
    d.trained.push_back(!trained_from_half || i >= n / 2);
  }
  return d;
}

TEST(Packing, RowsAreFullAndSegmentsRestartPerDocument) {
  // 5 + 9 + 4 tokens -> 4 + 8 + 3 = 15 pairs -> rows of 6: A+B, B, C + padding.
  std::vector<trainer::TokenDocument> docs{doc(100, 5), doc(200, 9, true), doc(300, 4)};
  trainer::PackedRows p = trainer::pack_documents(docs, 6);
  ASSERT_EQ(p.rows(), 3);
  // Row 0: doc A (4 pairs, segment 0, positions 0..3), then doc B's first 2 pairs (segment 1).
  EXPECT_TRUE(at::equal(p.tokens[0], at::tensor({100, 101, 102, 103, 200, 201}, at::kLong)));
  EXPECT_TRUE(at::equal(p.targets[0], at::tensor({101, 102, 103, 104, 201, 202}, at::kLong)));
  EXPECT_TRUE(at::equal(p.segments[0], at::tensor({0, 0, 0, 0, 1, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(p.positions[0], at::tensor({0, 1, 2, 3, 0, 1}, at::kLong)));
  // Row 1: doc B continues as a new segment with positions from 0.
  EXPECT_TRUE(at::equal(p.tokens[1], at::tensor({202, 203, 204, 205, 206, 207}, at::kLong)));
  EXPECT_TRUE(at::equal(p.segments[1], at::tensor({0, 0, 0, 0, 0, 0}, at::kLong)));
  EXPECT_TRUE(at::equal(p.positions[1], at::tensor({0, 1, 2, 3, 4, 5}, at::kLong)));
  // Doc B trains only tokens 4..8 (its second half): targets 201..203 are not trained.
  EXPECT_TRUE(at::equal(p.weights[0], at::tensor({1.f, 1.f, 1.f, 1.f, 0.f, 0.f})));
  EXPECT_TRUE(at::equal(p.weights[1], at::tensor({0.f, 1.f, 1.f, 1.f, 1.f, 1.f})));
  // Row 2: doc C (3 pairs), then 3 padding positions in their own segment, with no loss.
  EXPECT_TRUE(at::equal(p.tokens[2].narrow(0, 0, 3), at::tensor({300, 301, 302}, at::kLong)));
  EXPECT_TRUE(at::equal(p.targets[2].narrow(0, 0, 3), at::tensor({301, 302, 303}, at::kLong)));
  EXPECT_TRUE(at::equal(p.segments[2], at::tensor({0, 0, 0, 1, 1, 1}, at::kLong)));
  EXPECT_TRUE(at::equal(p.positions[2].narrow(0, 0, 3), at::tensor({0, 1, 2}, at::kLong)));
  EXPECT_TRUE(at::equal(p.weights[2], at::tensor({1.f, 1.f, 1.f, 0.f, 0.f, 0.f})));
  EXPECT_EQ(p.trained_tokens(), 4 + 5 + 3);
}

TEST(Packing, SingleTokenDocumentsGiveNoPairs) {
  trainer::PackedRows p = trainer::pack_documents({doc(1, 1), doc(5, 1)}, 4);
  EXPECT_EQ(p.rows(), 0);
}

TEST(Packing, RejectsTinySequenceLength) { EXPECT_THROW(trainer::pack_documents({doc(1, 5)}, 1), Error); }

}  // namespace
}  // namespace hearth
