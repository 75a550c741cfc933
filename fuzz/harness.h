// What every fuzz target shares: one-time set-up (one thread, no log output), and the rule
// that a hearth::Error is the clean refusal a parser promises while anything else is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace hearth::fuzz {

// Call from LLVMFuzzerInitialize: one thread (inputs are tiny; the machine is shared) and
// logging off (a warning per input would drown libFuzzer's own output).
void init();

// The input as bytes.
inline std::string_view as_bytes(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Reports a broken invariant with the input's context and aborts, so libFuzzer saves the input.
[[noreturn]] void finding(const std::string& what);
inline void check(bool ok, const std::string& what) {
  if (!ok) finding(what);
}

// Runs `parse`: a hearth::Error with a message is a clean refusal and ends the run quietly.
// Any other exception (std::bad_alloc, a LibTorch c10::Error, nlohmann::json's own) escapes to
// libFuzzer, which reports it as a crash: untrusted bytes reached a layer that does not promise
// a clear message.
template <typename Fn>
void refusal_is_clean(Fn&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    check(std::string_view(e.what()).size() > 0, "a hearth::Error without a message");
  }
}

// Runs `step`, which must succeed on what an earlier step accepted (a round trip, a render of a
// loaded template): a hearth::Error here is a finding too.
template <typename Fn>
void must_succeed(const char* what, Fn&& step) {
  try {
    step();
  } catch (const Error& e) {
    finding(std::string(what) + " failed on an accepted input: " + e.what());
  }
}

}  // namespace hearth::fuzz
