// Different adapters for different rows of one forward: the decoder's adapter slots route each
// group of rows (one request's positions) through its own adapter's low-rank path, so requests
// of many users share one pass over the base weights.
#pragma once
#include <memory>
#include <vector>

#include "adapters/adapter.h"
#include "inference/decoder.h"

namespace hearth {

// An adapter resolved against a decoder: its layer for every projection slot (null where it
// does not adapt), so routing a group costs no lookups.
struct RoutableAdapter {
  std::shared_ptr<Adapter> adapter;
  std::vector<std::shared_ptr<const LowRankLayer>> by_slot;  // layer * 7 + projection index
  size_t bytes = 0;  // parameter bytes held, and the decode step's copies (decode_copy_bytes)
};

// Whether every layer of `adapter` is now a plain low-rank update (LoRA, not training): what the
// prepared decode step runs (inference/decode_plan.h).
bool is_plain_low_rank(const RoutableAdapter& adapter);

// Rows [first_row, first_row + rows) of the flattened batch (all positions of a forward, in
// order) use `adapter` (null: the bare base), its update multiplied by `strength`:
// LoRA y = W x + strength * s B A x; DoRA y = base + strength * (DoRA(x) - base).
struct RowGroup {
  int64_t first_row = 0;
  int64_t rows = 0;
  std::shared_ptr<const RoutableAdapter> adapter;
  double strength = 1.0;
};

class AdapterRouter {
 public:
  // Puts a routing slot into every projection of `decoder`, which the router then owns: do not
  // use attach_adapter or an AdapterSet on the same decoder. With no groups routed the decoder
  // computes the bare base.
  explicit AdapterRouter(std::shared_ptr<Decoder> decoder);
  // Empties the slots again (they point back at this router).
  ~AdapterRouter();
  AdapterRouter(const AdapterRouter&) = delete;
  AdapterRouter& operator=(const AdapterRouter&) = delete;

  // kInvalidArgument when the adapter was made for a model of another shape.
  std::shared_ptr<const RoutableAdapter> prepare(std::shared_ptr<Adapter> adapter) const;
  // The groups of the next forwards (rows outside every group get the bare base). Not while
  // a forward runs on the decoder.
  void route(std::vector<RowGroup> groups);
  void clear() { route({}); }
  Decoder& decoder() { return *decoder_; }

 private:
  class Slot;
  std::shared_ptr<Decoder> decoder_;
  std::shared_ptr<const std::vector<RowGroup>> groups_;
};

}  // namespace hearth
