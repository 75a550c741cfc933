// Fuzz target: safetensors files (core/safetensors.h). A file that opens must describe tensors
// inside its data section, view exactly those bytes, and survive a write/read round trip.
#include <cstring>

#include "core/safetensors.h"
#include "fuzz/harness.h"

using namespace hearth;

namespace {

// The data section as the format defines it, computed here independently of the reader.
std::string_view data_section(std::string_view file) {
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  return file.substr(8 + header_len);
}

void check_round_trip(const SafetensorsFile& file) {
  SafetensorsWriter writer;
  for (const auto& [key, value] : file.metadata()) writer.set_metadata(key, value);
  for (const auto& e : file.entries()) {
    if (e.name.empty()) return;  // a name the writer refuses to produce; nothing to compare
    writer.add(e.name, file.tensor(e.name));
  }
  fuzz::must_succeed("reading back the writer's bytes", [&] {
    auto again = SafetensorsFile::from_bytes(writer.to_bytes(), "round trip");
    fuzz::check(again->entries().size() == file.entries().size(), "round trip changed the tensor count");
    fuzz::check(again->metadata() == file.metadata(), "round trip changed the metadata");
    for (const auto& e : file.entries()) {
      const SafetensorsEntry& a = again->entry(e.name);
      fuzz::check(a.dtype == e.dtype && a.shape == e.shape, "round trip changed tensor " + e.name);
      fuzz::check(std::memcmp(again->bytes(e.name), file.bytes(e.name), e.end - e.begin) == 0,
                  "round trip changed the bytes of " + e.name);
    }
  });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = fuzz::as_bytes(data, size);
  fuzz::refusal_is_clean([&] {
    auto file = SafetensorsFile::from_bytes(input, "fuzz.safetensors");
    const std::string_view section = data_section(input);
    for (const SafetensorsEntry& e : file->entries()) {
      fuzz::check(e.begin <= e.end && e.end <= section.size(), "tensor " + e.name + " lies outside the data section");
      at::Tensor t = file->tensor(e.name);
      fuzz::check(t.nbytes() == e.end - e.begin, "tensor " + e.name + " views a different number of bytes");
      fuzz::check(t.numel() == 0 || std::memcmp(t.data_ptr(), section.data() + e.begin, t.nbytes()) == 0,
                  "tensor " + e.name + " views other bytes than its range");
    }
    check_round_trip(*file);
  });
  return 0;
}
