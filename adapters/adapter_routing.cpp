#include "adapters/adapter_routing.h"

#include "core/error.h"

namespace hearth {
namespace {

constexpr int64_t kProjections = 7;  // DecoderLayer::projections()

// out_rows += strength * (layer(x_rows) - out_rows), in place.
void apply_to_rows(const LowRankLayer& layer, const at::Tensor& x_rows, at::Tensor out_rows, double strength,
                   const Linear& base) {
  if (!layer.magnitude().defined()) {
    // LoRA: as the decode step adds it (so a row of a mixed batch gets what it gets alone), else
    // two BLAS calls, the second accumulating into the base output.
    if (layer.add_update_as_decode_step(x_rows, out_rows, strength)) return;
    out_rows.addmm_(at::mm(x_rows, layer.lora_A().t()), layer.lora_B().t(), 1.0, layer.scale() * strength);
    return;
  }
  at::Tensor adapted = layer.apply(x_rows, out_rows, base);
  if (strength == 1.0) {
    out_rows.copy_(adapted);
  } else {
    out_rows.add_(adapted - out_rows, strength);
  }
}

}  // namespace

class AdapterRouter::Slot : public LinearAdapter {
 public:
  Slot(const AdapterRouter* router, int64_t slot) : router_(router), slot_(slot) {}

  bool row_low_rank_updates(int64_t rows, LowRankUpdate* out) const override {
    const std::shared_ptr<const std::vector<RowGroup>> groups = router_->groups_;
    std::fill_n(out, rows, LowRankUpdate{});
    if (!groups) return true;
    for (const RowGroup& g : *groups) {
      if (!g.adapter || g.rows == 0) continue;
      if (g.first_row < 0 || g.first_row + g.rows > rows) return false;
      const std::shared_ptr<const LowRankLayer>& layer = g.adapter->by_slot[slot_];
      if (!layer) continue;
      LowRankUpdate u;
      if (!layer->low_rank_update(u)) return false;  // DoRA keeps the ATen path
      u.scale *= static_cast<float>(g.strength);
      std::fill_n(out + g.first_row, g.rows, u);
    }
    return true;
  }

  at::Tensor apply(const at::Tensor& x, const at::Tensor& base_out, const Linear& base) const override {
    const std::shared_ptr<const std::vector<RowGroup>> groups = router_->groups_;
    if (!groups || groups->empty()) return base_out;
    require(!at::GradMode::is_enabled() || !base_out.requires_grad(), ErrorCode::kInvalidArgument,
            "routed adapters are for inference; train an adapter on its own decoder");
    at::Tensor x2 = x.reshape({-1, x.size(-1)});
    at::Tensor out = base_out.is_contiguous() ? base_out : base_out.contiguous();
    at::Tensor out2 = out.view({-1, out.size(-1)});
    for (const RowGroup& g : *groups) {
      if (!g.adapter || g.rows == 0) continue;
      require(g.first_row >= 0 && g.first_row + g.rows <= x2.size(0), ErrorCode::kInvalidArgument,
              "a routed row group reaches past the batch's rows");
      const std::shared_ptr<const LowRankLayer>& layer = g.adapter->by_slot[slot_];
      if (!layer) continue;
      apply_to_rows(*layer, x2.narrow(0, g.first_row, g.rows), out2.narrow(0, g.first_row, g.rows), g.strength, base);
    }
    return out;
  }

 private:
  const AdapterRouter* router_;
  int64_t slot_;
};

AdapterRouter::AdapterRouter(std::shared_ptr<Decoder> decoder) : decoder_(std::move(decoder)) {
  require(decoder_ != nullptr, ErrorCode::kInvalidArgument, "AdapterRouter needs a decoder");
  int64_t slot = 0;
  for (DecoderLayer& layer : decoder_->layers())
    for (auto& [name, linear] : layer.projections()) linear->set_adapter(std::make_shared<Slot>(this, slot++));
}

AdapterRouter::~AdapterRouter() {
  for (DecoderLayer& layer : decoder_->layers())
    for (auto& [name, linear] : layer.projections()) linear->set_adapter(nullptr);
}

bool is_plain_low_rank(const RoutableAdapter& adapter) {
  LowRankUpdate unused;
  for (const auto& layer : adapter.by_slot)
    if (layer && !layer->low_rank_update(unused)) return false;
  return true;
}

std::shared_ptr<const RoutableAdapter> AdapterRouter::prepare(std::shared_ptr<Adapter> adapter) const {
  require(adapter != nullptr, ErrorCode::kInvalidArgument, "AdapterRouter::prepare: no adapter given");
  const int64_t layers = static_cast<int64_t>(decoder_->layers().size());
  require(adapter->num_layers() == layers, ErrorCode::kInvalidArgument,
          "the adapter was made for a model with " + std::to_string(adapter->num_layers()) + " layers, this one has " +
              std::to_string(layers));
  auto r = std::make_shared<RoutableAdapter>();
  r->by_slot.resize(layers * kProjections);
  for (const AdapterModule& m : adapter->modules()) {
    const Linear& linear = decoder_projection(decoder_->layers()[m.layer], m.name);
    require(linear.in_features() == m.impl->in_features() && linear.out_features() == m.impl->out_features(),
            ErrorCode::kInvalidArgument, "adapter module " + m.peft_prefix() + " does not fit this model's projection shape");
    r->by_slot[m.layer * kProjections + projection_index(m.name)] = m.impl;
  }
  for (const at::Tensor& p : adapter->parameters()) r->bytes += p.nbytes();
  for (const AdapterModule& m : adapter->modules()) r->bytes += m.impl->decode_copy_bytes();
  r->adapter = std::move(adapter);
  return r;
}

void AdapterRouter::route(std::vector<RowGroup> groups) {
  groups_ = std::make_shared<const std::vector<RowGroup>>(std::move(groups));
}

}  // namespace hearth
