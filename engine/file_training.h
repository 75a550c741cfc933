// Fine-tuning on files, the laptop use: no vault; the adapter (or, for full fine-tuning, the
// whole model) and the run's records (metrics.jsonl, loss curve, checkpoint for --resume) go to
// an output folder. `hearth train --data` is a thin layer over this.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "adapters/adapter_config.h"
#include "engine/job_spec.h"
#include "trainer/distributed_options.h"
#include "trainer/train_config.h"
#include "trainer/training_data.h"

namespace hearth::engine {

struct FileTrainingRequest {
  BaseModelSpec base;
  std::vector<std::filesystem::path> data;       // text, Markdown, chat or prompt/completion JSONL; folders
  std::vector<std::filesystem::path> eval_data;  // held-out files; when given, all of `data` is trained on
  trainer::DataOptions data_options;             // the held-out split when eval_data is empty
  bool full = false;                             // every weight instead of an adapter
  AdapterConfig adapter;
  trainer::TrainConfig config;                   // config.out is the output folder
  bool sandbox = true;                           // no sockets once the files are open (and the process group is formed)
  // Start the adapter from this PEFT folder (e.g. a federation's population adapter) instead of
  // PEFT's initialization; its rank, targets and layers must be those of `adapter`.
  std::filesystem::path init_adapter;
  // Data-parallel training over torch.distributed (trainer/process_group.h): every rank runs the
  // same request; rank 0 writes config.out.
  trainer::DistributedOptions distributed;
};

struct FileTrainingReport {
  trainer::TrainResult result;
  std::string method;  // lora | dora | full
  int64_t trainable_parameters = 0;
  int64_t train_rows = 0, eval_rows = 0;
  int world_size = 1, rank = 0;
  bool sandbox = false, sockets_blocked = false;
  Json to_json() const;
};

// Loads the model and the data, trains, and writes the result into config.out (a stopped run
// leaves its checkpoint there; run again with config.resume). kInvalidArgument for settings the
// model cannot take (e.g. full fine-tuning of a quantized base).
FileTrainingReport train_on_files(const FileTrainingRequest& request);

}  // namespace hearth::engine
