// Fuzz target: adapter bundles, the one-string form of an adapter the vault seals
// (adapters/adapter_bundle.h), loaded onto the real stories260K.
#include "adapters/adapter_bundle.h"
#include "fuzz/fixtures.h"
#include "fuzz/harness.h"

using namespace hearth;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  fuzz::stories260k();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes = fuzz::as_bytes(data, size);
  const LoadedModel& base = fuzz::stories260k();
  fuzz::refusal_is_clean([&] {
    const AdapterFileInfo info = read_adapter_bundle_info(bytes, "fuzz bundle");
    const auto adapter = load_adapter_bundle(bytes, "fuzz bundle", *base.decoder, base.fingerprint);
    fuzz::check(adapter->parameter_count() == info.parameter_count, "the loaded adapter's size differs from its bundle's");
    fuzz::must_succeed("a forward step with the adapter", [&] { fuzz::forward_with_adapter(base, adapter); });
  });
  return 0;
}
