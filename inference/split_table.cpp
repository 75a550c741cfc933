#include "inference/split_table.h"

#include "core/error.h"
#include "inference/linear_quantized.h"
#include "inference/quant/quant.h"
#include "inference/quant/quant_io.h"

namespace hearth {
namespace {

int64_t mask_bytes(int64_t rows) { return (rows + 7) / 8; }

bool mask_bit(const uint8_t* mask, int64_t r) { return (mask[r / 8] >> (r % 8)) & 1; }

// Row r's position in cat(frequent, rare): frequent rows first, each set in id order.
at::Tensor slots_of(const uint8_t* mask, int64_t rows, int64_t frequent) {
  at::Tensor slot = at::empty({rows}, at::kLong);
  int64_t* s = slot.data_ptr<int64_t>();
  int64_t next_frequent = 0, next_rare = frequent;
  for (int64_t r = 0; r < rows; ++r) s[r] = mask_bit(mask, r) ? next_frequent++ : next_rare++;
  return slot;
}

int64_t count_bits(const uint8_t* mask, int64_t rows) {
  int64_t n = 0;
  for (int64_t r = 0; r < rows; ++r) n += mask_bit(mask, r);
  return n;
}

}  // namespace

int64_t SplitTable::frequent_rows() const { return frequent->rows; }

std::shared_ptr<const SplitTable> make_split_table(std::shared_ptr<const QuantizedMatrix> frequent,
                                                   std::shared_ptr<const QuantizedMatrix> rare, at::Tensor frequent_mask,
                                                   const std::string& what) {
  const int64_t rows = frequent->rows + rare->rows;
  require(frequent->cols == rare->cols, ErrorCode::kCorruptFile,
          what + ": the frequent and rare rows have different widths (" + std::to_string(frequent->cols) + " and " +
              std::to_string(rare->cols) + ")");
  require(frequent_mask.scalar_type() == at::kByte && frequent_mask.dim() == 1 && frequent_mask.numel() == mask_bytes(rows),
          ErrorCode::kCorruptFile, what + ": the row mask must be uint8 [" + std::to_string(mask_bytes(rows)) + "]");
  frequent_mask = frequent_mask.contiguous();
  const uint8_t* mask = frequent_mask.data_ptr<uint8_t>();
  for (int64_t r = rows; r < mask_bytes(rows) * 8; ++r)
    require(!mask_bit(mask, r), ErrorCode::kCorruptFile, what + ": the row mask marks a row past the table's " + std::to_string(rows));
  require(count_bits(mask, rows) == frequent->rows, ErrorCode::kCorruptFile,
          what + ": the row mask marks " + std::to_string(count_bits(mask, rows)) + " rows, the frequent set holds " +
              std::to_string(frequent->rows));
  auto t = std::make_shared<SplitTable>();
  t->slot = slots_of(mask, rows, frequent->rows);
  t->frequent = std::move(frequent);
  t->rare = std::move(rare);
  t->frequent_mask = std::move(frequent_mask);
  t->rows = rows;
  t->cols = t->frequent->cols;
  return t;
}

std::shared_ptr<const SplitTable> split_table_from(const at::Tensor& weight, const at::Tensor& is_frequent,
                                                   QuantFormat frequent_format, QuantFormat rare_format) {
  const int64_t rows = weight.size(0);
  const at::Tensor flags = is_frequent.to(at::kBool).contiguous();
  require(weight.dim() == 2 && flags.dim() == 1 && flags.numel() == rows, ErrorCode::kInvalidArgument,
          "a split table needs one flag per row of a 2-D weight");
  const int64_t frequent = flags.sum().item<int64_t>();
  require(frequent > 0 && frequent < rows, ErrorCode::kInvalidArgument,
          "a split table needs rows in both sets; use one format for the whole table instead");
  const at::Tensor frequent_ids = flags.nonzero().view(-1), rare_ids = flags.logical_not().nonzero().view(-1);
  auto part = [&](const at::Tensor& ids, QuantFormat format) {
    return std::make_shared<const QuantizedMatrix>(quantize_matrix(weight.index_select(0, ids), format));
  };
  return make_split_table(part(frequent_ids, frequent_format), part(rare_ids, rare_format), pack_row_mask(flags), "split table");
}

at::Tensor pack_row_mask(const at::Tensor& is_frequent) {
  const at::Tensor flags = is_frequent.to(at::kBool).contiguous();
  const int64_t rows = flags.numel();
  at::Tensor mask = at::zeros({mask_bytes(rows)}, at::kByte);
  uint8_t* m = mask.data_ptr<uint8_t>();
  const bool* f = flags.data_ptr<bool>();
  for (int64_t r = 0; r < rows; ++r)
    if (f[r]) m[r / 8] |= uint8_t(1u << (r % 8));
  return mask;
}

std::shared_ptr<const SplitTable> with_parts(const SplitTable& t, std::shared_ptr<const QuantizedMatrix> frequent,
                                             std::shared_ptr<const QuantizedMatrix> rare) {
  require(frequent->rows == t.frequent->rows && rare->rows == t.rare->rows, ErrorCode::kInternal, "with_parts: other row counts");
  auto out = std::make_shared<SplitTable>(t);
  out->frequent = std::move(frequent);
  out->rare = std::move(rare);
  return out;
}

at::Tensor split_table_lookup(const SplitTable& t, const at::Tensor& ids) {
  const at::Tensor slots = t.slot.index_select(0, ids.reshape({-1}).to(at::kLong));
  const int64_t k = t.frequent_rows();
  const at::Tensor in_frequent = slots < k;
  const at::Tensor at_frequent = in_frequent.nonzero().view(-1), at_rare = in_frequent.logical_not().nonzero().view(-1);
  at::Tensor out = at::empty({slots.numel(), t.cols}, at::kFloat);
  if (at_frequent.numel() > 0)
    out.index_copy_(0, at_frequent, quantized_embedding(*t.frequent, slots.index_select(0, at_frequent)));
  if (at_rare.numel() > 0) out.index_copy_(0, at_rare, quantized_embedding(*t.rare, slots.index_select(0, at_rare) - k));
  std::vector<int64_t> shape = ids.sizes().vec();
  shape.push_back(t.cols);
  return out.view(shape);
}

at::Tensor split_table_matmul(const SplitTable& t, const at::Tensor& x) {
  // Both sets' outputs side by side in slot order, then put in id order (one gather).
  const at::Tensor by_slot = at::cat({quantized_linear_forward(x, t.frequent), quantized_linear_forward(x, t.rare)}, -1);
  return by_slot.index_select(-1, t.slot);
}

at::Tensor split_table_rows_fp32(const SplitTable& t, int64_t first, int64_t count) {
  require(first >= 0 && count >= 0 && first + count <= t.rows, ErrorCode::kInvalidArgument, "split table rows out of range");
  return split_table_lookup(t, at::arange(first, first + count, at::kLong));
}

size_t split_table_bytes(const SplitTable& t) {
  return quantized_bytes(*t.frequent) + quantized_bytes(*t.rare) + t.frequent_mask.nbytes();
}

void write_split_table(SafetensorsWriter& w, const std::string& prefix, const SplitTable& t) {
  write_quantized(w, prefix + ".frequent", *t.frequent);
  write_quantized(w, prefix + ".rare", *t.rare);
  w.add(prefix + ".frequent_rows", t.frequent_mask);
}

std::shared_ptr<const SplitTable> read_split_table(const SafetensorsFile& f, const std::string& prefix,
                                                   QuantFormat frequent_format, QuantFormat rare_format, int64_t rows,
                                                   int64_t cols) {
  const std::string what = f.path().string() + ": " + prefix;
  const std::string mask_name = prefix + ".frequent_rows";
  require(f.contains(mask_name), ErrorCode::kCorruptFile, f.path().string() + " has no tensor \"" + mask_name + "\" (a split table's row mask)");
  // Copied: a few bytes per 8 rows, read on every lookup.
  const at::Tensor mask = f.tensor(mask_name).clone();
  require(mask.scalar_type() == at::kByte && mask.dim() == 1 && mask.numel() == mask_bytes(rows), ErrorCode::kCorruptFile,
          what + ": the row mask must be uint8 [" + std::to_string(mask_bytes(rows)) + "]");
  const int64_t frequent = count_bits(mask.data_ptr<uint8_t>(), rows);
  require(frequent > 0 && frequent < rows, ErrorCode::kCorruptFile, what + ": the row mask must mark some rows but not all");
  auto part = [&](const std::string& name, QuantFormat format, int64_t part_rows) {
    return std::make_shared<const QuantizedMatrix>(read_quantized(f, prefix + "." + name, format, part_rows, cols));
  };
  return make_split_table(part("frequent", frequent_format, frequent), part("rare", rare_format, rows - frequent), mask, what);
}

}  // namespace hearth
