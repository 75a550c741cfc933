// Per-user data keys: random, wrapped (sealed) by the master key, and split into a sealing
// subkey and a hashing subkey so one key never serves two primitives.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "privacy/secret_key.h"

namespace hearth::privacy {

// The keys derived from one user's data key.
struct UserKeys {
  SecretKey seal;  // XChaCha20-Poly1305 for the user's records and files
  SecretKey hash;  // keyed BLAKE2b for de-duplication hashes

  static UserKeys derive(const SecretKey& data_key);
};

// Seals `data_key` under `master`, bound to the user (kind "user_key", record = user id).
std::string wrap_data_key(const SecretKey& master, const SecretKey& data_key, int64_t user_id);
// Opens a wrapped key; kAuthentication naming the user when the master key is wrong or the
// wrapped key belongs to another user.
SecretKey unwrap_data_key(const SecretKey& master, std::string_view wrapped, int64_t user_id);

// A 32-byte keyed BLAKE2b of `content`: equal contents of one user hash equal, but the hash
// reveals nothing about the content to anyone without the user's key.
std::string content_hash(const UserKeys& keys, std::string_view content);

}  // namespace hearth::privacy
