#include "engine/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <mutex>

#include "adapters/adapter_bundle.h"
#include "adapters/adapter_set.h"
#include "core/error.h"
#include "engine/job_runner.h"
#include "engine/training_plan.h"
#include "privacy/sandbox.h"
#include "privacy/secret_key.h"
#include "storage/audit_log.h"
#include "storage/backup.h"
#include "storage/database.h"
#include "storage/job_store.h"
#include "storage/orphan_files.h"
#include "storage/vault.h"

namespace hearth::engine {

namespace {

std::unique_ptr<storage::Vault> open_vault(const EngineOptions& o) {
  if (o.key) return std::make_unique<storage::Vault>(o.home, *o.key);
  return std::make_unique<storage::Vault>(o.home, storage::Vault::WithoutKey{});
}

}  // namespace

class Engine::Impl {
 public:
  explicit Impl(EngineOptions o) : options_(std::move(o)), vault_(open_vault(options_)) {
    if (options_.actor.empty()) options_.actor = storage::current_os_actor();
    const int64_t reclaimed = jobs().reclaim_dead_runs();
    if (reclaimed > 0) spdlog::info("{} job(s) left running by a process that died are paused", reclaimed);
    const int64_t swept = storage::sweep_orphan_files(vault_->db(), vault_->home());
    if (swept > 0) spdlog::info("removed {} sealed file(s) that no record names (left by a killed write)", swept);
    if (options_.sandbox) privacy::enter_no_network_sandbox();
  }

  // For the calls that decrypt or seal: an engine opened without a key cannot.
  void require_key() const {
    require(vault_->unlocked(), ErrorCode::kAuthentication,
            "this needs the vault's key, and the engine was opened without one; give the passphrase "
            "(HEARTH_PASSPHRASE or a prompt), a key file or the keystore's key");
  }

  storage::JobStore jobs() { return storage::JobStore(vault_->db(), vault_->keyring(), vault_->home()); }
  storage::AdapterRegistry registry() { return storage::AdapterRegistry(vault_->db(), vault_->keyring(), vault_->home()); }
  storage::UserRecord user(const std::string& name) { return storage::UserStore(vault_->db()).get(name); }

  const LoadedModel& base() const {
    require(base_spec_.has_value(), ErrorCode::kInvalidArgument, "no base model is loaded; load one first (load_base / --model)");
    return base_;
  }

  void load_base(const BaseModelSpec& spec) {
    require(!spec.path.empty(), ErrorCode::kInvalidArgument, "the base model path is empty");
    if (base_spec_ && base_spec_->to_json() == spec.to_json()) return;
    LoadedModel loaded = load_model(spec.path, spec.load_options(), spec.tokenizer);
    base_ = std::move(loaded);
    base_spec_ = spec;
    adapters_ = std::make_unique<AdapterSet>(base_.decoder);
  }

  // Job reads use their own connection and no engine lock, so status stays readable from
  // another thread while a slice runs (the database serializes with the runner's writes).
  JobInfo job_info(storage::Database& db, const storage::JobRecord& r) {
    JobInfo info;
    info.id = r.id;
    info.status = r.status;
    info.spec = JobSpec::from_json(r.config, "job " + std::to_string(r.id));
    info.user = info.spec.user;
    info.progress = JobProgress::from_json(r.progress);
    if (info.progress.steps == 0) info.progress.steps = info.spec.training.steps;  // not started yet
    info.created = r.created;
    info.updated = r.updated;
    if (r.adapter_id != 0)
      info.adapter_version = storage::AdapterRegistry(db, vault_->keyring(), vault_->home()).get(r.user_id, r.adapter_id).version;
    return info;
  }

  storage::IngestOptions ingest_options(const std::string& user, std::optional<privacy::RedactionMode> redaction) const {
    storage::IngestOptions options;
    options.user = user;
    options.redaction = redaction;
    options.actor = options_.actor;
    return options;
  }

  SliceResult run_slice(int64_t job_id, const SliceBudget& budget) {
    require_key();
    const JobSpec spec = JobSpec::from_json(jobs().get(job_id).config, "job " + std::to_string(job_id));
    load_base(spec.base);  // the job's base, if the engine holds another
    stop_.store(false);
    SliceContext ctx{*vault_, base_, *base_spec_, options_.actor, stop_};
    return run_job_slice(ctx, job_id, budget);
  }

  std::string load_adapter(const std::string& user_name, const std::string& name, int64_t version) {
    require_key();
    base();
    const storage::UserRecord u = user(user_name);
    storage::AdapterRegistry reg = registry();
    std::optional<storage::AdapterRecord> rec = version > 0 ? reg.find(u.id, name, version) : reg.serving(u.id, name);
    require(rec.has_value(), ErrorCode::kNotFound,
            "user \"" + user_name + "\" has no adapter \"" + name + "\"" +
                (version > 0 ? " version " + std::to_string(version) : std::string()) + "; train one with a job first");
    const std::string key = user_name + "/" + name + "@v" + std::to_string(rec->version);
    for (const std::string& loaded : adapters_->names())
      if (loaded == key) return key;
    std::string bytes = reg.open_file(*rec);
    try {
      adapters_->add(key, load_adapter_bundle(bytes, "adapter \"" + key + "\"", *base_.decoder, base_.fingerprint));
    } catch (...) {
      privacy::wipe(bytes);
      throw;
    }
    privacy::wipe(bytes);
    spdlog::info("applied adapter {} (\"{}\" v{}) of user {}", rec->id, rec->name, rec->version, user_name);
    return key;
  }

  GenerationResult generate(const GenerateRequest& request, const TextCallback& on_text, const std::atomic<bool>* cancel) {
    base();
    const std::string key = request.adapter.empty() ? "" : load_adapter(request.user, request.adapter, request.version);
    adapters_->activate(key);
    std::vector<int32_t> ids;
    const Tokenizer& tok = *base_.tokenizer;
    if (request.chat) {
      const ChatTemplate* tmpl = tok.chat_template();
      require(tmpl != nullptr, ErrorCode::kInvalidArgument, "chat: this model's tokenizer has no chat template");
      std::vector<ChatMessage> messages;
      if (!request.system.empty()) messages.push_back({"system", request.system});
      messages.push_back({"user", request.prompt});
      ids = tok.encode(tmpl->render(messages, /*add_generation_prompt=*/true), /*add_bos=*/false);
    } else {
      ids = tok.encode(request.prompt, /*add_bos=*/true);
    }
    GenerationOptions options = request.options;
    if (cancel != nullptr) options.cancel = cancel;
    if (request.ttt.enabled()) return generate_after_ttt(request, key, ids, options, on_text, cancel);
    return hearth::generate(*base_.decoder, tok, ids, options, on_text);
  }

  // Trains the request's short-lived adapter on its context, answers with it on a decoder of its
  // own over the same weights (the adapter set's slots stay as they are), then drops it.
  GenerationResult generate_after_ttt(const GenerateRequest& request, const std::string& key,
                                      const std::vector<int32_t>& ids, const GenerationOptions& options,
                                      const TextCallback& on_text, const std::atomic<bool>* cancel) {
    require(!request.context.empty(), ErrorCode::kInvalidArgument,
            "test-time training needs a context: give the text to learn from");
    const std::shared_ptr<Adapter> init = key.empty() ? nullptr : adapters_->get(key);
    const std::vector<int32_t> context = base_.tokenizer->encode(request.context, /*add_bos=*/true);
    TttReport report;
    std::shared_ptr<Adapter> trained = train_on_context(*base_.decoder, context, request.ttt, init, &report, cancel);
    if (request.ttt_report) *request.ttt_report = report;
    Decoder decoder(*base_.decoder);
    attach_adapter(decoder, trained);
    return hearth::generate(decoder, *base_.tokenizer, ids, options, on_text);
  }

  EngineOptions options_;
  std::unique_ptr<storage::Vault> vault_;
  std::optional<BaseModelSpec> base_spec_;
  LoadedModel base_;
  std::unique_ptr<AdapterSet> adapters_;
  std::atomic<bool> stop_{false};
  mutable std::recursive_mutex mu_;
};

Engine::Engine(EngineOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Engine::~Engine() = default;

const std::filesystem::path& Engine::home() const { return impl_->vault_->home(); }

void Engine::load_base(const BaseModelSpec& spec) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  impl_->load_base(spec);
}

bool Engine::has_base() const {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return impl_->base_spec_.has_value();
}

const LoadedModel& Engine::base() const {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return impl_->base();
}

storage::IngestReport Engine::ingest_files(const std::string& user, const std::vector<std::filesystem::path>& files,
                                           std::optional<privacy::RedactionMode> redaction) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  impl_->require_key();
  const storage::IngestOptions options = impl_->ingest_options(user, redaction);
  storage::IngestReport report = storage::ingest_files(impl_->vault_->db(), impl_->vault_->keyring(), files, options);
  storage::back_up_after_job(impl_->vault_->db());  // the last good state, for `hearth doctor --restore`
  return report;
}

storage::IngestReport Engine::ingest_texts(const std::string& user, const std::vector<storage::IngestItem>& items,
                                           std::optional<privacy::RedactionMode> redaction) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  impl_->require_key();
  const storage::IngestOptions options = impl_->ingest_options(user, redaction);
  storage::IngestReport report = storage::ingest_items(impl_->vault_->db(), impl_->vault_->keyring(), items, options);
  storage::back_up_after_job(impl_->vault_->db());
  return report;
}

std::vector<storage::UserRecord> Engine::users() {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return storage::UserStore(impl_->vault_->db()).list();
}

std::vector<storage::RecordInfo> Engine::list_data(const std::string& user) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return storage::RecordStore(impl_->vault_->db(), impl_->vault_->keyring()).list(impl_->user(user).id);
}

int64_t Engine::count_data(const std::string& user, storage::RecordKind kind) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return storage::RecordStore(impl_->vault_->db(), impl_->vault_->keyring()).count(impl_->user(user).id, kind);
}

std::string Engine::show_document(const std::string& user, int64_t id) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  impl_->require_key();
  const storage::UserRecord u = impl_->user(user);
  std::string text = storage::RecordStore(impl_->vault_->db(), impl_->vault_->keyring()).open_document(u.id, id);
  storage::AuditLog(impl_->vault_->db()).append(impl_->options_.actor, "show", u.id, 1, "kind=document");
  return text;
}

storage::TrainingExample Engine::show_example(const std::string& user, int64_t id) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  impl_->require_key();
  const storage::UserRecord u = impl_->user(user);
  storage::TrainingExample e = storage::RecordStore(impl_->vault_->db(), impl_->vault_->keyring()).open_example(u.id, id);
  storage::AuditLog(impl_->vault_->db()).append(impl_->options_.actor, "show", u.id, 1, "kind=example");
  return e;
}

void Engine::delete_data(const std::string& user, storage::RecordKind kind, const std::vector<int64_t>& ids) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  require(!ids.empty(), ErrorCode::kInvalidArgument, "no records to delete");
  storage::Database& db = impl_->vault_->db();
  storage::Transaction tx(db);
  const storage::UserRecord u = impl_->user(user);
  storage::RecordStore records(db, impl_->vault_->keyring());
  for (int64_t id : ids) {
    require(records.remove(u.id, kind, id), ErrorCode::kNotFound,
            std::string(storage::record_kind_name(kind)) + " " + std::to_string(id) + " of user \"" + user +
                "\" does not exist; nothing was deleted");
  }
  storage::AuditLog(db).append(impl_->options_.actor, "delete", u.id, static_cast<int64_t>(ids.size()),
                               std::string("kind=") + storage::record_kind_name(kind));
  tx.commit();
  storage::back_up_after_job(db);  // the backup no longer holds the deleted records
}

storage::ForgetReport Engine::forget(const std::string& user) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  // Adapters of the user loaded here go first: their weights are derived from the user's data.
  if (impl_->adapters_) {
    for (const std::string& key : impl_->adapters_->names())
      if (key.rfind(user + "/", 0) == 0) impl_->adapters_->remove(key);
  }
  return storage::forget_user(impl_->vault_->db(), impl_->vault_->home(), user, impl_->options_.actor);
}

int64_t Engine::submit_job(const JobSpec& spec_in) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  JobSpec spec = spec_in;
  if (spec.base.path.empty()) {
    require(impl_->base_spec_.has_value(), ErrorCode::kInvalidArgument,
            "a job needs a base model: load one first or name it in the job");
    spec.base = *impl_->base_spec_;
  }
  spec.base.load_options();
  spec.training.validate();
  adapter_config_of(spec.training);  // targets and method names checked now, not at the first slice
  const storage::UserRecord u = impl_->user(spec.user);
  const int64_t id = impl_->jobs().create(u.id, "train", spec.to_json()).id;
  storage::AuditLog(impl_->vault_->db()).append(impl_->options_.actor, "submit_job", u.id, 0, "job=" + std::to_string(id));
  return id;
}

JobInfo Engine::job(int64_t job_id) {
  storage::Database db(impl_->vault_->db().path());
  return impl_->job_info(db, storage::JobStore(db, impl_->vault_->keyring(), impl_->vault_->home()).get(job_id));
}

std::vector<JobInfo> Engine::jobs(const std::string& user) {
  storage::Database db(impl_->vault_->db().path());
  storage::JobStore store(db, impl_->vault_->keyring(), impl_->vault_->home());
  std::vector<JobInfo> out;
  for (const storage::JobRecord& r : user.empty() ? store.list_all() : store.list(storage::UserStore(db).get(user).id))
    out.push_back(impl_->job_info(db, r));
  return out;
}

std::vector<storage::MetricPoint> Engine::job_metrics(int64_t job_id) {
  storage::Database db(impl_->vault_->db().path());
  storage::JobStore store(db, impl_->vault_->keyring(), impl_->vault_->home());
  store.get(job_id);  // kNotFound for an unknown job
  return store.metrics(job_id);
}

SliceResult Engine::run_slice(int64_t job_id, const SliceBudget& budget) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return impl_->run_slice(job_id, budget);
}

std::optional<SliceResult> Engine::run_next(const SliceBudget& budget) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  // Round robin: the job that ran least recently goes first, so several users' jobs share the
  // device's good moments instead of the oldest one taking them all.
  std::vector<storage::JobRecord> runnable = impl_->jobs().list_all();
  std::stable_sort(runnable.begin(), runnable.end(),
                   [](const storage::JobRecord& a, const storage::JobRecord& b) { return a.updated < b.updated; });
  for (const storage::JobRecord& r : runnable) {
    if (r.status != "queued" && r.status != "paused") continue;
    const JobSpec spec = JobSpec::from_json(r.config, "job " + std::to_string(r.id));
    if (budget.device && !spec.policy.refusal(budget.device()).empty()) continue;
    return impl_->run_slice(r.id, budget);
  }
  return std::nullopt;
}

LocalUpdate Engine::train_local_update(const std::string& user, const Adapter& start, const TrainingSpec& spec) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  impl_->require_key();
  impl_->base();
  return engine::train_local_update(*impl_->vault_, impl_->base_, impl_->base_spec_->path, impl_->options_.actor, user,
                                    start, spec);
}

void Engine::request_stop() { impl_->stop_.store(true); }

void Engine::cancel_job(int64_t job_id) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  storage::JobStore store = impl_->jobs();
  const storage::JobRecord r = store.get(job_id);
  require(r.status == "queued" || r.status == "paused" || (r.status == "running" && !r.owner.alive()),
          ErrorCode::kInvalidArgument,
          "job " + std::to_string(job_id) + " is " + r.status +
              (r.status == "running" ? " in process " + std::to_string(r.owner.pid) + "; stop that process's slice first"
                                     : "; only queued or paused jobs can be cancelled"));
  store.release(job_id, "cancelled");
  store.prune_checkpoints(job_id, 0);
}

std::vector<storage::AdapterRecord> Engine::adapter_versions(const std::string& user, const std::string& name) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  std::vector<storage::AdapterRecord> out;
  for (const storage::AdapterRecord& r : impl_->registry().list(impl_->user(user).id))
    if (name.empty() || r.name == name) out.push_back(r);
  return out;
}

void Engine::pin_adapter(const std::string& user, const std::string& name, int64_t version) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  impl_->registry().pin(impl_->user(user).id, name, version);
}

std::string Engine::load_adapter(const std::string& user, const std::string& name, int64_t version) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return impl_->load_adapter(user, name, version);
}

void Engine::unload_adapter(const std::string& key) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  require(impl_->adapters_ != nullptr, ErrorCode::kNotFound, "no adapter named \"" + key + "\" is loaded");
  impl_->adapters_->remove(key);
}

std::shared_ptr<Adapter> Engine::loaded_adapter(const std::string& key) const {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  require(impl_->adapters_ != nullptr, ErrorCode::kNotFound, "no adapter named \"" + key + "\" is loaded");
  return impl_->adapters_->get(key);
}

std::vector<std::string> Engine::loaded_adapters() const {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return impl_->adapters_ ? impl_->adapters_->names() : std::vector<std::string>{};
}

GenerationResult Engine::generate(const GenerateRequest& request, const TextCallback& on_text,
                                  const std::atomic<bool>* cancel) {
  std::lock_guard<std::recursive_mutex> lock(impl_->mu_);
  return impl_->generate(request, on_text, cancel);
}

}  // namespace hearth::engine
