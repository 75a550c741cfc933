#include "inference/decode_plan.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "inference/decode_kernels.h"
#include "inference/quant/quant.h"

namespace hearth {

// One weight of a product: its packed view, optional bias, where its output goes, and which of
// the product's prepared inputs it reads.
struct DecodePlan::Matrix {
  const Linear* linear = nullptr;
  PackedView view;
  const float* bias = nullptr;
  float* out = nullptr;
  size_t input = 0;
  // The adapter's low-rank update for this step (rank 0: none) and its A x.
  LowRankUpdate lora;
  std::vector<float> lora_u;
};

// Matrix-vector products that share one input vector (q, k and v; gate and up; ...), split into
// row chunks that the pool's threads claim one at a time.
struct DecodePlan::Product {
  // The input once per weight format: padded to whole blocks, and as int8 when the kernels take it.
  struct Input {
    QuantFormat format;
    PackedView view;  // of the first matrix with this format: the activation layout's geometry
    std::vector<float> padded;
    Q8Activation q8;
    bool int8 = false;
  };
  struct Chunk {
    size_t matrix;
    int64_t r0, r1;
  };
  const float* source = nullptr;
  int64_t cols = 0;
  std::vector<Input> inputs;
  std::vector<Matrix> matrices;
  std::vector<Chunk> chunks;
  // This step's adapter work: A x per adapted matrix (with the base chunks), then B u in chunks.
  std::vector<size_t> adapted;
  std::vector<Chunk> lora_chunks;
};

struct DecodePlan::Layer {
  const DecoderLayer* source;
  Product qkv, o, gate_up, down;
};

namespace {

// Rows per chunk: a multiple of the kernels' 4-row blocks, sized so every thread gets about
// eight chunks of the product (balance when one core is slowed), each 16-256 KiB of packed
// weights (long enough streams for the prefetcher, few enough claims).
int64_t chunk_rows(const QuantizedMatrix& m, int64_t product_bytes, int threads) {
  const int64_t row_bytes = std::max<int64_t>(1, static_cast<int64_t>(m.storage_bytes()) / std::max<int64_t>(1, m.rows));
  const int64_t target = std::clamp<int64_t>(product_bytes / (8 * threads), 16 << 10, 256 << 10);
  return std::max<int64_t>(4, target / row_bytes / 4 * 4);
}

void add_matrix(DecodePlan::Product& p, const Linear& linear, float* out) {
  const QuantizedMatrix& w = *linear.quantized_weight();
  DecodePlan::Matrix m;
  m.linear = &linear;
  m.view = w.view();
  m.bias = linear.bias().defined() ? linear.bias().data_ptr<float>() : nullptr;
  m.out = out;
  auto same_format = [&](const DecodePlan::Product::Input& in) { return in.format == w.format; };
  auto it = std::find_if(p.inputs.begin(), p.inputs.end(), same_format);
  m.input = static_cast<size_t>(it - p.inputs.begin());
  if (it == p.inputs.end()) p.inputs.push_back({w.format, m.view, {}, {}, false});
  p.matrices.push_back(m);
}

DecodePlan::Product make_product(const float* source, const std::vector<std::pair<const Linear*, float*>>& parts,
                                 int threads) {
  DecodePlan::Product p;
  p.source = source;
  p.cols = parts.front().first->in_features();
  int64_t bytes = 0;
  for (const auto& [linear, out] : parts) {
    add_matrix(p, *linear, out);
    bytes += static_cast<int64_t>(linear->quantized_weight()->storage_bytes());
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const QuantizedMatrix& w = *parts[i].first->quantized_weight();
    const int64_t step = chunk_rows(w, bytes, threads);
    for (int64_t r = 0; r < w.rows; r += step) p.chunks.push_back({i, r, std::min(w.rows, r + step)});
  }
  return p;
}

// Whether the plan can run `linear`'s adapter (none, or a plain low-rank update).
bool adapter_runs_in_plan(const Linear& linear) {
  LowRankUpdate unused;
  return !linear.adapter() || linear.adapter()->low_rank_update(unused);
}

// Reads each matrix's adapter for this step (adapters are switched per request) and lays out
// the step's adapter work.
void refresh_adapters(DecodePlan::Product& p) {
  p.adapted.clear();
  p.lora_chunks.clear();
  constexpr int64_t kLoraRowsPerChunk = 256;
  for (size_t i = 0; i < p.matrices.size(); ++i) {
    DecodePlan::Matrix& m = p.matrices[i];
    m.lora = {};
    if (!m.linear->adapter() || !m.linear->adapter()->low_rank_update(m.lora)) continue;
    m.lora_u.resize(m.lora.rank);
    p.adapted.push_back(i);
    for (int64_t r = 0; r < m.view.rows; r += kLoraRowsPerChunk)
      p.lora_chunks.push_back({i, r, std::min(m.view.rows, r + kLoraRowsPerChunk)});
  }
}

bool fp32_vector(const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.is_contiguous(); }

bool plan_supports(const Decoder& d) {
  // The step implements Llama's and Qwen2's blocks; other families keep the decoder's path.
  const Architecture arch = d.config().architecture;
  if (arch != Architecture::kLlama && arch != Architecture::kQwen2) return false;
  if (d.config().sliding_window > 0) return false;
  auto quantized = [](const Linear& l) {
    return l.is_quantized() && (!l.bias().defined() || fp32_vector(l.bias()));
  };
  for (const auto& layer : d.layers()) {
    for (const Linear* l : {&layer.q, &layer.k, &layer.v, &layer.o, &layer.gate, &layer.up, &layer.down})
      if (!quantized(*l)) return false;
    if (!fp32_vector(layer.attn_norm) || !fp32_vector(layer.mlp_norm)) return false;
  }
  return fp32_vector(d.final_norm_weight()) && d.rope().inverse_frequencies().is_contiguous();
}

}  // namespace

DecodePlan::~DecodePlan() = default;

std::unique_ptr<DecodePlan> DecodePlan::prepare(const Decoder& decoder, WorkerPool& pool) {
  if (!plan_supports(decoder)) return nullptr;
  return std::unique_ptr<DecodePlan>(new DecodePlan(decoder, pool));
}

DecodePlan::DecodePlan(const Decoder& decoder, WorkerPool& pool) : decoder_(decoder), pool_(pool) {
  const ModelConfig& c = decoder.config();
  const int64_t half = c.head_dim / 2;
  h_.resize(c.hidden_size);
  x_.resize(c.hidden_size);
  q_.resize(c.num_heads * c.head_dim);
  k_.resize(c.num_kv_heads * c.head_dim);
  v_.resize(c.num_kv_heads * c.head_dim);
  attn_.resize(c.num_heads * c.head_dim);
  o_.resize(c.hidden_size);
  gate_.resize(c.intermediate_size);
  up_.resize(c.intermediate_size);
  mlp_.resize(c.intermediate_size);
  down_.resize(c.hidden_size);
  cos_.resize(half);
  sin_.resize(half);
  const int threads = pool.threads();
  for (const DecoderLayer& l : decoder.layers()) {
    layers_.push_back({&l, make_product(x_.data(), {{&l.q, q_.data()}, {&l.k, k_.data()}, {&l.v, v_.data()}}, threads),
                       make_product(attn_.data(), {{&l.o, o_.data()}}, threads),
                       make_product(x_.data(), {{&l.gate, gate_.data()}, {&l.up, up_.data()}}, threads),
                       make_product(mlp_.data(), {{&l.down, down_.data()}}, threads)});
  }
  // The head's output pointer is set per step (the caller's logits).
  if (decoder.lm_head().is_quantized())
    head_ = std::make_unique<Product>(make_product(x_.data(), {{&decoder.lm_head(), nullptr}}, threads));
}

bool DecodePlan::can_step(const KVCache& cache) const {
  if (cache.dtype() != at::kFloat || cache.batch() != 1 || cache.length() >= cache.capacity()) return false;
  for (const Layer& l : layers_) {
    const DecoderLayer& s = *l.source;
    for (const Linear* p : {&s.q, &s.k, &s.v, &s.o, &s.gate, &s.up, &s.down})
      if (!adapter_runs_in_plan(*p)) return false;
  }
  return adapter_runs_in_plan(decoder_.lm_head());
}

void DecodePlan::run(Product& p) {
  const QuantKernelSet& k = active_kernels();
  for (Product::Input& in : p.inputs) {
    // Zeros past cols, so the kernels need no tail handling.
    in.padded.assign(in.view.blocks_per_row * quant_block_size(in.format), 0.0f);
    std::copy(p.source, p.source + p.cols, in.padded.begin());
    in.int8 = uses_int8_activations(k, in.format);
    if (in.int8) k.quantize_activation(in.view, in.padded.data(), in.q8);
  }
  refresh_adapters(p);
  const int64_t base_tasks = static_cast<int64_t>(p.chunks.size());
  pool_.for_each(base_tasks + static_cast<int64_t>(p.adapted.size()), [&](int64_t i) {
    if (i >= base_tasks) {  // an adapter's u = A x, from the unpadded input
      Matrix& m = p.matrices[p.adapted[i - base_tasks]];
      dense_rows(m.lora.a, p.cols, p.source, 0, m.lora.rank, 1.0f, false, m.lora_u.data());
      return;
    }
    const Product::Chunk& c = p.chunks[i];
    const Matrix& m = p.matrices[c.matrix];
    const Product::Input& in = p.inputs[m.input];
    if (in.int8) {
      k.matvec_q8_rows(m.view, in.q8, m.out, c.r0, c.r1);
    } else {
      k.matvec_rows(m.view, in.padded.data(), m.out, c.r0, c.r1);
    }
  });
  for (const Matrix& m : p.matrices)
    if (m.bias != nullptr)
      for (int64_t r = 0; r < m.view.rows; ++r) m.out[r] += m.bias[r];
  // y += s B u, after every u is ready.
  pool_.for_each(static_cast<int64_t>(p.lora_chunks.size()), [&](int64_t i) {
    const Product::Chunk& c = p.lora_chunks[i];
    const Matrix& m = p.matrices[c.matrix];
    dense_rows(m.lora.b, m.lora.rank, m.lora_u.data(), c.r0, c.r1, m.lora.scale, true, m.out);
  });
}

void DecodePlan::attention(int64_t layer, KVCache& cache, int64_t position) {
  const ModelConfig& c = decoder_.config();
  const int64_t d = c.head_dim, kv_heads = c.num_kv_heads, group = c.num_heads / kv_heads;
  rope_rows(q_.data(), c.num_heads, d, cos_.data(), sin_.data(), c.rope_interleaved);
  rope_rows(k_.data(), kv_heads, d, cos_.data(), sin_.data(), c.rope_interleaved);
  float* keys = cache.layer_keys(layer).data_ptr<float>();
  float* values = cache.layer_values(layer).data_ptr<float>();
  const int64_t head_stride = cache.capacity() * d;  // [1, kv_heads, capacity, d]
  for (int64_t h = 0; h < kv_heads; ++h) {
    std::copy_n(k_.data() + h * d, d, keys + h * head_stride + position * d);
    std::copy_n(v_.data() + h * d, d, values + h * head_stride + position * d);
  }
  const int64_t s = position + 1;
  const float scale = static_cast<float>(1.0 / std::sqrt(double(d)));
  pool_.for_each(kv_heads, [&](int64_t h) {
    thread_local std::vector<float> scores;
    scores.resize(group * s);
    attend_kv_head({q_.data() + h * group * d, keys + h * head_stride, d, values + h * head_stride, d, s, d, group, scale,
                    scores.data(), attn_.data() + h * group * d});
  });
}

void DecodePlan::step(int32_t token, KVCache& cache, float* logits) {
  require(can_step(cache), ErrorCode::kInternal, "DecodePlan::step: the plan cannot run this step");
  const ModelConfig& c = decoder_.config();
  const int64_t n = c.hidden_size, position = cache.length();
  const at::Tensor e = decoder_.embed(at::full({1}, int64_t(token), at::kLong));
  std::copy_n(e.data_ptr<float>(), n, h_.data());
  const float* inv_freq = decoder_.rope().inverse_frequencies().data_ptr<float>();
  for (size_t i = 0; i < cos_.size(); ++i) {
    const float angle = static_cast<float>(position) * inv_freq[i];  // as Rope::angles: in float
    cos_[i] = std::cos(angle);
    sin_[i] = std::sin(angle);
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    rms_norm_row(h_.data(), layer.source->attn_norm.data_ptr<float>(), n, c.rms_norm_eps, x_.data());
    run(layer.qkv);
    attention(static_cast<int64_t>(l), cache, position);
    run(layer.o);
    for (int64_t i = 0; i < n; ++i) h_[i] += o_[i];
    rms_norm_row(h_.data(), layer.source->mlp_norm.data_ptr<float>(), n, c.rms_norm_eps, x_.data());
    run(layer.gate_up);
    silu_mul_row(gate_.data(), up_.data(), c.intermediate_size, mlp_.data());
    run(layer.down);
    for (int64_t i = 0; i < n; ++i) h_[i] += down_[i];
  }
  cache.advance(1);
  rms_norm_row(h_.data(), decoder_.final_norm_weight().data_ptr<float>(), n, c.rms_norm_eps, x_.data());
  if (head_) {
    head_->matrices.front().out = logits;
    run(*head_);
    return;
  }
  // A dense head (fp32 / bf16): one ATen product into the caller's buffer.
  at::Tensor out = at::from_blob(logits, {decoder_.lm_head().out_features()}, at::kFloat);
  out.copy_(decoder_.lm_head().forward(at::from_blob(x_.data(), {1, n}, at::kFloat)).view({-1}));
}

}  // namespace hearth
