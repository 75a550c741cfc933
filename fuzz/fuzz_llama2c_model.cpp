// Fuzz target: llama2.c model files (inference/llama2c_model.h). A file that opens must build a
// decoder whose views lie inside the file and run one forward step (fp32, or quantized at load).
#include "core/mapped_file.h"
#include "fuzz/harness.h"
#include "inference/llama2c_model.h"
#include "inference/model_builder.h"

using namespace hearth;

namespace {

// Models this small run a forward step within the time budget of one input.
constexpr int64_t kMaxForwardParameters = 1 << 20;

void check_views_inside(const Llama2cModel& model, const MappedFile& file) {
  const auto* begin = file.data();
  const auto* end = file.data() + file.size();
  for (const std::string& name : model.tensors->names()) {
    const at::Tensor t = model.tensors->get(name);
    const auto* p = static_cast<const uint8_t*>(t.data_ptr());
    if (p < begin || p >= end) continue;  // a copy (the permuted q/k rows)
    fuzz::check(p + t.nbytes() <= end, "tensor " + name + " views bytes past the end of the file");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::refusal_is_clean([&] {
    auto file = MappedFile::from_bytes(fuzz::as_bytes(data, size), "fuzz.bin");
    const Llama2cModel model = read_llama2c_model(file);
    check_views_inside(model, *file);
    if (model.config.parameter_count() > kMaxForwardParameters) return;
    LoadOptions options;
    if (size % 3 == 1) options.quant = QuantFormat::kNF4;  // the input's length picks the load path
    if (size % 3 == 2) options.quant = QuantFormat::kInt8;
    // Quantizing refuses NaN or infinite weights (a clean error); a dense model runs whatever it holds.
    auto decoder = build_decoder(model.config, *model.tensors, options, std::nullopt);
    const int64_t vocab = model.config.vocab_size;
    ForwardInput input;
    input.tokens = at::tensor({int64_t(0), vocab - 1}, at::kLong).view({1, 2});
    fuzz::must_succeed("a forward step", [&] {
      const at::Tensor logits = decoder->forward(input);
      fuzz::check(logits.size(-1) == vocab, "logits of the wrong width");
    });
  });
  return 0;
}
