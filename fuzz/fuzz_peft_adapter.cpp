// Fuzz target: PEFT adapter folders (adapters/peft_files.h): adapter_config.json,
// adapter_model.safetensors and an optional hearth.json, loaded onto the real stories260K.
#include "adapters/peft_files.h"
#include "fuzz/fixtures.h"
#include "fuzz/harness.h"
#include "fuzz/input_parts.h"
#include "fuzz/scratch_dir.h"

using namespace hearth;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  fuzz::stories260k();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = fuzz::split_parts(fuzz::as_bytes(data, size), 3);
  const auto dir = fuzz::fresh_scratch_folder("adapter");
  fuzz::write_bytes(dir / "adapter_config.json", parts[0]);
  if (parts.size() > 1) fuzz::write_bytes(dir / "adapter_model.safetensors", parts[1]);
  if (parts.size() > 2) fuzz::write_bytes(dir / "hearth.json", parts[2]);
  const LoadedModel& base = fuzz::stories260k();
  fuzz::refusal_is_clean([&] {
    const AdapterFileInfo info = read_peft_adapter_info(dir);
    fuzz::check(info.parameter_count >= 0 && info.tensor_count >= 0, "negative adapter sizes");
    const auto adapter = load_peft_adapter(dir, *base.decoder, base.fingerprint);
    fuzz::check(adapter->parameter_count() == info.parameter_count, "the loaded adapter's size differs from its file's");
    fuzz::must_succeed("a forward step with the adapter", [&] { fuzz::forward_with_adapter(base, adapter); });
  });
  return 0;
}
