// Quantized matrices in safetensors files: each part stored as a tensor named
// "<prefix>.<part>", read back as zero-copy views of the mapping after validation.
#pragma once
#include <string>

#include "core/safetensors.h"
#include "inference/quant/quantized_matrix.h"

namespace hearth {

// Adds prefix.codes and prefix.scales (int4/int8) or prefix.absmax_codes, .absmax_scale and
// .absmax_offset (nf4). The format and shape are the caller's to record (e.g. in config).
void write_quantized(SafetensorsWriter& w, const std::string& prefix, const QuantizedMatrix& m);

// The matrix stored under `prefix`, viewing the file's bytes. A missing part, a wrong dtype or
// a length that does not match format/rows/cols is a kCorruptFile error naming the tensor.
QuantizedMatrix read_quantized(const SafetensorsFile& f, const std::string& prefix, QuantFormat format, int64_t rows,
                               int64_t cols);

}  // namespace hearth
