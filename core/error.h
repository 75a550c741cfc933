// The one error type of Hearth: a code saying what kind of failure, and a message saying
// what went wrong and what to do about it. Every layer throws it; the CLI and C API catch it.
#pragma once
#include <stdexcept>
#include <string>

namespace hearth {

enum class ErrorCode {
  kInvalidArgument,  // the caller asked for something malformed or out of range
  kNotFound,         // a file, user, adapter or record that does not exist
  kCorruptFile,      // a file exists but its contents break its format
  kUnsupported,      // a valid request Hearth does not implement (architecture, dtype, ...)
  kIo,               // the operating system refused a read or write
  kAuthentication,   // a wrong key or passphrase, or a ciphertext that fails to open
  kCancelled,        // the job was asked to stop
  kInternal,         // a bug in Hearth
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message);
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Throws Error(code, message). Kept out of line so call sites stay small.
[[noreturn]] void fail(ErrorCode code, const std::string& message);

// Throws Error(code, message) when `condition` is false.
inline void require(bool condition, ErrorCode code, const std::string& message) {
  if (!condition) fail(code, message);
}

}  // namespace hearth
