// The adapter slot of a frozen linear layer: an adapter (LoRA, DoRA, ...) sees the layer's
// input and the frozen base output, and returns the adapted output.
#pragma once
#include <ATen/ATen.h>

namespace hearth {

class Linear;

// B [out, rank] as the decode step reads it: tile t holds outputs 16t..16t+15 as rank runs of 16
// (element [t][j][l] = B[16t + l, j]), outputs past `out` zero. One output's factors sit 16 apart
// and a tile is contiguous, so a chunk of outputs reads one stream instead of rank of them.
constexpr int64_t kLowRankTileRows = 16;
// Outputs the tiles hold for `out` outputs: whole tiles.
constexpr int64_t low_rank_b_tiled_rows(int64_t out) { return (out + kLowRankTileRows - 1) / kLowRankTileRows * kLowRankTileRows; }

// An adapter whose whole inference effect is y += scale * B (A x): plain LoRA, not training.
// The decode step reads fp16 copies (half the bytes of fp32) of A * 2^ka [rank, in] and of B * 2^kb
// in column tiles (b_tiles_fp16, kLowRankTileRows outputs per tile; so s B u is rank vector FMAs
// per 16 outputs, no horizontal sums, over contiguous bytes), with a_fp16_scale = 2^-ka and
// b_fp16_scale = 2^-kb. The pointers stay valid while the adapter is alive and its factors
// unchanged.
struct LowRankUpdate {
  int64_t rank = 0;
  float scale = 0;
  const uint16_t* a_fp16 = nullptr;
  const uint16_t* b_tiles_fp16 = nullptr;
  float a_fp16_scale = 1;
  float b_fp16_scale = 1;
};

class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // Fills `out` and returns true when apply() is exactly a low-rank update (the prepared decode
  // step then runs it over raw buffers, decode_plan.h); false keeps apply().
  virtual bool low_rank_update(LowRankUpdate& /*out*/) const { return false; }
  // The same for a step of `rows` rows, one per sequence of a batched decode step, when rows may
  // take different adapters (adapters/adapter_routing.h): fills out[0, rows) (rank 0: the bare
  // base) and returns true, or false when some row's update is not a plain low-rank one.
  virtual bool row_low_rank_updates(int64_t rows, LowRankUpdate* out) const {
    LowRankUpdate u;
    if (!low_rank_update(u)) return false;
    for (int64_t i = 0; i < rows; ++i) out[i] = u;
    return true;
  }
  // x: the layer input [..., in]; base_out: W x + b [..., out]. Returns the adapted output.
  virtual at::Tensor apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const = 0;
};

}  // namespace hearth
