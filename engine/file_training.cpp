#include "engine/file_training.h"

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "inference/model_loader.h"
#include "adapters/adapter.h"
#include "adapters/peft_files.h"
#include "privacy/sandbox.h"
#include "trainer/process_group.h"
#include "trainer/packing.h"
#include "trainer/trainer.h"

namespace hearth::engine {

Json FileTrainingReport::to_json() const {
  Json j = result.to_json();
  j["method"] = method;
  j["trainable_parameters"] = trainable_parameters;
  j["train_rows"] = train_rows;
  j["eval_rows"] = eval_rows;
  j["sandbox"] = sandbox;
  j["sockets_blocked"] = sockets_blocked;
  if (world_size > 1) {
    j["world_size"] = world_size;
    j["rank"] = rank;
  }
  return j;
}

namespace {

// Copies a saved adapter's tensors into the fresh trainable (same names, same shapes).
void start_from(trainer::Trainable& trainable, const std::filesystem::path& dir, const Decoder& decoder,
                const std::string& fingerprint) {
  require(trainable.adapter_ptr() != nullptr, ErrorCode::kInvalidArgument, "--init-adapter applies to lora and dora, not full");
  const std::shared_ptr<Adapter> init = load_peft_adapter(dir, decoder, fingerprint);
  const auto from = init->named_parameters();
  const auto& to = trainable.named_parameters();
  bool same = from.size() == to.size();
  for (size_t i = 0; same && i < to.size(); ++i) same = from[i].first == to[i].first && from[i].second.sizes() == to[i].second.sizes();
  require(same, ErrorCode::kInvalidArgument,
          "--init-adapter " + dir.string() + " has another shape (rank " + std::to_string(init->config().rank) +
              ", targets, layers) than this run's adapter; give the same --rank, --targets and --layers");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < to.size(); ++i) to[i].second.copy_(from[i].second);
}

}  // namespace

FileTrainingReport train_on_files(const FileTrainingRequest& request) {
  require(!request.data.empty(), ErrorCode::kInvalidArgument, "no training data: give --data FILE...");
  request.config.validate();
  if (!request.full) request.adapter.validate();
  LoadOptions load = request.base.load_options();
  load.row_tiles = false;  // training reads the row-major codes only
  LoadedModel m = load_model(request.base.path, load, request.base.tokenizer);
  request.config.validate_for_model(m.decoder->config());  // --seq-len within the context, before packing
  trainer::DataOptions options = request.data_options;
  if (!request.eval_data.empty()) options.eval_fraction = 0;  // held out: the eval files, whole
  trainer::TrainingData docs = trainer::load_training_data(request.data, *m.tokenizer, options);
  if (!request.eval_data.empty()) docs.eval = trainer::load_training_data(request.eval_data, *m.tokenizer, options).train;
  // The process group's connections are opened before the sandbox; it forbids new ones only.
  std::shared_ptr<trainer::ProcessGroup> group;
  if (request.distributed.enabled()) {
    spdlog::info("data-parallel: rank {} of {}, rendezvous at {}:{}", request.distributed.rank, request.distributed.world_size,
                 request.distributed.master_addr, request.distributed.master_port);
    group = trainer::ProcessGroup::connect(request.distributed);
  }
  // Every file is read; from here on the run needs no network.
  if (request.sandbox) privacy::enter_no_network_sandbox();
  const trainer::PackedRows train_rows = trainer::pack_documents(docs.train, request.config.seq_len);
  const trainer::PackedRows eval_rows = trainer::pack_documents(docs.eval, request.config.seq_len);
  spdlog::info("data: {} training rows ({} trained tokens), {} held-out rows of {} positions", train_rows.rows(),
               train_rows.trained_tokens(), eval_rows.rows(), request.config.seq_len);
  trainer::Trainable trainable = request.full ? trainer::Trainable::full(*m.decoder)
                                              : trainer::Trainable::adapter(*m.decoder, request.adapter);
  if (!request.init_adapter.empty()) start_from(trainable, request.init_adapter, *m.decoder, m.fingerprint);
  spdlog::info("training {} parameters ({}) with {}", trainable.parameter_count(), trainable.method(),
               request.config.optimizer.describe());
  trainer::TrainConfig config = request.config;
  config.group = group;
  FileTrainingReport report;
  report.result = trainer::train(*m.decoder, trainable, train_rows, eval_rows, config, {request.base.path, m.fingerprint});
  report.world_size = request.distributed.world_size;
  report.rank = request.distributed.rank;
  report.method = trainable.method();
  report.trainable_parameters = trainable.parameter_count();
  report.train_rows = train_rows.rows();
  report.eval_rows = eval_rows.rows();
  report.sandbox = privacy::in_no_network_sandbox();
  report.sockets_blocked = report.sandbox && privacy::socket_creation_blocked();
  return report;
}

}  // namespace hearth::engine
