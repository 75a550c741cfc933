// Fuzz target: tokenizer.json, with an optional tokenizer_config.json as a second part
// (inference/tokenizer/bpe_tokenizer.h). A loaded tokenizer must encode to ids it can decode.
#include "fuzz/harness.h"
#include "fuzz/input_parts.h"
#include "fuzz/sample_texts.h"
#include "inference/tokenizer/bpe_tokenizer.h"

using namespace hearth;

namespace {

void check_encodes(const BpeTokenizer& tokenizer, std::string_view text) {
  fuzz::must_succeed("encode and decode", [&] {
    const std::vector<int32_t> ids = tokenizer.encode(text, /*add_bos=*/true);
    for (int32_t id : ids) fuzz::check(id >= 0 && id < tokenizer.vocab_size(), "encode gave an id outside the vocabulary");
    tokenizer.decode(ids);
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_bytes(data, size), 2);
  fuzz::refusal_is_clean([&] {
    const Json json = parse_json(parts[0], "tokenizer.json");
    const Json config = parts.size() > 1 ? parse_json(parts[1], "tokenizer_config.json") : Json();
    const BpeTokenizer tokenizer(json, config, "fuzz tokenizer.json");
    for (std::string_view text : fuzz::kSampleTexts) check_encodes(tokenizer, text);
    for (int32_t id : tokenizer.stop_ids()) fuzz::check(id >= 0 && id < tokenizer.vocab_size(), "a stop id outside the vocabulary");
  });
  return 0;
}
