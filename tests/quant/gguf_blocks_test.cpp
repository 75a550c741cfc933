// GGUF block formats: the quantizers keep every weight within half a step of its value, and
// the kernels of every instruction set decode arbitrary block bytes (as llama.cpp's quantizers
// may write them) exactly as the byte-by-byte double-precision reference does.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "inference/quant/fp16.h"
#include "inference/quant/gguf_blocks.h"
#include "inference/quant/quant_matmul.h"
#include "inference/quant/quant_reference.h"
#include "quant_test_util.h"

namespace hearth {
namespace {

constexpr QuantFormat kGgufFormats[] = {QuantFormat::kQ8_0, QuantFormat::kQ4_0, QuantFormat::kQ4_1, QuantFormat::kQ4_K,
                                        QuantFormat::kQ5_K, QuantFormat::kQ6_K, QuantFormat::kF16,  QuantFormat::kBF16};

double half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return fp16_to_float(h);
}

// The quantization step that applies to weight i of the block at p (stored scales, in double),
// and the offset the code is counted from, so a bound can be stated per weight.
double step_of(QuantFormat f, const uint8_t* p, int64_t i) {
  switch (f) {
    case QuantFormat::kQ8_0:
    case QuantFormat::kQ4_0:
    case QuantFormat::kQ4_1: return half_at(p);
    case QuantFormat::kQ4_K:
    case QuantFormat::kQ5_K: {
      int sc, m;
      gguf::k_scale_min(p + 4, static_cast<int>(i / 32), sc, m);
      return half_at(p) * sc;
    }
    case QuantFormat::kQ6_K: return half_at(p + 208) * static_cast<int8_t>(p[192 + i / 16]);
    default: return 0.0;
  }
}

// Rows of varied character: Gaussian with outliers, all positive, all negative, constant, zero.
at::Tensor test_rows(int64_t cols, at::Generator& gen) {
  at::Tensor w = test::random_weight(6, cols, gen);
  w[1] = w[1].abs();
  w[2] = -w[2].abs() - 0.5;
  w[3].fill_(0.37);
  w[4].zero_();
  w[5] = w[5] * 1e-4;  // tiny: scales near fp16's subnormal range
  return w;
}

TEST(GgufBlocks, QuantizersKeepEveryWeightWithinHalfAStep) {
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat f : kGgufFormats) {
    const int64_t cols = 512;
    at::Tensor w = test_rows(cols, gen);
    QuantizedMatrix m = quantize_matrix(w, f);
    at::Tensor ref = reference_dequantize(m);
    const PackedView v = m.view();
    const double* r = ref.data_ptr<double>();
    const float* x = w.data_ptr<float>();
    double worst = 0.0;
    for (int64_t row = 0; row < m.rows; ++row) {
      for (int64_t c = 0; c < cols; ++c) {
        const double err = std::fabs(r[row * cols + c] - x[row * cols + c]);
        double bound;
        if (f == QuantFormat::kF16) {
          bound = std::ldexp(std::fabs(x[row * cols + c]), -11) + 1e-7;  // half an ulp of fp16 (subnormals below)
        } else if (f == QuantFormat::kBF16) {
          bound = std::ldexp(std::fabs(x[row * cols + c]), -8);
        } else {
          const uint8_t* block = v.codes + row * v.row_bytes + (c / m.block_size()) * quant_block_bytes(f);
          // Half a step, plus float rounding of the code choice and of scale * code - offset.
          bound = 0.5 * std::fabs(step_of(f, block, c % m.block_size())) * (1 + 1e-5) + 1e-6 * std::fabs(x[row * cols + c]) + 1e-9;
        }
        worst = std::max(worst, err / bound);
        ASSERT_LE(err, bound) << quant_format_name(f) << " row " << row << " col " << c << " value " << x[row * cols + c]
                              << " decoded " << r[row * cols + c];
      }
    }
    // Zero rows stay exactly zero.
    EXPECT_EQ(ref[4].abs().max().item<double>(), 0.0) << quant_format_name(f);
  }
}

TEST(GgufBlocks, ReferenceMatchesDequantizeRow) {
  // dequantize_row_* (what the scalar kernels run) against the byte-by-byte double reference.
  auto gen = make_generator(test::fresh_seed());
  test::KernelGuard guard;
  force_kernel_isa(KernelIsa::kScalar);
  for (QuantFormat f : kGgufFormats) {
    QuantizedMatrix m = quantize_matrix(test::random_weight(7, 768, gen), f);
    const at::Tensor ref = reference_dequantize(m);
    const double err = (dequantize_matrix(m).to(at::kDouble) - ref).abs().max().item<double>();
    EXPECT_LE(err, 1e-6 * ref.abs().max().item<double>()) << quant_format_name(f);
  }
}

// Blocks of random bytes with random finite fp16 scales: every bit pattern llama.cpp may write
// (negative Q6_K scales, any 6-bit scale and min, any high bits), not only what ours produce.
QuantizedMatrix random_block_matrix(QuantFormat f, int64_t rows, int64_t cols, at::Generator& gen) {
  QuantizedMatrix m;
  m.format = f;
  m.rows = rows;
  m.cols = cols;
  const int64_t nb = m.blocks_per_row(), bb = quant_block_bytes(f);
  m.codes = at::randint(0, 256, {rows, nb * bb}, gen, at::kByte);
  uint8_t* p = m.codes.data_ptr<uint8_t>();
  at::Tensor scales = at::rand({rows * nb * 2}, gen) * 0.02 + 1e-4;  // positive, normal fp16 range
  const float* s = scales.data_ptr<float>();
  auto put = [&](uint8_t* at, float value) {
    const uint16_t h = f == QuantFormat::kBF16 ? static_cast<uint16_t>([&] { uint32_t b; std::memcpy(&b, &value, 4); return b >> 16; }())
                                               : float_to_fp16(value);
    std::memcpy(at, &h, 2);
  };
  for (int64_t b = 0; b < rows * nb; ++b) {
    uint8_t* block = p + b * bb;
    switch (f) {
      case QuantFormat::kQ8_0:
      case QuantFormat::kQ4_0: put(block, s[2 * b]); break;
      case QuantFormat::kQ4_1:
      case QuantFormat::kQ4_K:
      case QuantFormat::kQ5_K:
        put(block, s[2 * b]);
        put(block + 2, s[2 * b + 1] - 0.01f);  // offsets of either sign
        break;
      case QuantFormat::kQ6_K: put(block + 208, s[2 * b]); break;
      default: put(block, s[2 * b] - 0.01f); break;  // f16 / bf16 values of either sign
    }
  }
  return m;
}

TEST(GgufBlocks, KernelsDecodeArbitraryBlockBytesLikeTheReference) {
  test::KernelGuard guard;
  const uint64_t seed = test::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  auto gen = make_generator(seed);
  for (QuantFormat f : kGgufFormats) {
    const int64_t cols = f == QuantFormat::kF16 || f == QuantFormat::kBF16 ? 173 : 512;
    QuantizedMatrix m = random_block_matrix(f, 37, cols, gen);
    const at::Tensor ref = reference_dequantize(m);
    const at::Tensor x = at::randn({cols}, gen);
    const at::Tensor xd = x.to(at::kDouble);
    const at::Tensor y_ref = at::mv(ref, xd);
    // Float error of decoding (scale * code - offset) and of the dot product, relative to the terms.
    const at::Tensor mag = at::mv(test::weight_magnitude(m, ref, 4e-5), xd.abs());
    for (KernelIsa isa : test::supported_isas()) {
      force_kernel_isa(isa);
      const std::string what = std::string(quant_format_name(f)) + " " + kernel_isa_name(isa);
      const double tile_err = (dequantize_matrix(m).to(at::kDouble) - ref).abs().max().item<double>();
      EXPECT_LE(tile_err, 1e-6 * ref.abs().max().item<double>()) << what;
      at::Tensor y = at::empty({m.rows});
      quant_matvec(m, x.data_ptr<float>(), y.data_ptr<float>(), ActivationRounding::kExact);
      const at::Tensor err = (y.to(at::kDouble) - y_ref).abs();
      EXPECT_TRUE((err <= mag * 4e-5 + 1e-9).all().item<bool>()) << what << ": max error " << err.max().item<double>();
    }
  }
}

}  // namespace
}  // namespace hearth
