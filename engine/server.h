// Serving many users from one base: a Server holds the engine's quantized base once and any
// number of loaded adapters, and answers requests in batched steps where every request may name
// a different adapter (one pass over the base weights for all rows, each row's low-rank path from
// its own adapter). Each request has its own KV cache; a chat request's system prompt is computed
// once per adapter and reused; a request may first train a short-lived adapter on its context.
//
// Threads: submit(), cancel() and the adapter calls may come from any thread. Steps run on the
// thread that calls step() / run_until_idle(), or on the server's own thread after start(); the
// callbacks of a request are called from there, one at a time.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/engine.h"
#include "engine/test_time_training.h"
#include "inference/generator.h"
#include "inference/tokenizer/chat_template.h"

namespace hearth::engine {

struct ServerOptions {
  double adapter_memory_mb = 512;  // loaded adapters' parameters; the least recently used idle one goes beyond it
  int64_t max_batch = 8;           // requests that step together (others wait, first come first served)
  int64_t prefill_chunk = 256;     // prompt positions a request adds per step (long prompts take several)
  int64_t prefix_cache_entries = 16;  // computed system-prompt prefixes kept (least recently used dropped)
  int64_t min_prefix_tokens = 4;   // shorter shared prefixes are not worth caching
};

// One request. The adapter is a registry name of the user's (its serving version unless
// `version` is set), a name given to a kept test-time adapter, or "" for the bare base.
struct ServeRequest {
  std::string prompt;                 // without chat: the text to continue (BOS added)
  std::string prefix;                 // without chat: text before the prompt that requests share
  bool chat = false;                  // with chat: `messages`, rendered with the model's template
  std::vector<ChatMessage> messages;  // a leading "system" message is the prefix shared between requests
  GenerationOptions options;          // max_tokens, sampling (options.cancel is ignored: use cancel())
  std::string user;
  std::string adapter;
  int64_t version = 0;
  TttSettings ttt;                    // ttt.steps > 0: train on `context` first
  std::string context;                // the text test-time training learns from
  std::string keep_as;                // with ttt.keep: the name the trained adapter is kept under
};

// What a request reports. on_text gets whole UTF-8 characters as tokens are produced; exactly
// one of on_done and on_error ends a request.
struct ServeEvents {
  std::function<void(std::string_view)> on_text;
  std::function<void(const GenerationResult&, const std::optional<TttReport>&)> on_done;
  std::function<void(const std::string& message)> on_error;
};

struct LoadedAdapterInfo {
  std::string key;      // "user/name@vN", or a kept test-time adapter's name
  std::string method;   // "lora" | "dora"
  int64_t rank = 0;
  double scale = 1.0;   // multiplies the adapter's update (see set_adapter_scale)
  size_t bytes = 0;
  int64_t requests = 0; // requests using it now
};

// Counters since the server started.
struct ServerStats {
  int64_t steps = 0;            // batched forwards
  int64_t largest_batch = 0;    // most requests in one step
  int64_t prefix_hits = 0;      // requests that reused a computed prefix
  int64_t prefix_misses = 0;    // prefixes computed
  int64_t evictions = 0;        // adapters evicted under the memory budget
};

class Server {
 public:
  // Serves the engine's loaded base (kInvalidArgument if none). Adapters come through the
  // engine (Engine::load_adapter: sealed in the vault, checked against the base).
  explicit Server(Engine& engine, ServerOptions options = {});
  ~Server();  // stops the server's thread; requests still open end with an error
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Loads a user's adapter (or finds it loaded) and returns its key; evicts least recently used
  // idle adapters beyond the memory budget. `scale` multiplies its update: LoRA y = W x +
  // scale * s B A x; DoRA y = base + scale * (DoRA(x) - base).
  std::string load_adapter(const std::string& user, const std::string& name, int64_t version = 0, double scale = 1.0);
  // Removes an adapter (kNotFound if not loaded; kInvalidArgument while requests use it).
  void unload_adapter(const std::string& key);
  // Changes an adapter's scale; requests running with it see the change from their next token.
  void set_adapter_scale(const std::string& key, double scale);
  std::vector<LoadedAdapterInfo> adapters() const;
  size_t adapter_bytes() const;

  // Queues a request and returns its id. Bad options, unknown users or adapters and adapters of
  // another base throw here (kInvalidArgument / kNotFound) and nothing is queued.
  uint64_t submit(ServeRequest request, ServeEvents events);
  // Stops a request between tokens (stop_reason "cancelled"); unknown or finished ids are ignored.
  void cancel(uint64_t id);

  // Runs one batched step of up to max_batch requests; false when no request could step.
  bool step();
  // Steps until every submitted request has ended (test-time training included).
  void run_until_idle();
  // Runs steps on the server's own thread until stop(); stop() waits for it.
  void start();
  void stop();

  // Requests not yet ended.
  int64_t open_requests() const;
  ServerStats stats() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hearth::engine
