// Fuzz target: GGUF files (inference/gguf_file.h, gguf_model.h, gguf_tokenizer.h), as `hearth`
// reads a model someone downloaded. A file that parses must place every tensor's bytes inside
// itself at the declared alignment; the model reader then either refuses it or gives a config
// that validates and tensors of the shapes that config implies; the tokenizer reader either
// refuses it or gives a tokenizer whose encoding of a text stays inside its vocabulary.
#include "fuzz/harness.h"
#include "inference/gguf_file.h"
#include "inference/gguf_model.h"
#include "inference/gguf_tokenizer.h"
#include "inference/tokenizer/tokenizer.h"

using namespace hearth;

namespace {

void check_tensor_placement(const GgufFile& file, std::string_view input) {
  const uint8_t* begin = reinterpret_cast<const uint8_t*>(file.mapping()->data());
  for (const GgufTensorInfo& t : file.tensors()) {
    const uint8_t* data = file.tensor_data(t);
    fuzz::check(data >= begin && t.bytes <= input.size() && data - begin <= std::ptrdiff_t(input.size() - t.bytes),
                "tensor " + t.name + " lies outside the file");
    fuzz::check(file.alignment() > 0 && t.offset % file.alignment() == 0, "tensor " + t.name + " is not aligned");
  }
}

void check_model(const std::shared_ptr<GgufFile>& file) {
  GgufModel model = read_gguf_model(file);
  fuzz::must_succeed("validating the config read from it", [&] { model.config.validate("fuzz.gguf"); });
  const std::string embed = "model.embed_tokens.weight";
  if (model.tensors->contains(embed)) {
    // Reading a tensor may still refuse (a block type Hearth does not compute): that is clean.
    fuzz::refusal_is_clean([&] {
      const at::Tensor e = model.tensors->get(embed);
      fuzz::check(e.dim() == 2 && e.size(0) == model.config.vocab_size && e.size(1) == model.config.hidden_size,
                  "the embedding table's shape differs from the config's");
    });
  }
}

void check_tokenizer(const GgufFile& file) {
  const std::unique_ptr<Tokenizer> tok = load_gguf_tokenizer(file);
  const std::string text = "Once upon a time, 42 cats.";
  const std::vector<int32_t> ids = tok->encode(text, /*add_bos=*/false);
  for (int32_t id : ids) fuzz::check(id >= 0 && id < tok->vocab_size(), "an encoded id outside the vocabulary");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = fuzz::as_bytes(data, size);
  fuzz::refusal_is_clean([&] {
    const std::shared_ptr<GgufFile> file = GgufFile::from_bytes(input, "fuzz.gguf");
    check_tensor_placement(*file, input);
    fuzz::refusal_is_clean([&] { check_model(file); });
    fuzz::refusal_is_clean([&] { check_tokenizer(*file); });
  });
  return 0;
}
