// The fixed test key and record addresses the sealed-record target opens with, shared with the
// seed writer so its seeds are records that really authenticate.
#pragma once
#include <string>

#include "privacy/aead.h"
#include "privacy/secret_key.h"

namespace hearth::fuzz {

inline const privacy::SecretKey& test_key() {
  static const privacy::SecretKey* key = new privacy::SecretKey(privacy::SecretKey::from_bytes(std::string(32, '\x42')));
  return *key;
}

// An example row as RecordStore binds it, a sealed adapter file, and the user whose wrapped key is read.
inline const privacy::RecordRef kExampleRow{3, "examples", 17};
inline const privacy::RecordRef kAdapterFile{3, "adapter_file", 5};
inline constexpr int64_t kKeyUser = 3;

// The first input byte of the sealed-record target: what the rest of the input is.
enum class SealedInput : uint8_t { kRecord = 0, kFile = 1, kWrappedKey = 2, kPlaintext = 3 };

}  // namespace hearth::fuzz
