#include "engine/file_training.h"

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "inference/model_loader.h"
#include "privacy/sandbox.h"
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
  return j;
}

FileTrainingReport train_on_files(const FileTrainingRequest& request) {
  require(!request.data.empty(), ErrorCode::kInvalidArgument, "no training data: give --data FILE...");
  request.config.validate();
  if (!request.full) request.adapter.validate();
  LoadedModel m = load_model(request.base.path, request.base.load_options(), request.base.tokenizer);
  request.config.validate_for_model(m.decoder->config());  // --seq-len within the context, before packing
  trainer::DataOptions options = request.data_options;
  if (!request.eval_data.empty()) options.eval_fraction = 0;  // held out: the eval files, whole
  trainer::TrainingData docs = trainer::load_training_data(request.data, *m.tokenizer, options);
  if (!request.eval_data.empty()) docs.eval = trainer::load_training_data(request.eval_data, *m.tokenizer, options).train;
  // Every file is read; from here on the run needs no network.
  if (request.sandbox) privacy::enter_no_network_sandbox();
  const trainer::PackedRows train_rows = trainer::pack_documents(docs.train, request.config.seq_len);
  const trainer::PackedRows eval_rows = trainer::pack_documents(docs.eval, request.config.seq_len);
  spdlog::info("data: {} training rows ({} trained tokens), {} held-out rows of {} positions", train_rows.rows(),
               train_rows.trained_tokens(), eval_rows.rows(), request.config.seq_len);
  trainer::Trainable trainable = request.full ? trainer::Trainable::full(*m.decoder)
                                              : trainer::Trainable::adapter(*m.decoder, request.adapter);
  spdlog::info("training {} parameters ({}) with {}", trainable.parameter_count(), trainable.method(),
               request.config.optimizer.describe());
  FileTrainingReport report;
  report.result = trainer::train(*m.decoder, trainable, train_rows, eval_rows, request.config, {request.base.path, m.fingerprint});
  report.method = trainable.method();
  report.trainable_parameters = trainable.parameter_count();
  report.train_rows = train_rows.rows();
  report.eval_rows = eval_rows.rows();
  report.sandbox = privacy::in_no_network_sandbox();
  report.sockets_blocked = report.sandbox && privacy::socket_creation_blocked();
  return report;
}

}  // namespace hearth::engine
