#include "privacy/data_key.h"

#include <sodium.h>

#include "core/error.h"
#include "privacy/aead.h"

namespace hearth::privacy {

namespace {
constexpr char kContext[crypto_kdf_CONTEXTBYTES + 1] = "hearthuk";
constexpr uint64_t kSealSubkey = 1;
constexpr uint64_t kHashSubkey = 2;
}  // namespace

UserKeys UserKeys::derive(const SecretKey& data_key) {
  ensure_sodium();
  UserKeys keys;
  crypto_kdf_derive_from_key(keys.seal.data(), kKeyBytes, kSealSubkey, kContext, data_key.data());
  crypto_kdf_derive_from_key(keys.hash.data(), kKeyBytes, kHashSubkey, kContext, data_key.data());
  return keys;
}

std::string wrap_data_key(const SecretKey& master, const SecretKey& data_key, int64_t user_id) {
  return seal(master, data_key.view(), RecordRef{user_id, "user_key", user_id});
}

SecretKey unwrap_data_key(const SecretKey& master, std::string_view wrapped, int64_t user_id) {
  std::string raw = open(master, wrapped, RecordRef{user_id, "user_key", user_id});
  SecretKey key = SecretKey::from_bytes(raw);
  wipe(raw);
  return key;
}

std::string content_hash(const UserKeys& keys, std::string_view content) {
  ensure_sodium();
  std::string out(32, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(),
                     reinterpret_cast<const unsigned char*>(content.data()), content.size(), keys.hash.data(),
                     kKeyBytes);
  return out;
}

}  // namespace hearth::privacy
