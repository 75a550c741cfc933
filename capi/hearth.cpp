// The C API's functions: each checks its arguments, calls the engine inside guarded(), and
// converts the result into plain C structs and malloc'ed strings.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "capi/capi_guard.h"
#include "capi/hearth.h"
#include "core/error.h"
#include "core/json.h"
#include "core/runtime.h"
#include "engine/federated_client.h"
#include "engine/test_time_training.h"
#include "engine/version.h"
#include "trainer/distributed_options.h"

using hearth::ErrorCode;
using hearth::require;
using namespace hearth::capi;
namespace engine = hearth::engine;

namespace {

std::once_flag g_runtime_once;
std::atomic<bool> g_runtime_set{false};

// The process runtime (threads, allocator policy) once, with the app's thread count or all cores.
void ensure_runtime(int threads) {
  std::call_once(g_runtime_once, [threads] {
    hearth::init_runtime(threads);
    g_runtime_set = true;
  });
}

char* copy_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out == nullptr) hearth::fail(ErrorCode::kIo, "out of memory copying a result string");
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

template <typename T>
void require_out(T* p, const char* what) {
  require(p != nullptr, ErrorCode::kInvalidArgument, std::string(what) + " is NULL");
}

hearth::storage::RecordKind record_kind(hearth_data_kind kind) {
  require(kind == HEARTH_DATA_DOCUMENT || kind == HEARTH_DATA_EXAMPLES, ErrorCode::kInvalidArgument,
          "kind must be HEARTH_DATA_DOCUMENT or HEARTH_DATA_EXAMPLES");
  return kind == HEARTH_DATA_DOCUMENT ? hearth::storage::RecordKind::kDocument : hearth::storage::RecordKind::kExample;
}

bool flag_set(const int* flag) { return flag != nullptr && __atomic_load_n(flag, __ATOMIC_RELAXED) != 0; }

engine::SliceBudget budget_of(const hearth_slice_budget* b) {
  engine::SliceBudget out;
  if (b == nullptr) return out;
  require(b->seconds >= 0 && b->seconds < 1e9 && b->steps >= 0, ErrorCode::kInvalidArgument,
          "slice budget: seconds and steps must be >= 0");
  out.seconds = b->seconds;
  out.steps = b->steps;
  if (b->cancel != nullptr) {
    const int* flag = b->cancel;
    out.cancelled = [flag] { return flag_set(flag); };
  }
  if (b->device != nullptr) {
    hearth_device_fn fn = b->device;
    void* ctx = b->device_user_data;
    out.device = [fn, ctx] {
      hearth_device_state s{1, 100, 30.0, 0, 1};
      engine::DeviceState d;
      if (fn(ctx, &s) != 0) {  // the host could not tell: do not run
        d.charging = false;
        d.battery_percent = 0;
        return d;
      }
      d.charging = s.charging != 0;
      d.battery_percent = s.battery_percent;
      d.temperature_c = s.temperature_c;
      d.screen_on = s.screen_on != 0;
      d.idle = s.idle != 0;
      return d;
    };
  }
  return out;
}

void fill_result(const engine::SliceResult& r, hearth_slice_result* out) {
  std::memset(out, 0, sizeof(*out));
  out->job_id = r.job_id;
  out->outcome = r.outcome == "finished" ? HEARTH_SLICE_FINISHED
                 : r.outcome == "waiting" ? HEARTH_SLICE_WAITING
                                          : HEARTH_SLICE_PAUSED;
  out->steps_done = r.steps_done;
  out->steps_this_slice = r.steps_this_slice;
  out->seconds = r.seconds;
  out->adapter_version = r.adapter ? r.adapter->version : 0;
  std::strncpy(out->reason, r.reason.c_str(), sizeof(out->reason) - 1);
}

// The request of hearth_generate*: the base, or a user's adapter; options validated.
hearth::engine::GenerateRequest generate_request(const char* user, const char* adapter, const char* prompt,
                                                 const hearth_generate_options* options) {
  using namespace hearth;
  require((user == nullptr) == (adapter == nullptr), ErrorCode::kInvalidArgument,
          "give both user and adapter (a user's adapter) or neither (the bare base)");
  engine::GenerateRequest r;
  r.prompt = text_arg(prompt, "prompt");
  if (user != nullptr) {
    r.user = text_arg(user, "user");
    r.adapter = text_arg(adapter, "adapter");
  }
  const hearth_generate_options o = options != nullptr ? *options : hearth_generate_defaults();
  r.chat = o.chat != 0;
  r.options.max_tokens = o.max_tokens;
  r.options.sampling.temperature = o.temperature;
  r.options.sampling.top_k = o.top_k;
  r.options.sampling.top_p = o.top_p;
  r.options.sampling.repeat_penalty = o.repeat_penalty;
  r.options.sampling.seed = o.seed;
  r.options.sampling.validate();
  require(o.max_tokens >= 0 && o.max_tokens <= 1 << 20, ErrorCode::kInvalidArgument, "max_tokens must be in 0..1048576");
  return r;
}

// Streams to on_token; the callback may ask to stop, and so may the cancel flag (between tokens).
void run_generation(hearth::engine::Engine& e, const hearth::engine::GenerateRequest& r, hearth_token_fn on_token,
                    void* user_data, const int* cancel, char** text) {
  std::atomic<bool> stop{flag_set(cancel)};
  hearth::TextCallback stream = [&](std::string_view piece) {
    if (on_token != nullptr && on_token(user_data, piece.data(), piece.size()) != 0) stop = true;
    if (flag_set(cancel)) stop = true;
  };
  const hearth::GenerationResult g = e.generate(r, stream, &stop);
  if (text != nullptr) *text = copy_string(g.text);
}

}  // namespace

extern "C" {

const char* hearth_version(void) { return engine::version(); }

hearth_status hearth_init(int threads) {
  if (threads < 0 || threads > 1024) return refuse(HEARTH_ERR_INVALID_ARGUMENT, "threads must be in 0..1024 (0: all cores)");
  if (g_runtime_set) return refuse(HEARTH_ERR_INVALID_ARGUMENT, "hearth_init was already called (or an engine was opened)");
  return guarded([&] { ensure_runtime(threads); });
}

hearth_status hearth_open(const char* home, hearth_key_kind kind, const void* key, size_t key_len, hearth_engine** out) {
  return guarded([&] {
    require_out(out, "out");
    *out = nullptr;
    engine::EngineOptions o;
    o.home = text_arg(home, "home");
    require(kind == HEARTH_KEY_NONE || (key != nullptr && key_len > 0 && key_len <= 4096), ErrorCode::kInvalidArgument,
            "the key is NULL or empty (or longer than 4096 bytes)");
    const std::string bytes = kind == HEARTH_KEY_NONE ? "" : std::string(static_cast<const char*>(key), key_len);
    switch (kind) {
      case HEARTH_KEY_NONE: break;
      case HEARTH_KEY_PASSPHRASE: o.key = hearth::privacy::MasterKeySource::from_passphrase(bytes); break;
      case HEARTH_KEY_FILE: o.key = hearth::privacy::MasterKeySource::from_key_file(bytes); break;
      case HEARTH_KEY_RAW: o.key = hearth::privacy::MasterKeySource::from_raw_key(bytes); break;
      default: hearth::fail(ErrorCode::kInvalidArgument, "unknown key kind " + std::to_string(int(kind)));
    }
    o.actor = "api";
    auto opened = std::make_unique<engine::Engine>(std::move(o));
    ensure_runtime(0);  // the app's hearth_init, or all cores
    *out = register_engine(std::move(opened));
  });
}

hearth_status hearth_close(hearth_engine* handle) {
  return guarded([&] { close_handle(handle); });
}

hearth_status hearth_load_base(hearth_engine* handle, const char* model_path, const char* quant) {
  return guarded([&] {
    auto e = engine_of(handle);
    engine::BaseModelSpec spec;
    spec.path = text_arg(model_path, "model_path");
    if (quant != nullptr) spec.quant = text_arg(quant, "quant");
    e->load_base(spec);
  });
}

hearth_status hearth_ingest_text(hearth_engine* handle, const char* user, hearth_data_kind kind, const char* name,
                                 const char* content, size_t len, int64_t* added) {
  return guarded([&] {
    auto e = engine_of(handle);
    require(content != nullptr || len == 0, ErrorCode::kInvalidArgument, "content is NULL");
    hearth::storage::IngestItem item;
    item.kind = record_kind(kind) == hearth::storage::RecordKind::kDocument ? hearth::storage::IngestItem::Kind::kDocument
                                                                           : hearth::storage::IngestItem::Kind::kJsonl;
    item.name = name != nullptr ? text_arg(name, "name") : std::string("item");
    item.content.assign(content != nullptr ? content : "", len);
    const auto r = e->ingest_texts(text_arg(user, "user"), {item});
    if (added != nullptr) *added = int64_t(r.documents_added + r.examples_added);
  });
}

hearth_status hearth_ingest_file(hearth_engine* handle, const char* user, const char* path, int64_t* added) {
  return guarded([&] {
    auto e = engine_of(handle);
    const auto r = e->ingest_files(text_arg(user, "user"), {text_arg(path, "path")});
    if (added != nullptr) *added = int64_t(r.documents_added + r.examples_added);
  });
}

hearth_status hearth_data_list(hearth_engine* handle, const char* user, hearth_record** records, size_t* count) {
  return guarded([&] {
    require_out(records, "records");
    require_out(count, "count");
    *records = nullptr;
    *count = 0;
    auto e = engine_of(handle);
    const auto list = e->list_data(text_arg(user, "user"));
    auto* out = static_cast<hearth_record*>(std::calloc(list.empty() ? 1 : list.size(), sizeof(hearth_record)));
    if (out == nullptr) hearth::fail(ErrorCode::kIo, "out of memory listing records");
    for (size_t i = 0; i < list.size(); ++i) {
      out[i].id = list[i].id;
      out[i].kind = list[i].kind == hearth::storage::RecordKind::kDocument ? HEARTH_DATA_DOCUMENT : HEARTH_DATA_EXAMPLES;
      out[i].bytes = list[i].bytes;
      out[i].created = list[i].created;
    }
    *records = out;
    *count = list.size();
  });
}

void hearth_free_records(hearth_record* records) { std::free(records); }

hearth_status hearth_data_delete(hearth_engine* handle, const char* user, hearth_data_kind kind, const int64_t* ids,
                                 size_t count) {
  return guarded([&] {
    require(ids != nullptr && count > 0 && count < (size_t(1) << 24), ErrorCode::kInvalidArgument,
            "give 1 or more record ids (ids is NULL or count is 0)");
    auto e = engine_of(handle);
    e->delete_data(text_arg(user, "user"), record_kind(kind), std::vector<int64_t>(ids, ids + count));
  });
}

hearth_status hearth_forget(hearth_engine* handle, const char* user) {
  return guarded([&] { engine_of(handle)->forget(text_arg(user, "user")); });
}

hearth_status hearth_job_submit(hearth_engine* handle, const char* spec_json, int64_t* job_id) {
  return guarded([&] {
    require_out(job_id, "job_id");
    auto e = engine_of(handle);
    const std::string text = text_arg(spec_json, "spec_json");
    const hearth::Json j = hearth::Json::parse(text, nullptr, /*allow_exceptions=*/false);
    require(!j.is_discarded(), ErrorCode::kInvalidArgument, "the job spec is not valid JSON; see docs/engine.md for its shape");
    *job_id = e->submit_job(engine::JobSpec::from_json(j, "job spec"));
  });
}

hearth_status hearth_job_run_slice(hearth_engine* handle, int64_t job_id, const hearth_slice_budget* budget,
                                   hearth_slice_result* result) {
  return guarded([&] {
    require_out(result, "result");
    auto e = engine_of(handle);
    fill_result(e->run_slice(job_id, budget_of(budget)), result);
  });
}

hearth_status hearth_job_run_next(hearth_engine* handle, const hearth_slice_budget* budget, hearth_slice_result* result) {
  return guarded([&] {
    require_out(result, "result");
    std::memset(result, 0, sizeof(*result));
    auto e = engine_of(handle);
    if (auto r = e->run_next(budget_of(budget))) fill_result(*r, result);
  });
}

hearth_status hearth_request_stop(hearth_engine* handle) {
  return guarded([&] { engine_of(handle)->request_stop(); });
}

hearth_status hearth_job_status(hearth_engine* handle, int64_t job_id, char** json) {
  return guarded([&] {
    require_out(json, "json");
    *json = nullptr;
    auto e = engine_of(handle);
    hearth::Json j = e->job(job_id).to_json();
    hearth::Json curve = hearth::Json::array();
    for (const auto& p : e->job_metrics(job_id))
      if (p.name == "eval_loss") curve.push_back({{"step", p.step}, {"eval_loss", p.value}});
    j["eval_curve"] = curve;
    *json = copy_string(j.dump());
  });
}

hearth_status hearth_job_cancel(hearth_engine* handle, int64_t job_id) {
  return guarded([&] { engine_of(handle)->cancel_job(job_id); });
}

hearth_status hearth_federate_join(hearth_engine* handle, const char* coordinator, const char* user,
                                   double timeout_seconds, char** report_json) {
  return guarded([&] {
    if (report_json != nullptr) *report_json = nullptr;
    require(timeout_seconds >= 0 && timeout_seconds <= 86400, ErrorCode::kInvalidArgument,
            "timeout_seconds must be between 0 and 86400");
    engine::FederatedClientOptions o;
    std::tie(o.addr, o.port) = hearth::trainer::parse_host_port(text_arg(coordinator, "coordinator"), "coordinator");
    o.user = text_arg(user, "user");
    if (timeout_seconds > 0) o.timeout_seconds = timeout_seconds;
    const engine::FederatedClientReport r = engine::run_federated_client(*engine_of(handle), o);
    if (report_json != nullptr) *report_json = copy_string(r.to_json().dump());
  });
}

hearth_status hearth_adapter_load(hearth_engine* handle, const char* user, const char* name, int64_t version) {
  return guarded([&] {
    require(version >= 0, ErrorCode::kInvalidArgument, "version must be >= 0 (0: the newest or pinned one)");
    engine_of(handle)->load_adapter(text_arg(user, "user"), text_arg(name, "name"), version);
  });
}

hearth_generate_options hearth_generate_defaults(void) {
  hearth_generate_options o;
  o.max_tokens = 128;
  o.temperature = 0.8f;
  o.top_k = 40;
  o.top_p = 0.95f;
  o.repeat_penalty = 1.1f;
  o.seed = 0;
  o.chat = 0;
  return o;
}

hearth_status hearth_generate(hearth_engine* handle, const char* user, const char* adapter, const char* prompt,
                              const hearth_generate_options* options, hearth_token_fn on_token, void* user_data,
                              const int* cancel, char** text) {
  return guarded([&] {
    if (text != nullptr) *text = nullptr;
    engine::GenerateRequest r = generate_request(user, adapter, prompt, options);
    run_generation(*engine_of(handle), r, on_token, user_data, cancel, text);
  });
}

hearth_status hearth_generate_with_context(hearth_engine* handle, const char* user, const char* adapter,
                                           const char* prompt, const char* context, const char* ttt_json,
                                           const hearth_generate_options* options, hearth_token_fn on_token,
                                           void* user_data, const int* cancel, char** text, char** report) {
  return guarded([&] {
    if (text != nullptr) *text = nullptr;
    if (report != nullptr) *report = nullptr;
    auto e = engine_of(handle);
    engine::GenerateRequest r = generate_request(user, adapter, prompt, options);
    r.context = text_arg(context, "context");
    r.ttt = engine::TttSettings::from_json(hearth::parse_json(text_arg(ttt_json, "ttt_json"), "ttt_json"), "ttt_json");
    require(r.ttt.enabled(), ErrorCode::kInvalidArgument, "ttt_json: \"steps\" must be at least 1 for test-time training");
    engine::TttReport done;
    r.ttt_report = &done;
    run_generation(*e, r, on_token, user_data, cancel, text);
    if (report != nullptr) *report = copy_string(done.to_json().dump());
  });
}

void hearth_free_string(char* s) { std::free(s); }

}  // extern "C"
