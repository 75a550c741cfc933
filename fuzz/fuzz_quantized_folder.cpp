// Fuzz target: model folders as load_model reads them (inference/model_loader.h): config.json
// (with or without hearth_quantization) and model.safetensors, or an index and its shards.
#include <cstdio>

#include "fuzz/harness.h"
#include "fuzz/input_parts.h"
#include "fuzz/scratch_dir.h"
#include "inference/model_builder.h"
#include "inference/model_loader.h"

using namespace hearth;

namespace {

constexpr int64_t kMaxForwardParameters = 1 << 20;
constexpr size_t kMaxShards = 3;

// Parts: config.json, then model.safetensors; or config.json, model.safetensors.index.json and
// shards named model-00001.safetensors, model-00002.safetensors, ...
std::filesystem::path write_folder(const std::vector<std::string_view>& parts) {
  const auto dir = fuzz::fresh_scratch_folder("model");
  fuzz::write_bytes(dir / "config.json", parts[0]);
  if (parts.size() == 2) fuzz::write_bytes(dir / "model.safetensors", parts[1]);
  if (parts.size() > 2) {
    fuzz::write_bytes(dir / "model.safetensors.index.json", parts[1]);
    for (size_t i = 2; i < parts.size(); ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "model-%05zu.safetensors", i - 1);
      fuzz::write_bytes(dir / name, parts[i]);
    }
  }
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_bytes(data, size), 2 + kMaxShards);
  const auto dir = write_folder(parts);
  fuzz::refusal_is_clean([&] {
    // The tokenizer is named so the folder needs none; only the weights are under test.
    const ModelSource source = open_model_source(dir, dir / "tokenizer.json");
    auto decoder = build_decoder(source.config, *source.tensors, LoadOptions{}, source.quantization);
    if (source.config.parameter_count() > kMaxForwardParameters) return;
    ForwardInput input;
    input.tokens = at::tensor({int64_t(0), source.config.vocab_size - 1}, at::kLong).view({1, 2});
    fuzz::must_succeed("a forward step", [&] {
      const at::Tensor logits = decoder->forward(input);
      fuzz::check(logits.size(-1) == source.config.vocab_size, "logits of the wrong width");
    });
  });
  return 0;
}
