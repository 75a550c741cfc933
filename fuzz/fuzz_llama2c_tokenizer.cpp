// Fuzz target: llama2.c tokenizer files (inference/tokenizer/llama2c_tokenizer.h). A vocabulary
// that loads must encode the sample texts to ids it can decode.
#include "fuzz/harness.h"
#include "fuzz/sample_texts.h"
#include "inference/tokenizer/llama2c_tokenizer.h"

using namespace hearth;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::refusal_is_clean([&] {
    const auto tokenizer = Llama2cTokenizer::from_bytes(fuzz::as_bytes(data, size), "fuzz tok.bin");
    for (std::string_view text : fuzz::kSampleTexts) {
      fuzz::must_succeed("encode and decode", [&] {
        const std::vector<int32_t> ids = tokenizer->encode(text, /*add_bos=*/true);
        for (int32_t id : ids) fuzz::check(id >= 0 && id < tokenizer->vocab_size(), "encode gave an id outside the vocabulary");
        tokenizer->decode(ids);
      });
    }
  });
  return 0;
}
