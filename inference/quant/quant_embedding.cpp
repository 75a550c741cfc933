#include "inference/quant/quant_embedding.h"

#include "core/error.h"
#include "inference/quant/row_tiles.h"

namespace hearth {

at::Tensor quant_embedding(const QuantizedMatrix& m, const at::Tensor& ids_in) {
  require(ids_in.scalar_type() == at::kLong, ErrorCode::kInvalidArgument, "quant_embedding: ids must be int64");
  at::Tensor ids = ids_in.contiguous().view({-1});
  const PackedView v = m.view();
  const int64_t n = ids.size(0), ld = m.padded_cols();
  at::Tensor out = at::empty({n, ld}, at::kFloat);
  const int64_t* id = ids.data_ptr<int64_t>();
  const auto& k = active_kernels();
  for (int64_t i = 0; i < n; ++i) {
    require(id[i] >= 0 && id[i] < m.rows, ErrorCode::kInvalidArgument,
            "quant_embedding: token id " + std::to_string(id[i]) + " is outside the table of " + std::to_string(m.rows) + " rows");
    // A tied head's tiles hold the same rows: reading them keeps the row-major copy (a mapped
    // file's pages, which the kernel brings back a whole large folio at a time) out of memory.
    if (m.tiles) dequant_tiled_row(*m.tiles, id[i], out.data_ptr<float>() + i * ld);
    else k.dequant_tile(v, id[i], id[i] + 1, 0, v.blocks_per_row, out.data_ptr<float>() + i * ld, ld);
  }
  std::vector<int64_t> shape = ids_in.sizes().vec();
  shape.push_back(m.cols);
  return (ld == m.cols ? out : out.narrow(1, 0, m.cols).contiguous()).view(shape);
}

}  // namespace hearth
