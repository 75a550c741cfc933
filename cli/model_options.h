// The options every command that loads a model shares (--model, --tokenizer, --dtype,
// --quant, --embeddings, --adapter), and loading the model they describe.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "engine/job_spec.h"
#include "inference/model_loader.h"

namespace hearth::cli {

struct ModelOptions {
  std::string model;
  std::string tokenizer;
  std::string dtype = "fp32";
  std::string quant;
  std::string embeddings = "int8";
  std::string adapter;  // a PEFT adapter folder attached after loading

  // with_adapter = false for commands that name an adapter for another purpose (merge).
  void add_to(CLI::App& app, bool with_adapter = true);
  LoadOptions load_options() const;
  // The same model as the engine names it (the adapter folder is not part of it).
  engine::BaseModelSpec base_spec() const;
  LoadedModel load() const;
};

}  // namespace hearth::cli
