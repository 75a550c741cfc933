#include "inference/quant/quant_matmul.h"

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <atomic>
#include <vector>

#include "core/error.h"
#include "inference/quant/row_tiles.h"

namespace hearth {
namespace {

constexpr int64_t kTileFloats = 128 * 1024;  // 512 KiB: fits the L2 beside the BLAS panels

// x converted to a contiguous float [n, cols] matrix, with its shape checked against W.
at::Tensor as_float_matrix(const at::Tensor& x, int64_t cols, const char* what) {
  require(x.dim() == 2 && x.size(1) == cols, ErrorCode::kInvalidArgument,
          std::string(what) + ": expected a [n, " + std::to_string(cols) + "] input");
  require(at::isFloatingType(x.scalar_type()), ErrorCode::kInvalidArgument, std::string(what) + ": input must be floating point");
  // Detached: these products are not differentiable themselves (quant_linear wraps them), and
  // worker threads run with grad mode on, where an out= product refuses an input needing grad.
  return x.detach().to(at::kFloat).contiguous();
}

// Rows per work item of a GEMV: whole passes of row tiles (the row-major kernels' 4-row blocks too) and about 128 KiB of
// packed weights (each item a long stream, far longer than the kernels' prefetch distance),
// but small enough that every thread gets about four items to balance with; 16 KiB at least.
int64_t matvec_chunk_rows(const QuantizedMatrix& m, int threads) {
  const int64_t row_bytes = std::max<int64_t>(1, m.storage_bytes() / std::max<int64_t>(1, m.rows));
  const int64_t bytes = std::max<int64_t>(16 << 10, std::min<int64_t>(128 << 10, m.storage_bytes() / (4 * threads)));
  return std::max<int64_t>(kTilePassRows, (bytes / row_bytes) / kTilePassRows * kTilePassRows);
}

// Runs rows(r0, r1) over all rows of m, the threads claiming chunks from a shared counter
// instead of taking fixed halves: on a shared machine one core is often slowed (another
// process, a host neighbour on the memory bus) and a static split made the whole product wait
// for the slower half.
template <typename Rows>
void for_row_chunks(const QuantizedMatrix& m, const Rows& rows) {
  const int threads = at::get_num_threads();
  const int64_t chunk = matvec_chunk_rows(m, threads), chunks = (m.rows + chunk - 1) / chunk;
  if (chunks <= 1 || threads <= 1) {
    rows(int64_t(0), m.rows);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(chunks, threads), 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next.fetch_add(1, std::memory_order_relaxed))
      rows(c * chunk, std::min(m.rows, (c + 1) * chunk));
  });
}

// The n rows of x [n, cols] padded with zeros to whole blocks, so the kernels need no tail
// handling: x itself when its rows are whole blocks already (every projection of the common
// models; a prompt's copy ran on the calling thread while the others waited), else a per-thread
// buffer (decode calls this ~170 times a token), valid until the thread's next call.
const float* padded_rows(const QuantizedMatrix& m, const float* x, int64_t n) {
  const int64_t pc = m.padded_cols();
  if (pc == m.cols) return x;
  thread_local std::vector<float> buffer;
  buffer.assign(n * pc, 0.0f);
  for (int64_t j = 0; j < n; ++j) std::copy(x + j * m.cols, x + (j + 1) * m.cols, buffer.begin() + j * pc);
  return buffer.data();
}

// y [n, rows] = x [n, padded cols] W^T through m's row tiles, each row quantized to int8 here on
// the calling thread, then shared read-only by the workers, who take chunks of whole tiles.
void matmul_row_tiles(const QuantKernelSet& k, const QuantizedMatrix& m, const float* xp, int64_t n, float* y) {
  const PackedView v = m.view();
  thread_local std::vector<Q8Blocks> buffer;  // named through a reference inside the lambda
  std::vector<Q8Blocks>& xq = buffer;
  if (static_cast<int64_t>(xq.size()) < n) xq.resize(n);
  std::vector<const Q8Blocks*> xs(n);
  std::vector<float*> ys(n);
  for (int64_t j = 0; j < n; ++j) {
    k.quantize_blocks(v, xp + j * m.padded_cols(), xq[j]);
    xs[j] = &xq[j];
    ys[j] = y + j * m.rows;
  }
  for_row_chunks(m, [&](int64_t r0, int64_t r1) {
    k.matmul_row_tiles(*m.tiles, xs.data(), n, ys.data(), r0 / kTileRows, (r1 + kTileRows - 1) / kTileRows);
  });
}

}  // namespace

int64_t quant_tile_rows(int64_t padded_cols) { return std::max<int64_t>(16, (kTileFloats / padded_cols) / 16 * 16); }

void quant_matvec(const QuantizedMatrix& m, const float* x, float* y, ActivationRounding rounding) {
  const PackedView v = m.view();
  const float* xp = padded_rows(m, x, 1);
  const auto& k = active_kernels();
  if (uses_row_tiles(k, m) && rounding == ActivationRounding::kInt8WhereFaster) {
    matmul_row_tiles(k, m, xp, 1, y);
    return;
  }
  if (uses_int8_activations(k, m.format) && rounding == ActivationRounding::kInt8WhereFaster) {
    // Quantized once here, on the calling thread, then shared read-only by the row workers.
    // (A thread_local buffer, so it must be named through a reference inside the lambda.)
    thread_local Q8Activation buffer;
    Q8Activation& xq = buffer;
    k.quantize_activation(v, xp, xq);
    for_row_chunks(m, [&](int64_t r0, int64_t r1) { matvec_q8_rows(k, v, xq, y, r0, r1); });
    return;
  }
  for_row_chunks(m, [&](int64_t r0, int64_t r1) { k.matvec_rows(v, xp, y, r0, r1); });
}

namespace {
thread_local bool decode_rows = false;  // a DecodeRowsScope is open on this thread
thread_local bool prompt_rows = false;  // a PromptRowsScope is open on this thread
// Prompt rows per quant_matvec_batch call: bounds the padded float and int8 copies of a long
// prompt's activations; each call still streams every weight once per 128 rows.
constexpr int64_t kPromptRowsPerCall = 128;
}  // namespace

DecodeRowsScope::DecodeRowsScope() : previous_(decode_rows) { decode_rows = true; }
DecodeRowsScope::~DecodeRowsScope() { decode_rows = previous_; }
PromptRowsScope::PromptRowsScope() : previous_(prompt_rows) { prompt_rows = true; }
PromptRowsScope::~PromptRowsScope() { prompt_rows = previous_; }

void quant_matvec_batch(const QuantizedMatrix& m, const float* x, int64_t n, float* y, ActivationRounding rounding) {
  if (n <= 0) return;
  const PackedView v = m.view();
  const int64_t pc = m.padded_cols();
  const float* xp = padded_rows(m, x, n);
  const auto& k = active_kernels();
  if (uses_row_tiles(k, m) && rounding == ActivationRounding::kInt8WhereFaster) {
    matmul_row_tiles(k, m, xp, n, y);
    return;
  }
  if (uses_int8_activations(k, m.format) && rounding == ActivationRounding::kInt8WhereFaster) {
    thread_local std::vector<Q8Activation> q8_buffer;
    std::vector<Q8Activation>& xq = q8_buffer;
    if (static_cast<int64_t>(xq.size()) < n) xq.resize(n);
    std::vector<const Q8Activation*> xs(n);
    std::vector<float*> ys(n);
    for (int64_t j = 0; j < n; ++j) {
      k.quantize_activation(v, xp + j * pc, xq[j]);
      xs[j] = &xq[j];
      ys[j] = y + j * m.rows;
    }
    for_row_chunks(m, [&](int64_t r0, int64_t r1) { k.matmul_q8_rows(v, xs.data(), n, ys.data(), r0, r1); });
    return;
  }
  for_row_chunks(m, [&](int64_t r0, int64_t r1) {
    for (int64_t j = 0; j < n; ++j) k.matvec_rows(v, xp + j * pc, y + j * m.rows, r0, r1);
  });
}

// The GEMMs split W over the threads once, and each thread dequantizes its share a tile at a time
// into its own cache-sized buffer and multiplies it with a single-threaded BLAS call (OpenBLAS
// and oneDNN run on one thread inside a parallel region). One fork-join per product instead of
// one per tile, no barrier inside the BLAS, and the dequantization runs in parallel too: with a
// busy second core, per-tile multi-threaded BLAS calls waited at their barriers for whole
// scheduler slices (a 128-token nf4 product took 17x longer than on one thread).

at::Tensor quant_matmul(const QuantizedMatrix& m, const at::Tensor& x_in, ActivationRounding rounding) {
  at::Tensor x = as_float_matrix(x_in, m.cols, "quant_matmul");
  const int64_t n = x.size(0);
  at::Tensor out = at::empty({n, m.rows}, at::kFloat);
  if (n == 1) {
    quant_matvec(m, x.data_ptr<float>(), out.data_ptr<float>(), rounding);
    return out;
  }
  if (n == 0) return out;
  if (n <= kMatvecBatchMaxRows && decode_rows && rounding == ActivationRounding::kInt8WhereFaster) {
    quant_matvec_batch(m, x.data_ptr<float>(), n, out.data_ptr<float>(), rounding);
    return out;
  }
  if (prompt_rows && rounding == ActivationRounding::kInt8WhereFaster && uses_int8_activations(active_kernels(), m.format)) {
    for (int64_t r = 0; r < n; r += kPromptRowsPerCall) {
      quant_matvec_batch(m, x.data_ptr<float>() + r * m.cols, std::min(kPromptRowsPerCall, n - r),
                         out.data_ptr<float>() + r * m.rows, rounding);
    }
    return out;
  }
  const PackedView v = m.view();
  const int64_t T = std::min(m.rows, quant_tile_rows(m.padded_cols()));
  // Threads take whole tiles: rows [t * T, ...) for tile t.
  const at::ThreadLocalState caller;
  at::parallel_for(0, (m.rows + T - 1) / T, 1, [&](int64_t t0, int64_t t1) {
    at::ThreadLocalStateGuard same_modes(caller);  // workers start without the caller's inference / grad modes
    at::Tensor tile = at::empty({T, m.padded_cols()}, at::kFloat);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t r0 = t * T, r1 = std::min(m.rows, r0 + T);
      active_kernels().dequant_tile(v, r0, r1, 0, v.blocks_per_row, tile.data_ptr<float>(), tile.stride(0));
      at::Tensor o = out.narrow(1, r0, r1 - r0);
      at::mm_out(o, x, tile.narrow(0, 0, r1 - r0).narrow(1, 0, m.cols).t());
    }
  });
  return out;
}

at::Tensor quant_matmul_transposed(const QuantizedMatrix& m, const at::Tensor& g_in) {
  at::Tensor g = as_float_matrix(g_in, m.rows, "quant_matmul_transposed");
  const int64_t n = g.size(0);
  at::Tensor out = at::zeros({n, m.cols}, at::kFloat);
  if (n == 0) return out;
  const PackedView v = m.view();
  const int64_t bs = m.block_size();
  // Threads own ranges of column blocks, so no two of them add into the same outputs; each walks
  // all rows of W in tiles of its columns.
  const at::ThreadLocalState caller;
  at::parallel_for(0, v.blocks_per_row, 1, [&](int64_t b0, int64_t b1) {
    at::ThreadLocalStateGuard same_modes(caller);  // workers start without the caller's inference / grad modes
    const int64_t c0 = b0 * bs, width = std::min(m.cols, b1 * bs) - c0, ld = (b1 - b0) * bs;
    const int64_t T = std::min(m.rows, quant_tile_rows(ld));
    at::Tensor tile = at::empty({T, ld}, at::kFloat);
    at::Tensor o = out.narrow(1, c0, width);
    for (int64_t r0 = 0; r0 < m.rows; r0 += T) {
      const int64_t r1 = std::min(m.rows, r0 + T);
      active_kernels().dequant_tile(v, r0, r1, b0, b1, tile.data_ptr<float>(), ld);
      o.addmm_(g.narrow(1, r0, r1 - r0), tile.narrow(0, 0, r1 - r0).narrow(1, 0, width));
    }
  });
  return out;
}

}  // namespace hearth
