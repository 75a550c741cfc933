#include "inference/decode_plan.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "core/error.h"
#include "inference/decode_kernels.h"
#include "inference/quant/quant.h"
#include "inference/quant/row_tiles.h"
#include "inference/split_table.h"

namespace hearth {

// From this many rows a pass is a prompt's: its row-wise steps run on the pool and its products
// take finer chunks. Fewer (a decode step's sequences) stay on the calling thread.
constexpr int64_t kManyRows = 16;

// One weight of a product: its packed view, optional bias, where its output goes, and which of
// the product's prepared inputs it reads.
struct DecodePlan::Matrix {
  const Linear* linear = nullptr;
  PackedView view;
  const RowTiles* tiles = nullptr;  // the weight's row tiles, if it carries them
  const float* bias = nullptr;
  std::vector<float>* out = nullptr;  // row s: sequence s's output (view.rows floats); null: ys set by the caller
  size_t input = 0;
  std::vector<float*> ys;             // this step's output row of each sequence
  // This step's adapter of each sequence (rank 0: none), its A x (u_stride floats per sequence)
  // and which of the product's A x tasks computes it (-1: none).
  std::vector<LowRankUpdate> lora;
  std::vector<float> lora_u;
  int64_t u_stride = 0;
  std::vector<int64_t> u_task;
};

// Matrix-vector products that share one input (q, k and v; gate and up; ...), split into row
// chunks that the pool's threads claim one at a time; each chunk runs for every sequence.
struct DecodePlan::Product {
  // The input once per weight format (and row layout): padded to whole blocks, and as int8 when
  // the kernels take it, in the layout of the kernel that reads it (DecodePlan::Activations,
  // the one of its slot).
  struct Input {
    QuantFormat format;
    bool has_tiles = false;  // its matrices carry row tiles
    PackedView view;  // of the first matrix with this format: the activation layout's geometry
    bool int8 = false;
    bool tiled = false;  // this step reads the row tiles (int8 too)
    int64_t padded_cols() const { return view.blocks_per_row * quant_block_size(format); }
  };
  struct Chunk {
    size_t matrix;
    int64_t r0, r1;
    int64_t seq = 0;  // adapter work only: whose
  };
  const std::vector<float>* source = nullptr;  // row s: sequence s's input (cols floats)
  int64_t cols = 0;
  std::vector<Input> inputs;
  std::vector<Matrix> matrices;
  std::vector<Chunk> chunks;
  // The same rows cut finer for a pass of many rows (a prompt), where even one tile's rows are
  // work enough: small products (o, down) then split evenly over the threads.
  std::vector<Chunk> prompt_chunks;
  const std::vector<Chunk>& chunks_for(int64_t seqs) const { return seqs >= kManyRows ? prompt_chunks : chunks; }
  // This step's u = A x per adapted (matrix, sequence): the first tasks of the product's phase,
  // each raising its flag when done; a base chunk then adds s B u to its own rows.
  std::vector<Chunk> lora_a;
  std::vector<std::atomic<bool>> u_ready;
  std::vector<LowRankUpdate> routed_updates;  // each routing row's update of one matrix, while it is read
};

// One input slot's rows as the kernels read them. The products run one after another, so every
// product's input i uses slot i: a prompt's chunk of rows needs one set, not one per layer.
struct DecodePlan::Activations {
  std::vector<float> padded;  // seqs rows of padded_cols
  std::vector<Q8Activation> q8;
  std::vector<const Q8Activation*> q8_rows;
  std::vector<Q8Blocks> blocks;
  std::vector<const Q8Blocks*> block_rows;
};

struct DecodePlan::Layer {
  const DecoderLayer* source;
  Product qkv, o, gate_up, down;
};

namespace {

// Rows per chunk: whole passes of row tiles (the row-major kernels' 4-row blocks too), sized so every thread gets about
// eight chunks of the product (balance when one core is slowed), each 16-256 KiB of packed
// weights (long enough streams for the prefetcher, few enough claims).
int64_t chunk_rows(const QuantizedMatrix& m, int64_t product_bytes, int threads) {
  const int64_t row_bytes = std::max<int64_t>(1, static_cast<int64_t>(m.storage_bytes()) / std::max<int64_t>(1, m.rows));
  const int64_t target = std::clamp<int64_t>(product_bytes / (8 * threads), 16 << 10, 256 << 10);
  return std::max<int64_t>(kTilePassRows, target / row_bytes / kTilePassRows * kTilePassRows);
}

void add_matrix(DecodePlan::Product& p, const Linear& linear, std::vector<float>* out) {
  const QuantizedMatrix& w = *linear.quantized_weight();
  DecodePlan::Matrix m;
  m.linear = &linear;
  m.view = w.view();
  m.tiles = w.tiles.get();
  m.bias = linear.bias().defined() ? linear.bias().data_ptr<float>() : nullptr;
  m.out = out;
  auto same_format = [&](const DecodePlan::Product::Input& in) {
    return in.format == w.format && in.has_tiles == (m.tiles != nullptr);
  };
  auto it = std::find_if(p.inputs.begin(), p.inputs.end(), same_format);
  m.input = static_cast<size_t>(it - p.inputs.begin());
  if (it == p.inputs.end()) {
    DecodePlan::Product::Input in;
    in.format = w.format;
    in.has_tiles = m.tiles != nullptr;
    in.view = m.view;
    p.inputs.push_back(std::move(in));
  }
  p.matrices.push_back(std::move(m));
}

DecodePlan::Product make_product(const std::vector<float>* source,
                                 const std::vector<std::pair<const Linear*, std::vector<float>*>>& parts, int threads) {
  DecodePlan::Product p;
  p.source = source;
  p.cols = parts.front().first->in_features();
  int64_t bytes = 0;
  for (const auto& [linear, out] : parts) {
    add_matrix(p, *linear, out);
    bytes += static_cast<int64_t>(linear->quantized_weight()->storage_bytes());
  }
  int64_t rows = 0;
  for (const auto& part : parts) rows += part.first->quantized_weight()->rows;
  const int64_t prompt_step = std::max<int64_t>(kTileRows, rows / (16 * threads) / kTileRows * kTileRows);
  for (size_t i = 0; i < parts.size(); ++i) {
    const QuantizedMatrix& w = *parts[i].first->quantized_weight();
    const int64_t step = chunk_rows(w, bytes, threads);
    for (int64_t r = 0; r < w.rows; r += step) p.chunks.push_back({i, r, std::min(w.rows, r + step)});
    for (int64_t r = 0; r < w.rows; r += prompt_step) p.prompt_chunks.push_back({i, r, std::min(w.rows, r + prompt_step)});
  }
  return p;
}

// Each sequence's plain low-rank update of `linear` for this step (rank 0: none); false when an
// adapter on it is not one for some sequence.
bool row_updates(const Linear& linear, int64_t seqs, LowRankUpdate* out) {
  if (!linear.adapter()) {
    std::fill_n(out, seqs, LowRankUpdate{});
    return true;
  }
  return linear.adapter()->row_low_rank_updates(seqs, out);
}

// Reads each matrix's adapters for this step (adapters are switched per request) and lays out
// the step's adapter work. Row s takes routing row routing[s]'s adapters, of the `routed` rows
// the routing holds.
void refresh_adapters(DecodePlan::Product& p, const std::vector<int64_t>& routing, int64_t routed) {
  const int64_t seqs = static_cast<int64_t>(routing.size());
  p.lora_a.clear();
  p.routed_updates.resize(routed);
  for (size_t i = 0; i < p.matrices.size(); ++i) {
    DecodePlan::Matrix& m = p.matrices[i];
    require(row_updates(*m.linear, routed, p.routed_updates.data()), ErrorCode::kInternal,
            "DecodePlan: an adapter stopped being a plain low-rank update during a step");
    m.lora.resize(seqs);
    for (int64_t s = 0; s < seqs; ++s) m.lora[s] = p.routed_updates[routing[s]];
    m.u_stride = 0;
    for (const LowRankUpdate& u : m.lora) m.u_stride = std::max(m.u_stride, u.rank);
    m.lora_u.resize(seqs * m.u_stride);
    m.u_task.assign(seqs, -1);
    for (int64_t s = 0; s < seqs; ++s) {
      if (m.lora[s].rank == 0) continue;
      m.u_task[s] = static_cast<int64_t>(p.lora_a.size());
      p.lora_a.push_back({i, 0, m.lora[s].rank, s});
    }
  }
  if (p.u_ready.size() < p.lora_a.size()) p.u_ready = std::vector<std::atomic<bool>>(p.lora_a.size());
  for (size_t i = 0; i < p.lora_a.size(); ++i) p.u_ready[i].store(false, std::memory_order_relaxed);
}

bool fp32_vector(const at::Tensor& t) { return t.scalar_type() == at::kFloat && t.is_contiguous(); }

bool plan_supports(const Decoder& d) {
  // The step implements Llama's and Qwen2's blocks; other families keep the decoder's path.
  const Architecture arch = d.config().architecture;
  // Phi-3 is Llama's block once its fused projections are split (partial rotary and longrope's
  // scaled angles are the step's too).
  if (arch != Architecture::kLlama && arch != Architecture::kQwen2 && arch != Architecture::kPhi3) return false;
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
  const int threads = pool.threads();
  for (const DecoderLayer& l : decoder.layers()) {
    layers_.push_back({&l, make_product(&x_, {{&l.q, &q_}, {&l.k, &k_}, {&l.v, &v_}}, threads),
                       make_product(&attn_, {{&l.o, &o_}}, threads),
                       make_product(&x_, {{&l.gate, &gate_}, {&l.up, &up_}}, threads),
                       make_product(&mlp_, {{&l.down, &down_}}, threads)});
  }
  // The head writes straight into the caller's logits (set per step).
  if (decoder.lm_head().is_quantized())
    head_ = std::make_unique<Product>(make_product(&x_, {{&decoder.lm_head(), nullptr}}, threads));
  if (decoder.lm_head().is_split()) {
    const SplitTable& t = *decoder.lm_head().split_weight();
    split_head_parts_ = {Linear::quantized(t.frequent), Linear::quantized(t.rare)};
    head_ = std::make_unique<Product>(
        make_product(&x_, {{&split_head_parts_[0], nullptr}, {&split_head_parts_[1], nullptr}}, threads));
  }
  size_t slots = head_ ? head_->inputs.size() : 0;
  for (const Layer& l : layers_)
    for (const Product* p : {&l.qkv, &l.o, &l.gate_up, &l.down}) slots = std::max(slots, p->inputs.size());
  activations_.resize(slots);
  resize_for(1);
}

void DecodePlan::resize_for(int64_t seqs) {
  if (seqs <= seqs_) return;
  const ModelConfig& c = decoder_.config();
  const int64_t n = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  for (auto [buffer, width] : {std::pair{&h_, n}, {&x_, n}, {&q_, q}, {&k_, kv}, {&v_, kv}, {&attn_, q}, {&o_, n},
                               {&gate_, c.intermediate_size}, {&up_, c.intermediate_size}, {&mlp_, c.intermediate_size},
                               {&down_, n}, {&cos_, c.rotary_dim() / 2}, {&sin_, c.rotary_dim() / 2}})
    buffer->resize(seqs * width);
  seqs_ = seqs;
}

bool DecodePlan::can_run(const std::vector<KVCache*>& caches, const std::vector<int64_t>& new_positions,
                         int64_t adapter_rows) const {
  if (caches.empty() || caches.size() != new_positions.size()) return false;
  for (size_t i = 0; i < caches.size(); ++i) {
    const KVCache* cache = caches[i];
    if (cache == nullptr || cache->dtype() != at::kFloat || cache->batch() != 1 || new_positions[i] < 1 ||
        cache->length() + new_positions[i] > cache->capacity())
      return false;
    // Past the context (longrope's short factors end there) the decoder's path refuses the position.
    if (cache->length() + new_positions[i] > decoder_.config().context_length()) return false;
  }
  std::vector<LowRankUpdate> updates(adapter_rows);
  for (const Layer& l : layers_) {
    const DecoderLayer& s = *l.source;
    for (const Linear* p : {&s.q, &s.k, &s.v, &s.o, &s.gate, &s.up, &s.down})
      if (!row_updates(*p, adapter_rows, updates.data())) return false;
  }
  return row_updates(decoder_.lm_head(), adapter_rows, updates.data());
}

bool DecodePlan::can_step(const std::vector<KVCache*>& caches) const {
  return can_run(caches, std::vector<int64_t>(caches.size(), 1), static_cast<int64_t>(caches.size()));
}

bool DecodePlan::prompt_kernels_ready() const {
  // Without int8-activation kernels a prompt's rows would each be a float GEMV re-reading the
  // weights; the decoder's dequantized-tile GEMMs are faster there.
  const QuantKernelSet& k = active_kernels();
  auto per_row = [&](const Product& p) {
    return std::all_of(p.inputs.begin(), p.inputs.end(), [&](const Product::Input& in) { return uses_int8_activations(k, in.format); });
  };
  for (const Layer& l : layers_)
    if (!per_row(l.qkv) || !per_row(l.o) || !per_row(l.gate_up) || !per_row(l.down)) return false;
  return !head_ || per_row(*head_);
}

bool DecodePlan::can_prefill(KVCache& cache, int64_t tokens) const {
  return prompt_kernels_ready() && can_run({&cache}, {tokens}, 1);
}

bool DecodePlan::can_prefill(const std::vector<Prompt>& prompts) const {
  std::vector<KVCache*> caches;
  std::vector<int64_t> lengths;
  int64_t rows = 0;
  for (const Prompt& p : prompts) {
    if (std::find(caches.begin(), caches.end(), p.cache) != caches.end()) return false;  // one prompt per cache
    caches.push_back(p.cache);
    lengths.push_back(static_cast<int64_t>(p.tokens.size()));
    rows += lengths.back();
  }
  return prompt_kernels_ready() && can_run(caches, lengths, rows);
}

template <typename F>
void DecodePlan::for_rows(int64_t seqs, const F& fn) {
  if (seqs < kManyRows) {  // a phase's wake-up would cost more than the rows' work
    for (int64_t s = 0; s < seqs; ++s) fn(s);
    return;
  }
  // A row's work is a microsecond or less: tasks of one row each spent their time claiming.
  // Four ranges per thread still let a thread whose core is shared take fewer.
  const int64_t tasks = std::min<int64_t>(seqs, 4 * pool_.threads()), per_task = (seqs + tasks - 1) / tasks;
  pool_.for_each(tasks, [&](int64_t t) {
    for (int64_t s = t * per_task; s < std::min(seqs, (t + 1) * per_task); ++s) fn(s);
  });
}

void DecodePlan::run(Product& p, const std::vector<int64_t>& routing) {
  const int64_t seqs = static_cast<int64_t>(routing.size());
  const QuantKernelSet& k = active_kernels();
  for (size_t i = 0; i < p.inputs.size(); ++i) {
    Product::Input& in = p.inputs[i];
    Activations& a = activations_[i];
    const int64_t pc = in.padded_cols();
    a.padded.resize(seqs * pc);
    in.int8 = uses_int8_activations(k, in.format);
    in.tiled = in.int8 && in.has_tiles && k.matmul_row_tiles != nullptr;
    // Rows are only ever added: each keeps its buffers for the next product.
    if (in.tiled && int64_t(a.blocks.size()) < seqs) {
      a.blocks.resize(seqs);
      a.block_rows.resize(seqs);
    }
    if (in.int8 && !in.tiled && int64_t(a.q8.size()) < seqs) {
      a.q8.resize(seqs);
      a.q8_rows.resize(seqs);
    }
    for_rows(seqs, [&](int64_t s) {
      // Zeros past cols, so the kernels need no tail handling.
      float* row = a.padded.data() + s * pc;
      std::copy_n(p.source->data() + s * p.cols, p.cols, row);
      std::fill(row + p.cols, row + pc, 0.0f);
      if (in.tiled) {
        k.quantize_blocks(in.view, row, a.blocks[s]);
        a.block_rows[s] = &a.blocks[s];
      } else if (in.int8) {
        k.quantize_activation(in.view, row, a.q8[s]);
        a.q8_rows[s] = &a.q8[s];
      }
    });
  }
  for (Matrix& m : p.matrices) {
    if (m.out == nullptr) continue;  // the head: the caller's logits
    m.ys.resize(seqs);
    for (int64_t s = 0; s < seqs; ++s) m.ys[s] = m.out->data() + s * m.view.rows;
  }
  refresh_adapters(p, routing, routed_rows_);
  // One phase: the adapters' u = A x first (the pool hands out tasks in index order, so each is
  // under way before any chunk that waits for it), then the base chunks, each finishing its rows
  // with the bias and s B u in that order.
  const int64_t a_tasks = static_cast<int64_t>(p.lora_a.size());
  const std::vector<Product::Chunk>& chunks = p.chunks_for(seqs);
  pool_.for_each(a_tasks + static_cast<int64_t>(chunks.size()), [&](int64_t i) {
    if (i < a_tasks) {  // from the unpadded input
      const Product::Chunk& c = p.lora_a[i];
      Matrix& m = p.matrices[c.matrix];
      const LowRankUpdate& u = m.lora[c.seq];
      float* out = m.lora_u.data() + c.seq * m.u_stride;
      dense_rows_fp16(u.a_fp16, p.cols, p.source->data() + c.seq * p.cols, 0, c.r1, u.a_fp16_scale, false, out);
      p.u_ready[i].store(true, std::memory_order_release);
      return;
    }
    const Product::Chunk& c = chunks[i - a_tasks];
    Matrix& m = p.matrices[c.matrix];
    const Product::Input& in = p.inputs[m.input];
    const Activations& a = activations_[m.input];
    // The adapters' B rows of this chunk come from DRAM (8 adapters: 70 MB a step on Qwen2.5-0.5B);
    // fetched while the base product computes, they are in L2 when s B u reads them.
    for (int64_t s = 0; s < seqs; ++s)
      if (m.u_task[s] >= 0) prefetch_low_rank_b(m.lora[s], c.r0, c.r1);
    if (in.tiled) {
      k.matmul_row_tiles(*m.tiles, a.block_rows.data(), seqs, m.ys.data(), c.r0 / kTileRows,
                         (c.r1 + kTileRows - 1) / kTileRows);
    } else if (in.int8) {
      k.matmul_q8_rows(m.view, a.q8_rows.data(), seqs, m.ys.data(), c.r0, c.r1);
    } else {
      for (int64_t s = 0; s < seqs; ++s) k.matvec_rows(m.view, a.padded.data() + s * in.padded_cols(), m.ys[s], c.r0, c.r1);
    }
    for (int64_t s = 0; s < seqs; ++s) {
      if (m.bias != nullptr)
        for (int64_t r = c.r0; r < c.r1; ++r) m.ys[s][r] += m.bias[r];
      if (m.u_task[s] < 0) continue;
      while (!p.u_ready[m.u_task[s]].load(std::memory_order_acquire)) std::this_thread::yield();
      const LowRankUpdate& u = m.lora[s];
      const float* us = m.lora_u.data() + s * m.u_stride;
      dense_cols_fp16(u.b_tiles_fp16, u.rank, us, c.r0, c.r1, u.scale * u.b_fp16_scale, m.ys[s]);
    }
  });
}

void DecodePlan::attention(int64_t layer, const std::vector<PassRow>& rows) {
  const ModelConfig& c = decoder_.config();
  const int64_t d = c.head_dim, kv_heads = c.num_kv_heads, group = c.num_heads / kv_heads, rot = c.rotary_dim(), half = rot / 2;
  const int64_t seqs = static_cast<int64_t>(rows.size()), q_width = c.num_heads * d, kv_width = kv_heads * d;
  // Every row's key and value are in the cache before any row attends: a prompt's row t reads
  // the rows before it in this pass.
  for_rows(seqs, [&](int64_t s) {
    float* q = q_.data() + s * q_width;
    float* k = k_.data() + s * kv_width;
    rope_rows(q, c.num_heads, d, rot, cos_.data() + s * half, sin_.data() + s * half, c.rope_interleaved);
    rope_rows(k, kv_heads, d, rot, cos_.data() + s * half, sin_.data() + s * half, c.rope_interleaved);
    KVCache& cache = *rows[s].cache;
    float* keys = cache.layer_keys(layer).data_ptr<float>();
    float* values = cache.layer_values(layer).data_ptr<float>();
    const int64_t head_stride = cache.capacity() * d, position = rows[s].position;  // [1, kv_heads, capacity, d]
    for (int64_t h = 0; h < kv_heads; ++h) {
      std::copy_n(k + h * d, d, keys + h * head_stride + position * d);
      std::copy_n(v_.data() + s * kv_width + h * d, d, values + h * head_stride + position * d);
    }
  });
  const float scale = static_cast<float>(1.0 / std::sqrt(double(d)));
  pool_.for_each(seqs * kv_heads, [&](int64_t i) {
    const int64_t s = i / kv_heads, h = i % kv_heads;
    KVCache& cache = *rows[s].cache;
    const int64_t head_stride = cache.capacity() * d, length = rows[s].position + 1;
    const float* keys = cache.layer_keys(layer).data_ptr<float>() + h * head_stride;
    const float* values = cache.layer_values(layer).data_ptr<float>() + h * head_stride;
    thread_local std::vector<float> scores;
    scores.resize(group * length);
    attend_kv_head({q_.data() + s * q_width + h * group * d, keys, d, values, d, length, d, group, scale, scores.data(),
                    attn_.data() + s * q_width + h * group * d});
  });
}

void DecodePlan::layers_pass(const std::vector<int32_t>& tokens, const std::vector<PassRow>& rows) {
  const int64_t seqs = static_cast<int64_t>(tokens.size());
  resize_for(seqs);
  routing_.clear();
  for (const PassRow& row : rows) routing_.push_back(row.routing);
  const ModelConfig& c = decoder_.config();
  const int64_t n = c.hidden_size, half = c.rotary_dim() / 2;
  const float scale = static_cast<float>(decoder_.rope().attention_factor());  // longrope's; 1 otherwise
  const at::Tensor e = decoder_.embed(at::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), at::kLong));
  std::copy_n(e.contiguous().data_ptr<float>(), seqs * n, h_.data());
  const float* inv_freq = decoder_.rope().inverse_frequencies().data_ptr<float>();
  for (int64_t s = 0; s < seqs; ++s) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(rows[s].position) * inv_freq[i];  // as Rope::angles: in float
      cos_[s * half + i] = std::cos(angle) * scale;
      sin_[s * half + i] = std::sin(angle) * scale;
    }
  }
  auto norm_rows = [&](const at::Tensor& weight) {
    for_rows(seqs, [&](int64_t s) { rms_norm_row(h_.data() + s * n, weight.data_ptr<float>(), n, c.rms_norm_eps, x_.data() + s * n); });
  };
  auto add_to_residual = [&](const std::vector<float>& delta) {
    for_rows(seqs, [&](int64_t s) {
      for (int64_t i = s * n; i < (s + 1) * n; ++i) h_[i] += delta[i];
    });
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& layer = layers_[l];
    norm_rows(layer.source->attn_norm);
    run(layer.qkv, routing_);
    attention(static_cast<int64_t>(l), rows);
    run(layer.o, routing_);
    add_to_residual(o_);
    norm_rows(layer.source->mlp_norm);
    run(layer.gate_up, routing_);
    for_rows(seqs, [&](int64_t s) {
      const int64_t off = s * c.intermediate_size;
      silu_mul_row(gate_.data() + off, up_.data() + off, c.intermediate_size, mlp_.data() + off);
    });
    run(layer.down, routing_);
    add_to_residual(down_);
  }
}

void DecodePlan::step(const std::vector<int32_t>& tokens, const std::vector<KVCache*>& caches,
                      const std::vector<float*>& logits) {
  const int64_t seqs = static_cast<int64_t>(tokens.size());
  require(caches.size() == tokens.size() && logits.size() == tokens.size(), ErrorCode::kInternal,
          "DecodePlan::step: one cache and one logits buffer per token");
  require(can_step(caches), ErrorCode::kInternal, "DecodePlan::step: the plan cannot run this step");
  std::vector<PassRow> rows;
  for (KVCache* cache : caches) rows.push_back({cache, cache->length(), static_cast<int64_t>(rows.size())});
  routed_rows_ = seqs;
  layers_pass(tokens, rows);
  for (KVCache* cache : caches) cache->advance(1);
  const ModelConfig& c = decoder_.config();
  const int64_t n = c.hidden_size;
  for (int64_t s = 0; s < seqs; ++s)
    rms_norm_row(h_.data() + s * n, decoder_.final_norm_weight().data_ptr<float>(), n, c.rms_norm_eps, x_.data() + s * n);
  head(routing_, logits);
}

void DecodePlan::prefill(const std::vector<int32_t>& tokens, KVCache& cache, float* logits) {
  require(can_prefill(cache, static_cast<int64_t>(tokens.size())), ErrorCode::kInternal,
          "DecodePlan::prefill: the plan cannot run this prompt");
  prefill_rows({Prompt{tokens, &cache, logits}}, /*shared_routing=*/true);
}

void DecodePlan::prefill(const std::vector<Prompt>& prompts) {
  require(can_prefill(prompts), ErrorCode::kInternal, "DecodePlan::prefill: the plan cannot run these prompts");
  prefill_rows(prompts, /*shared_routing=*/false);
}

void DecodePlan::prefill_rows(const std::vector<Prompt>& prompts, bool shared_routing) {
  std::vector<int32_t> tokens;
  std::vector<PassRow> rows;
  std::vector<int64_t> last_row;
  for (const Prompt& p : prompts) {
    for (size_t t = 0; t < p.tokens.size(); ++t) {
      tokens.push_back(p.tokens[t]);
      rows.push_back({p.cache, p.cache->length() + static_cast<int64_t>(t), shared_routing ? 0 : static_cast<int64_t>(rows.size())});
    }
    last_row.push_back(static_cast<int64_t>(rows.size()) - 1);
  }
  const ModelConfig& c = decoder_.config();
  const int64_t n = c.hidden_size, total = static_cast<int64_t>(rows.size());
  routed_rows_ = shared_routing ? 1 : total;
  // Each prompt's last row of the residual stream, kept when its pass ends for the head.
  std::vector<float> last_h(prompts.size() * n);
  for (int64_t from = 0; from < total; from += kPromptChunkRows) {
    const int64_t to = std::min(total, from + kPromptChunkRows);
    layers_pass({tokens.begin() + from, tokens.begin() + to}, {rows.begin() + from, rows.begin() + to});
    for (size_t i = 0; i < prompts.size(); ++i)
      if (last_row[i] >= from && last_row[i] < to) std::copy_n(h_.data() + (last_row[i] - from) * n, n, last_h.data() + i * n);
  }
  for (const Prompt& p : prompts) p.cache->advance(static_cast<int64_t>(p.tokens.size()));
  // Prompt i's last row, normed, is row i of the head's pass (every prompt has a row: x_ has room).
  std::vector<int64_t> head_routing;
  std::vector<float*> logits;
  for (size_t i = 0; i < prompts.size(); ++i) {
    rms_norm_row(last_h.data() + i * n, decoder_.final_norm_weight().data_ptr<float>(), n, c.rms_norm_eps, x_.data() + i * n);
    head_routing.push_back(rows[last_row[i]].routing);
    logits.push_back(prompts[i].logits);
  }
  head(head_routing, logits);
}

void DecodePlan::head(const std::vector<int64_t>& routing, const std::vector<float*>& logits) {
  const int64_t n = decoder_.config().hidden_size, seqs = static_cast<int64_t>(routing.size());
  // An adapter on a split head is not one of its sets' (the ATen path below applies it).
  if (head_ && decoder_.lm_head().is_split() && !decoder_.lm_head().adapter()) return split_head(routing, logits);
  if (head_ && decoder_.lm_head().is_quantized()) {
    head_->matrices.front().ys = logits;
    run(*head_, routing);
    return;
  }
  // A dense head (fp32 / bf16): one ATen product per sequence (a product over several rows may
  // round each row differently from one over a single row).
  for (int64_t s = 0; s < seqs; ++s) {
    at::Tensor out = at::from_blob(logits[s], {decoder_.lm_head().out_features()}, at::kFloat);
    out.copy_(decoder_.lm_head().forward(at::from_blob(x_.data() + s * n, {1, n}, at::kFloat)).view({-1}));
  }
}

void DecodePlan::split_head(const std::vector<int64_t>& routing, const std::vector<float*>& logits) {
  const SplitTable& t = *decoder_.lm_head().split_weight();
  const int64_t vocab = t.rows, seqs = static_cast<int64_t>(routing.size());
  split_logits_.resize(seqs * vocab);
  Matrix &frequent = head_->matrices[0], &rare = head_->matrices[1];
  frequent.ys.resize(seqs);
  rare.ys.resize(seqs);
  for (int64_t s = 0; s < seqs; ++s) {
    frequent.ys[s] = split_logits_.data() + s * vocab;
    rare.ys[s] = frequent.ys[s] + t.frequent_rows();
  }
  run(*head_, routing);
  const int64_t* slot = t.slot.data_ptr<int64_t>();
  for (int64_t s = 0; s < seqs; ++s)
    for (int64_t id = 0; id < vocab; ++id) logits[s][id] = frequent.ys[s][slot[id]];
}

}  // namespace hearth
