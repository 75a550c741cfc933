#include "privacy/secret_key.h"

#include <sodium.h>

#include <cstring>

#include "core/error.h"

namespace hearth::privacy {

void ensure_sodium() {
  static const int status = sodium_init();
  require(status >= 0, ErrorCode::kInternal, "libsodium failed to initialise");
}

void SecretKey::Free::operator()(uint8_t* p) const { sodium_free(p); }

SecretKey::SecretKey() {
  ensure_sodium();
  // sodium_malloc gives guarded, mlock'ed pages and wipes them on sodium_free.
  auto* p = static_cast<uint8_t*>(sodium_malloc(kKeyBytes));
  if (p == nullptr) fail(ErrorCode::kInternal, "cannot allocate locked memory for a key");
  sodium_memzero(p, kKeyBytes);
  bytes_.reset(p);
}

SecretKey::~SecretKey() = default;

SecretKey::SecretKey(const SecretKey& other) : SecretKey() { std::memcpy(data(), other.data(), kKeyBytes); }

SecretKey& SecretKey::operator=(const SecretKey& other) {
  if (this != &other) std::memcpy(data(), other.data(), kKeyBytes);
  return *this;
}

SecretKey::SecretKey(SecretKey&& other) noexcept : SecretKey(static_cast<const SecretKey&>(other)) {}

SecretKey& SecretKey::operator=(SecretKey&& other) noexcept {
  if (this != &other) std::memcpy(data(), other.data(), kKeyBytes);
  return *this;
}

SecretKey SecretKey::random() {
  SecretKey key;
  randombytes_buf(key.data(), kKeyBytes);
  return key;
}

SecretKey SecretKey::from_bytes(std::string_view bytes) {
  require(bytes.size() == kKeyBytes, ErrorCode::kInvalidArgument,
          "a key must be exactly " + std::to_string(kKeyBytes) + " bytes, got " + std::to_string(bytes.size()));
  SecretKey key;
  std::memcpy(key.data(), bytes.data(), kKeyBytes);
  return key;
}

void wipe(std::string& secret) {
  if (!secret.empty()) sodium_memzero(secret.data(), secret.size());
  secret.clear();
}

}  // namespace hearth::privacy
