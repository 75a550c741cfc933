// Test-time training: before a request is answered, a short-lived adapter learns the request's
// own context (next-token loss over chunks of it, so a context longer than the model's window is
// learned from and no step holds more than one chunk's activations), the answer is generated
// with it, and it is dropped afterwards unless the request keeps it.
#pragma once
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "inference/decoder.h"

namespace hearth {
class Adapter;
}

namespace hearth::engine {

// The defaults were chosen by measurement on held-out Austen passages (docs/serving.md).
struct TttSettings {
  int64_t steps = 0;             // optimizer steps, one chunk each; 0: test-time training off
  double lr = 3e-3;              // AdamW, constant
  // Over a user's adapter the delta trains at lr * user_lr_factor: that adapter already models
  // its user's text, and steps as large as a bare base takes overfit the context (docs/serving.md).
  double user_lr_factor = 0.1;
  int64_t rank = 8;              // of the trained adapter (over a user's adapter: of the delta stacked on it)
  double alpha = 0;              // 0: 2 * rank
  int64_t chunk_tokens = 256;    // positions per step; capped by the model's window
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  double max_seconds = 30;       // wall time for the training; 0: no limit
  double max_memory_mb = 0;      // estimated peak of the process while training; 0: no limit
  uint64_t seed = 0;
  bool keep = false;             // keep the adapter after the request instead of dropping it

  bool enabled() const { return steps > 0; }
  // kInvalidArgument naming the bad field.
  void validate() const;
  // Reads {"steps", "lr", "user_lr_factor", "rank", "alpha", "chunk", "targets", "max_seconds",
  // "max_memory_mb", "seed", "keep"} over the defaults; unknown fields and bad values are errors naming them.
  static TttSettings from_json(const Json& j, const std::string& what);
};

// What one round of test-time training did.
struct TttReport {
  int64_t steps = 0;
  int64_t context_tokens = 0;
  int64_t chunks = 0;
  int64_t chunk_tokens = 0;    // as used (after the window and memory caps)
  bool grad_checkpoint = false;
  double seconds = 0;
  double first_loss = 0;       // mean next-token loss of the first step's chunk, before its update
  double last_loss = 0;        // of the last step's chunk, before its update
  std::string stopped_by;      // "steps" | "time" | "cancelled"
  Json to_json() const;
};

// What a hook sees before generation.
struct TestTimeInput {
  const Decoder& base;                   // the bare base (its adapter slots are not touched)
  std::vector<int32_t> context;          // the request's context tokens
  std::shared_ptr<Adapter> user_adapter; // the request's own adapter, or null
  const std::atomic<bool>* cancel = nullptr;
};

// Called before generation with the request's context. Returns the adapter to generate with,
// or null to answer with the request's own adapter unchanged.
class TestTimeHook {
 public:
  virtual ~TestTimeHook() = default;
  virtual std::shared_ptr<Adapter> before_generation(const TestTimeInput& input) = 0;
};

// The built-in hook: train_on_context with fixed settings; report() tells about the last call.
class ContextTrainingHook : public TestTimeHook {
 public:
  explicit ContextTrainingHook(TttSettings settings);
  std::shared_ptr<Adapter> before_generation(const TestTimeInput& input) override;
  const TttReport& report() const { return report_; }

 private:
  TttSettings settings_;
  TttReport report_;
};

// Trains a new adapter on `context`: fresh (settings' rank, targets, seed) or, given `init` (the
// user's adapter), a fresh delta of that rank stacked over a frozen copy of it
// (adapters/stacked_delta.h: rank init + settings' rank; `init` itself is not changed). Step i trains on
// chunk i mod chunks of the context, each chunk a sequence of its own from position 0. Stops
// after settings.steps, at max_seconds (a step under way is abandoned) or when `cancel` is set.
// kInvalidArgument when the context has fewer than 2 tokens or max_memory_mb cannot be met.
std::shared_ptr<Adapter> train_on_context(const Decoder& base, const std::vector<int32_t>& context,
                                          const TttSettings& settings, const std::shared_ptr<Adapter>& init,
                                          TttReport* report = nullptr, const std::atomic<bool>* cancel = nullptr);

}  // namespace hearth::engine
