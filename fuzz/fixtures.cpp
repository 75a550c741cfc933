#include "fuzz/fixtures.h"

#include "adapters/adapter_set.h"
#include "core/assets.h"
#include "fuzz/harness.h"
#include "fuzz/scratch_dir.h"
#include "inference/tokenizer/synthetic_tokenizer.h"

namespace hearth::fuzz {

const LoadedModel& stories260k() {
  static const LoadedModel* model = new LoadedModel(load_model(asset_path("models/stories260K/stories260K.bin"), LoadOptions{}));
  return *model;
}

void forward_with_adapter(const LoadedModel& base, const std::shared_ptr<Adapter>& adapter) {
  struct Detach {
    Decoder& decoder;
    ~Detach() { detach_adapters(decoder); }
  } detach{*base.decoder};
  at::InferenceMode inference;
  attach_adapter(*base.decoder, adapter);
  ForwardInput input;
  input.tokens = at::tensor({int64_t(1), int64_t(2)}, at::kLong).view({1, 2});
  const at::Tensor logits = base.decoder->forward(input);
  check(logits.size(-1) == base.decoder->config().vocab_size, "logits of the wrong width");
}

const Tokenizer& qwen3_tokenizer() {
  static const Tokenizer* tokenizer = load_tokenizer(asset_path("tokenizers/qwen3/tokenizer.json")).release();
  return *tokenizer;
}

const Json& small_bpe_tokenizer_json() {
  static const Json* json = [] {
    const auto dir = fresh_scratch_folder("small_bpe");
    write_synthetic_bpe_tokenizer(dir, 300, ChatFamily::kChatML);
    auto* j = new Json(read_json_file(dir / "tokenizer.json"));
    int32_t id = 300;
    for (const char* special : {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                "<|eot_id|>", "</s>", "<s>"}) {
      (*j)["added_tokens"].push_back({{"id", id++}, {"content", special}, {"single_word", false}, {"lstrip", false},
                                      {"rstrip", false}, {"normalized", false}, {"special", true}});
    }
    return j;
  }();
  return *json;
}

}  // namespace hearth::fuzz
