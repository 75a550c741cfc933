// Sealing and opening of records with XChaCha20-Poly1305-IETF. The associated data binds a
// ciphertext to its user, table and row, so a ciphertext moved elsewhere fails to open.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "privacy/secret_key.h"

namespace hearth::privacy {

// Where a ciphertext belongs; rendered as the associated data "user:<id>|kind:<kind>|record:<id>".
struct RecordRef {
  int64_t user_id = 0;
  std::string kind;  // the table or file kind, e.g. "documents", "examples", "adapter_file"
  int64_t record_id = 0;

  std::string associated_data() const;
  // How errors name the record, e.g. "documents record 12 of user 3".
  std::string describe() const;
};

// Bytes added by seal(): a 24-byte random nonce in front and a 16-byte tag behind.
inline constexpr size_t kSealOverhead = 24 + 16;

// Returns nonce || ciphertext || tag.
std::string seal(const SecretKey& key, std::string_view plaintext, const RecordRef& where);

// Opens what seal() returned. A flipped byte, a wrong key or a ciphertext moved to another
// record fails with kAuthentication naming `where`.
std::string open(const SecretKey& key, std::string_view sealed, const RecordRef& where);

}  // namespace hearth::privacy
