#include "engine/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "adapters/adapter.h"
#include "adapters/adapter_routing.h"
#include "core/error.h"
#include "inference/batched_forward.h"
#include "inference/decode_plan.h"
#include "inference/sampler.h"

namespace hearth::engine {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// A loaded adapter as the server routes it.
struct AdapterEntry {
  std::shared_ptr<const RoutableAdapter> routable;
  double scale = 1.0;
  uint64_t last_used = 0;
  int64_t requests = 0;
  bool from_engine = true;  // false: a kept test-time adapter (not in the engine's set)
};

// A computed prefix (a system prompt) of one adapter: its tokens and their keys and values.
struct PrefixEntry {
  std::string adapter_key;
  std::vector<int32_t> tokens;
  std::shared_ptr<KVCache> cache;
};

enum class Phase { kPreparing, kReady, kRunning };

struct Request {
  uint64_t id = 0;
  ServeRequest spec;
  ServeEvents events;
  std::vector<int32_t> prompt;
  int64_t prefix_tokens = 0;  // leading prompt tokens shared through the prefix cache
  std::string adapter_key;    // "" = bare base; an ephemeral test-time adapter has its own
  std::shared_ptr<const RoutableAdapter> adapter;
  std::atomic<bool> cancel{false};
  std::atomic<Phase> phase{Phase::kPreparing};
  std::optional<TttReport> ttt;
  std::string error;          // set by preparation when it failed

  // Generation state (scheduler thread only).
  std::unique_ptr<KVCache> cache;
  std::unique_ptr<Sampler> sampler;
  std::vector<int32_t> history;
  int64_t prompt_cursor = 0;  // prompt tokens already in the cache
  int32_t next_token = -1;    // the token the next decode step feeds
  std::string pending;        // bytes not yet emitted (they end mid-character)
  GenerationResult result;
  Clock::time_point admitted, first_logits;
};

// The longest common prefix of a and b.
int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int64_t>(i);
}

}  // namespace

class Server::Impl {
 public:
  Impl(Engine& engine, ServerOptions options) : engine_(engine), options_(options) {
    require(options_.max_batch >= 1 && options_.prefill_chunk >= 1 && options_.adapter_memory_mb >= 0,
            ErrorCode::kInvalidArgument, "server options: max_batch and prefill_chunk must be >= 1");
    const LoadedModel& base = engine_.base();
    tokenizer_ = base.tokenizer;
    // A decoder of the server's own over the same weights (a shallow copy: no weight is copied),
    // whose adapter slots the router drives without disturbing the engine's.
    decoder_ = std::make_shared<Decoder>(*base.decoder);
    router_ = std::make_unique<AdapterRouter>(decoder_);
    plan_ = DecodePlan::prepare(*decoder_);
    stops_ = tokenizer_->stop_ids();
  }

  ~Impl() { stop(); }

  // ---- Adapters.
  std::string load_adapter(const std::string& user, const std::string& name, int64_t version, double scale) {
    require(scale >= 0 && scale <= 100, ErrorCode::kInvalidArgument,
            "an adapter's scale must be in [0, 100], got " + std::to_string(scale));
    const std::string key = engine_.load_adapter(user, name, version);
    std::lock_guard<std::mutex> lock(mu_);
    AdapterEntry& entry = entry_locked(key);
    entry.scale = scale;
    entry.last_used = ++tick_;
    evict_beyond_budget(key);
    return key;
  }

  void unload_adapter(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = adapters_.find(key);
    require(it != adapters_.end(), ErrorCode::kNotFound, "no adapter \"" + key + "\" is loaded in the server");
    require(it->second.requests == 0, ErrorCode::kInvalidArgument,
            "adapter \"" + key + "\" is in use by " + std::to_string(it->second.requests) + " request(s); cancel them first");
    drop_adapter(it);
  }

  void set_adapter_scale(const std::string& key, double scale) {
    require(scale >= 0 && scale <= 100, ErrorCode::kInvalidArgument,
            "an adapter's scale must be in [0, 100], got " + std::to_string(scale));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = adapters_.find(key);
    require(it != adapters_.end(), ErrorCode::kNotFound, "no adapter \"" + key + "\" is loaded in the server");
    it->second.scale = scale;
  }

  std::vector<LoadedAdapterInfo> adapters() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<LoadedAdapterInfo> out;
    for (const auto& [key, e] : adapters_) {
      const AdapterConfig& c = e.routable->adapter->config();
      out.push_back({key, adapter_method_name(c.method), c.rank, e.scale, e.routable->bytes, e.requests});
    }
    return out;
  }

  size_t adapter_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return adapter_bytes_locked();
  }

  // ---- Requests.
  uint64_t submit(ServeRequest spec, ServeEvents events) {
    spec.options.sampling.validate();
    require(spec.options.max_tokens >= 0 && spec.options.max_tokens <= 1 << 20, ErrorCode::kInvalidArgument,
            "max_tokens must be in [0, 1048576], got " + std::to_string(spec.options.max_tokens));
    spec.ttt.validate();
    require(!spec.ttt.enabled() || !spec.context.empty(), ErrorCode::kInvalidArgument,
            "test-time training needs a context: give the text to learn from (\"context\")");
    auto r = std::make_shared<Request>();
    r->prompt = prompt_tokens(spec);
    const int64_t window = decoder_->config().context_length();
    require(int64_t(r->prompt.size()) < window, ErrorCode::kInvalidArgument,
            "the prompt has " + std::to_string(r->prompt.size()) + " tokens; the model's context is " + std::to_string(window));
    if (!spec.adapter.empty()) resolve_adapter(spec, *r);
    r->spec = std::move(spec);
    r->events = std::move(events);
    std::lock_guard<std::mutex> lock(mu_);
    r->id = ++next_id_;
    auto entry = adapters_.find(r->adapter_key);
    if (r->adapter && entry != adapters_.end()) {
      entry->second.requests++;
      entry->second.last_used = ++tick_;
    }
    if (r->spec.ttt.enabled()) {
      preparing_.emplace_back([this, r] { prepare_ttt(r); });
    } else {
      r->phase = Phase::kReady;
    }
    requests_.push_back(r);
    work_.notify_all();
    return r->id;
  }

  void cancel(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& r : requests_)
      if (r->id == id) r->cancel = true;
    work_.notify_all();
  }

  ServerStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  int64_t open_requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int64_t>(requests_.size());
  }

  // ---- Steps.
  bool step() {
    std::vector<std::shared_ptr<Request>> batch = next_batch();
    if (batch.empty()) return false;
    // Prompt positions and decode positions never share a step: a decode step's rows then
    // round exactly as a request decoded alone (inference/batched_forward.h). Prompt steps and
    // decode steps alternate while both are waiting.
    std::vector<std::shared_ptr<Request>> prefill, decode;
    for (const auto& r : batch) (r->prompt_cursor < int64_t(r->prompt.size()) ? prefill : decode).push_back(r);
    const bool prompts_now = !prefill.empty() && (decode.empty() || !last_step_was_prefill_);
    batch = prompts_now ? prefill : decode;
    last_step_was_prefill_ = prompts_now;
    std::vector<SequenceStep> steps;
    for (const auto& r : batch) {
      SequenceStep s;
      s.cache = r->cache.get();
      if (r->prompt_cursor < int64_t(r->prompt.size())) {
        const int64_t n = std::min<int64_t>(options_.prefill_chunk, int64_t(r->prompt.size()) - r->prompt_cursor);
        s.tokens.assign(r->prompt.begin() + r->prompt_cursor, r->prompt.begin() + r->prompt_cursor + n);
        r->prompt_cursor += n;
      } else {
        s.tokens = {r->next_token};
      }
      steps.push_back(std::move(s));
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.steps++;
      stats_.largest_batch = std::max<int64_t>(stats_.largest_batch, int64_t(batch.size()));
    }
    at::Tensor logits;
    try {
      logits = planned_or_routed_step(batch, steps, prompts_now);
    } catch (const std::exception& e) {
      router_->clear();
      for (const auto& r : batch) end_with_error(r, std::string("generation failed: ") + e.what());
      return true;
    }
    router_->clear();
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& r = batch[i];
      if (r->prompt_cursor < int64_t(r->prompt.size())) continue;  // still reading its prompt
      if (r->result.tokens.empty() && r->next_token < 0) r->first_logits = Clock::now();
      try {
        advance(r, logits[int64_t(i)]);
      } catch (const std::exception& e) {
        end_with_error(r, std::string("generation failed: ") + e.what());
      }
    }
    return true;
  }

  // `steps` (one per request of `batch`) through the decoder's forward, each request's rows
  // routed through its own adapter.
  at::Tensor routed_step(const std::vector<std::shared_ptr<Request>>& batch, const std::vector<SequenceStep>& steps) {
    std::vector<RowGroup> groups;
    for (size_t i = 0; i < batch.size(); ++i)
      add_rows(groups, batch[i]->adapter_key, batch[i]->adapter, int64_t(steps[i].tokens.size()));
    router_->route(std::move(groups));
    return batched_step(*decoder_, steps);
  }

  // A step's requests whose adapter the prepared plan runs (none, or LoRA) go through it, one
  // pass over the weights for all of them (prompt chunks: their rows in shared passes); the others
  // (DoRA, or when the plan cannot run) through the decoder's forward. A request takes the same
  // path alone or batched, so it gets the same logits.
  at::Tensor planned_or_routed_step(const std::vector<std::shared_ptr<Request>>& batch, const std::vector<SequenceStep>& steps,
                                    bool prompts) {
    at::Tensor logits = at::empty({int64_t(batch.size()), decoder_->config().vocab_size}, at::kFloat);
    std::vector<std::shared_ptr<Request>> planned, other;
    std::vector<SequenceStep> planned_steps, other_steps;
    std::vector<int64_t> planned_rows, other_rows;
    for (size_t i = 0; i < batch.size(); ++i) {
      const bool in_plan = plan_ && (!batch[i]->adapter || is_plain_low_rank(*batch[i]->adapter));
      (in_plan ? planned : other).push_back(batch[i]);
      (in_plan ? planned_steps : other_steps).push_back(steps[i]);
      (in_plan ? planned_rows : other_rows).push_back(int64_t(i));
    }
    if (!planned.empty() && !planned_step(planned, planned_steps, logits, planned_rows, prompts)) {
      other.insert(other.end(), planned.begin(), planned.end());
      other_steps.insert(other_steps.end(), planned_steps.begin(), planned_steps.end());
      other_rows.insert(other_rows.end(), planned_rows.begin(), planned_rows.end());
    }
    if (!other.empty()) logits.index_copy_(0, at::tensor(other_rows, at::kLong), routed_step(other, other_steps));
    return logits;
  }

  // The plan's step (a token each) or prefill (prompt chunks) for these requests into rows `rows`
  // of `logits`; false when it cannot run them.
  bool planned_step(const std::vector<std::shared_ptr<Request>>& batch, const std::vector<SequenceStep>& steps,
                    at::Tensor& logits, const std::vector<int64_t>& rows, bool prompts) {
    std::vector<RowGroup> groups;
    std::vector<DecodePlan::Prompt> parts;
    for (size_t i = 0; i < batch.size(); ++i) {
      add_rows(groups, batch[i]->adapter_key, batch[i]->adapter, int64_t(steps[i].tokens.size()));
      parts.push_back({steps[i].tokens, steps[i].cache, logits[rows[i]].data_ptr<float>()});
    }
    router_->route(std::move(groups));
    if (prompts) {
      if (!plan_->can_prefill(parts)) return false;
      plan_->prefill(parts);
      return true;
    }
    std::vector<KVCache*> caches;
    std::vector<int32_t> tokens;
    std::vector<float*> out;
    for (const DecodePlan::Prompt& p : parts) {
      caches.push_back(p.cache);
      tokens.push_back(p.tokens.front());
      out.push_back(p.logits);
    }
    if (!plan_->can_step(caches)) return false;
    plan_->step(tokens, caches, out);
    return true;
  }

  void run_until_idle() {
    for (;;) {
      if (step()) continue;
      std::unique_lock<std::mutex> lock(mu_);
      if (requests_.empty()) break;
      // Only requests still training on their context remain: wait for one to become ready.
      work_.wait_for(lock, std::chrono::milliseconds(20));
    }
    join_finished_preparations();
  }

  void start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (thread_.joinable()) return;
    stopping_ = false;
    thread_ = std::thread([this] { loop(); });
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (const auto& r : requests_) r->cancel = true;
      work_.notify_all();
    }
    if (thread_.joinable()) thread_.join();
    std::list<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      threads.swap(preparing_);
    }
    for (std::thread& t : threads)
      if (t.joinable()) t.join();
    std::vector<std::shared_ptr<Request>> left;
    {
      std::lock_guard<std::mutex> lock(mu_);
      left.assign(requests_.begin(), requests_.end());
    }
    for (const auto& r : left) end_with_error(r, "the server is shutting down");
  }

 private:
  // ---- Request preparation.
  std::vector<int32_t> prompt_tokens(const ServeRequest& spec) const {
    if (!spec.chat) return tokenizer_->encode(spec.prefix + spec.prompt, /*add_bos=*/true);
    const ChatTemplate* tmpl = tokenizer_->chat_template();
    require(tmpl != nullptr, ErrorCode::kInvalidArgument, "chat: this model's tokenizer has no chat template");
    require(!spec.messages.empty(), ErrorCode::kInvalidArgument, "chat: the request has no messages");
    for (const ChatMessage& m : spec.messages)
      require(m.role == "system" || m.role == "user" || m.role == "assistant", ErrorCode::kInvalidArgument,
              "chat: unknown role \"" + m.role + "\" (system, user or assistant)");
    return tokenizer_->encode(tmpl->render(spec.messages, /*add_generation_prompt=*/true), /*add_bos=*/false);
  }

  // How many leading prompt tokens are the shared prefix (a chat's leading system message, or
  // `prefix`) as the full prompt tokenizes them: the prefix alone may end in a token that the
  // full text merges with what follows, so only the common part counts. 0 when none.
  int64_t shared_prefix_length(const ServeRequest& spec, const std::vector<int32_t>& prompt) const {
    std::vector<int32_t> sys;
    if (!spec.chat && !spec.prefix.empty()) {
      sys = tokenizer_->encode(spec.prefix, /*add_bos=*/true);
    } else if (spec.chat && !spec.messages.empty() && spec.messages[0].role == "system") {
      sys = tokenizer_->encode(tokenizer_->chat_template()->render({spec.messages[0]}, /*add_generation_prompt=*/false),
                               /*add_bos=*/false);
    } else {
      return 0;
    }
    // Never the whole prompt: the last prompt position must run to give the first logits.
    const int64_t n = std::min<int64_t>(common_prefix(sys, prompt), int64_t(prompt.size()) - 1);
    return n >= options_.min_prefix_tokens ? n : 0;
  }

  void resolve_adapter(const ServeRequest& spec, Request& r) {
    {
      // A kept test-time adapter goes by its own name.
      std::lock_guard<std::mutex> lock(mu_);
      auto it = adapters_.find(spec.adapter);
      if (it != adapters_.end() && !it->second.from_engine) {
        r.adapter_key = it->first;
        r.adapter = it->second.routable;
        return;
      }
    }
    require(!spec.user.empty(), ErrorCode::kInvalidArgument,
            "the request names adapter \"" + spec.adapter + "\" but no user; say whose adapter it is (\"user\")");
    const std::string key = engine_.load_adapter(spec.user, spec.adapter, spec.version);
    std::lock_guard<std::mutex> lock(mu_);
    const bool loaded_before = adapters_.count(key) != 0;
    r.adapter = entry_locked(key).routable;
    r.adapter_key = key;
    if (!loaded_before) evict_beyond_budget(key);
  }

  // Runs on a thread of its own: the scheduler keeps serving other requests meanwhile.
  void prepare_ttt(const std::shared_ptr<Request>& r) {
    try {
      TestTimeInput input{*decoder_, tokenizer_->encode(r->spec.context, /*add_bos=*/true),
                          r->adapter ? r->adapter->adapter : nullptr, &r->cancel};
      ContextTrainingHook hook(r->spec.ttt);
      std::shared_ptr<Adapter> trained = hook.before_generation(input);
      r->ttt = hook.report();
      std::lock_guard<std::mutex> lock(mu_);
      auto old = adapters_.find(r->adapter_key);
      if (r->adapter && old != adapters_.end()) old->second.requests--;
      r->adapter = router_->prepare(trained);
      r->adapter_key = "ttt#" + std::to_string(r->id);
      if (r->spec.ttt.keep) {
        const std::string name = r->spec.keep_as.empty() ? r->adapter_key : r->spec.keep_as;
        AdapterEntry e;
        e.routable = r->adapter;
        e.from_engine = false;
        e.last_used = ++tick_;
        adapters_[name] = e;
        r->adapter_key = name;
        evict_beyond_budget(name);
      }
      if (adapters_.count(r->adapter_key)) adapters_.at(r->adapter_key).requests++;
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu_);
      r->error = std::string("test-time training failed: ") + e.what();
    }
    r->phase = Phase::kReady;
    std::lock_guard<std::mutex> lock(mu_);
    work_.notify_all();
  }

  // ---- Scheduling.
  std::vector<std::shared_ptr<Request>> next_batch() {
    std::vector<std::shared_ptr<Request>> admit, failed, cancelled, batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& r : requests_) {
        if (r->phase == Phase::kPreparing) continue;
        if (!r->error.empty()) {
          failed.push_back(r);
        } else if (r->cancel && r->phase == Phase::kReady) {
          cancelled.push_back(r);
        } else if (r->phase == Phase::kRunning) {
          batch.push_back(r);
        } else if (int64_t(batch.size() + admit.size()) < options_.max_batch) {
          admit.push_back(r);
        }
      }
    }
    for (const auto& r : failed) end_with_error(r, r->error);
    for (const auto& r : cancelled) finish(r, "cancelled");
    for (const auto& r : admit) {
      try {
        start_request(r);
        batch.push_back(r);
      } catch (const std::exception& e) {
        end_with_error(r, e.what());
      }
    }
    // Requests whose decode step comes next must not run with a stale cancel flag.
    std::vector<std::shared_ptr<Request>> out;
    for (const auto& r : batch) {
      if (r->cancel && r->prompt_cursor >= int64_t(r->prompt.size()) && r->next_token >= 0) {
        finish(r, "cancelled");
        continue;
      }
      out.push_back(r);
    }
    if (int64_t(out.size()) > options_.max_batch) out.resize(options_.max_batch);
    // Rows of one adapter together: one group (two BLAS calls per projection) per adapter.
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->adapter_key < b->adapter_key; });
    return out;
  }

  void start_request(const std::shared_ptr<Request>& r) {
    const ModelConfig& c = decoder_->config();
    const int64_t prompt = static_cast<int64_t>(r->prompt.size());
    const int64_t capacity = std::min<int64_t>(c.context_length(), prompt + r->spec.options.max_tokens);
    r->cache = std::make_unique<KVCache>(c, 1, std::max<int64_t>(capacity, prompt + 1));
    r->sampler = std::make_unique<Sampler>(r->spec.options.sampling);
    r->history = r->prompt;
    r->result.prompt_tokens = prompt;
    r->result.stop_reason = "max_tokens";
    r->admitted = Clock::now();
    // A system prompt computed once per adapter: its keys and values are copied, not recomputed.
    const bool ephemeral = r->adapter && !adapters_has(r->adapter_key);
    const int64_t shared = ephemeral ? 0 : shared_prefix_length(r->spec, r->prompt);
    if (shared > 0) {
      const std::vector<int32_t> tokens(r->prompt.begin(), r->prompt.begin() + shared);
      std::shared_ptr<KVCache> prefix = cached_prefix(r->adapter_key, r->adapter, tokens);
      r->cache->assign_prefix(*prefix, shared);
      r->prompt_cursor = shared;
      r->prefix_tokens = shared;
    }
    r->phase = Phase::kRunning;
  }

  bool adapters_has(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    return adapters_.count(key) != 0;
  }

  std::shared_ptr<KVCache> cached_prefix(const std::string& key, const std::shared_ptr<const RoutableAdapter>& adapter,
                                         const std::vector<int32_t>& tokens) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = prefixes_.begin(); it != prefixes_.end(); ++it) {
        if (it->adapter_key == key && it->tokens == tokens) {
          prefixes_.splice(prefixes_.begin(), prefixes_, it);  // most recently used first
          stats_.prefix_hits++;
          return prefixes_.front().cache;
        }
      }
    }
    auto cache = std::make_shared<KVCache>(decoder_->config(), 1, int64_t(tokens.size()));
    std::vector<RowGroup> groups;
    add_rows(groups, key, adapter, int64_t(tokens.size()));
    router_->route(std::move(groups));
    try {
      batched_step(*decoder_, {SequenceStep{tokens, cache.get()}});
    } catch (...) {
      router_->clear();
      throw;
    }
    router_->clear();
    std::lock_guard<std::mutex> lock(mu_);
    stats_.prefix_misses++;
    prefixes_.push_front({key, tokens, cache});
    while (int64_t(prefixes_.size()) > options_.prefix_cache_entries) prefixes_.pop_back();
    return cache;
  }

  void add_rows(std::vector<RowGroup>& groups, const std::string& key, const std::shared_ptr<const RoutableAdapter>& adapter,
                int64_t rows) {
    const int64_t first = groups.empty() ? 0 : groups.back().first_row + groups.back().rows;
    if (!groups.empty() && groups.back().adapter == adapter) {
      groups.back().rows += rows;
      return;
    }
    double strength = 1.0;
    if (adapter) {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = adapters_.find(key);
      if (it != adapters_.end()) {
        strength = it->second.scale;
        it->second.last_used = ++tick_;
      }
    }
    groups.push_back({first, rows, adapter, strength});
  }

  // One token of request r from its logits, as hearth::generate does it (inference/generator.cpp).
  void advance(const std::shared_ptr<Request>& r, const at::Tensor& logits) {
    GenerationResult& res = r->result;
    if (r->cancel) return finish(r, "cancelled");
    if (int64_t(res.tokens.size()) >= r->spec.options.max_tokens) return finish(r, "max_tokens");
    const int32_t next = r->sampler->sample(logits, r->history);
    if (r->spec.options.stop_at_stop_tokens && std::find(stops_.begin(), stops_.end(), next) != stops_.end())
      return finish(r, "stop_token");
    res.tokens.push_back(next);
    r->history.push_back(next);
    // Models may have more output rows than the tokenizer has tokens (padding): those decode to nothing.
    if (next < tokenizer_->vocab_size())
      r->pending += tokenizer_->decode_next(r->history.size() >= 2 ? r->history[r->history.size() - 2] : -1, next);
    const size_t ready = complete_utf8_prefix(r->pending);
    if (ready > 0) {
      if (r->events.on_text) r->events.on_text(std::string_view(r->pending.data(), ready));
      res.text += r->pending.substr(0, ready);
      r->pending.erase(0, ready);
    }
    if (int64_t(res.tokens.size()) == r->spec.options.max_tokens) return finish(r, "max_tokens");
    if (r->cache->length() >= r->cache->capacity()) return finish(r, "context_full");
    r->next_token = next;
  }

  void finish(const std::shared_ptr<Request>& r, const std::string& reason) {
    GenerationResult& res = r->result;
    res.stop_reason = reason;
    if (!r->pending.empty()) {
      if (r->events.on_text) r->events.on_text(r->pending);
      res.text += r->pending;
      r->pending.clear();
    }
    const auto now = Clock::now();
    if (r->cache) {
      const bool had_logits = r->first_logits != Clock::time_point();
      res.prefill_seconds = seconds_between(r->admitted, had_logits ? r->first_logits : now);
      res.decode_seconds = had_logits ? seconds_between(r->first_logits, now) : 0;
    }
    remove(r);
    if (r->events.on_done) r->events.on_done(res, r->ttt);
  }

  void end_with_error(const std::shared_ptr<Request>& r, const std::string& message) {
    if (!remove(r)) return;
    if (r->events.on_error) r->events.on_error(message);
  }

  // Takes r off the open requests; false if it was already gone.
  bool remove(const std::shared_ptr<Request>& r) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find(requests_.begin(), requests_.end(), r);
    if (it == requests_.end()) return false;
    requests_.erase(it);
    auto a = adapters_.find(r->adapter_key);
    if (r->adapter && a != adapters_.end() && a->second.routable == r->adapter) a->second.requests--;
    r->cache.reset();
    return true;
  }

  void loop() {
    for (;;) {
      if (step()) continue;
      join_finished_preparations();
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return;
      work_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }

  void join_finished_preparations() {
    // Threads of requests that are no longer preparing have returned or are about to.
    std::list<std::thread> done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      bool any_preparing = false;
      for (const auto& r : requests_) any_preparing = any_preparing || r->phase == Phase::kPreparing;
      if (any_preparing) return;
      done.swap(preparing_);
    }
    for (std::thread& t : done)
      if (t.joinable()) t.join();
  }

  // ---- Adapter memory (mu_ held).
  size_t adapter_bytes_locked() const {
    size_t total = 0;
    for (const auto& [key, e] : adapters_) total += e.routable->bytes;
    return total;
  }

  // The server's entry for an adapter the engine has loaded, made on first use; mu_ held.
  AdapterEntry& entry_locked(const std::string& key) {
    auto it = adapters_.find(key);
    if (it == adapters_.end()) {
      AdapterEntry e;
      e.routable = router_->prepare(engine_.loaded_adapter(key));
      it = adapters_.emplace(key, std::move(e)).first;
    }
    return it->second;
  }

  void evict_beyond_budget(const std::string& keep) {
    const double budget = options_.adapter_memory_mb * 1024.0 * 1024.0;
    while (double(adapter_bytes_locked()) > budget) {
      auto victim = adapters_.end();
      for (auto it = adapters_.begin(); it != adapters_.end(); ++it)
        if (it->first != keep && it->second.requests == 0 && (victim == adapters_.end() || it->second.last_used < victim->second.last_used))
          victim = it;
      if (victim == adapters_.end()) {
        spdlog::warn("loaded adapters take {:.1f} MB, over the {:.1f} MB budget, and all others are in use",
                     adapter_bytes_locked() / 1048576.0, options_.adapter_memory_mb);
        return;
      }
      spdlog::info("evicting adapter \"{}\" (least recently used) to stay under {:.1f} MB", victim->first,
                   options_.adapter_memory_mb);
      drop_adapter(victim);
      stats_.evictions++;
    }
  }

  void drop_adapter(std::map<std::string, AdapterEntry>::iterator it) {
    const std::string key = it->first;
    const bool from_engine = it->second.from_engine;
    adapters_.erase(it);
    prefixes_.remove_if([&](const PrefixEntry& p) { return p.adapter_key == key; });
    if (from_engine) {
      try {
        engine_.unload_adapter(key);
      } catch (const Error&) {
        // Already unloaded from the engine by another caller: nothing left to free there.
      }
    }
  }

  Engine& engine_;
  ServerOptions options_;
  std::shared_ptr<Tokenizer> tokenizer_;
  std::shared_ptr<Decoder> decoder_;
  std::unique_ptr<AdapterRouter> router_;
  std::unique_ptr<DecodePlan> plan_;  // null when the base's weights do not allow one
  std::vector<int32_t> stops_;

  mutable std::mutex mu_;
  std::condition_variable work_;
  std::map<std::string, AdapterEntry> adapters_;
  std::list<PrefixEntry> prefixes_;  // most recently used first
  std::list<std::shared_ptr<Request>> requests_;
  std::list<std::thread> preparing_;
  ServerStats stats_;
  bool last_step_was_prefill_ = false;  // scheduler thread only
  uint64_t next_id_ = 0;
  uint64_t tick_ = 0;
  bool stopping_ = false;
  std::thread thread_;
};

Server::Server(Engine& engine, ServerOptions options) : impl_(std::make_unique<Impl>(engine, options)) {}
Server::~Server() = default;

std::string Server::load_adapter(const std::string& user, const std::string& name, int64_t version, double scale) {
  return impl_->load_adapter(user, name, version, scale);
}
void Server::unload_adapter(const std::string& key) { impl_->unload_adapter(key); }
void Server::set_adapter_scale(const std::string& key, double scale) { impl_->set_adapter_scale(key, scale); }
std::vector<LoadedAdapterInfo> Server::adapters() const { return impl_->adapters(); }
size_t Server::adapter_bytes() const { return impl_->adapter_bytes(); }
uint64_t Server::submit(ServeRequest request, ServeEvents events) { return impl_->submit(std::move(request), std::move(events)); }
void Server::cancel(uint64_t id) { impl_->cancel(id); }
bool Server::step() { return impl_->step(); }
void Server::run_until_idle() { impl_->run_until_idle(); }
void Server::start() { impl_->start(); }
void Server::stop() { impl_->stop(); }
int64_t Server::open_requests() const { return impl_->open_requests(); }
ServerStats Server::stats() const { return impl_->stats(); }

}  // namespace hearth::engine
