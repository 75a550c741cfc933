// Where the master key comes from: a passphrase stretched with Argon2id, a key file only its
// owner can read, or raw bytes from the host's keystore; and the verifier that tells a wrong key.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include "privacy/secret_key.h"

namespace hearth::privacy {

// Argon2id cost. kInteractive is libsodium's interactive preset (the default); kMinimum is
// for tests only.
enum class KdfStrength { kInteractive, kModerate, kMinimum };

// The stored, non-secret inputs of the passphrase KDF.
struct KdfParams {
  std::string salt;  // 16 random bytes
  uint64_t opslimit = 0;
  uint64_t memlimit = 0;

  static KdfParams fresh(KdfStrength strength);  // a new random salt with the chosen cost
};

// Argon2id(passphrase, salt) -> master key. kInvalidArgument for an empty passphrase.
SecretKey derive_master_key(std::string_view passphrase, const KdfParams& params);

// Reads a key file: exactly 32 raw bytes or 64 hex digits (a trailing newline allowed).
// Refuses a file that its group or others can read or write (kAuthentication naming the mode).
SecretKey read_key_file(const std::filesystem::path& path);

// Writes a fresh random key file with mode 0600 (fails if the file exists).
SecretKey create_key_file(const std::filesystem::path& path);

// A keyed BLAKE2b tag of a fixed label: stored beside the KDF parameters, it lets Hearth say
// "wrong passphrase" instead of failing later on every record.
std::string key_verifier(const SecretKey& master);
bool verify_key(const SecretKey& master, std::string_view verifier);

// How the caller supplies the master key.
struct MasterKeySource {
  enum class Kind { kPassphrase, kKeyFile, kRawKey };
  Kind kind = Kind::kPassphrase;
  std::string passphrase;              // kPassphrase
  std::filesystem::path key_file;      // kKeyFile
  std::string raw_key;                 // kRawKey: 32 bytes from the host keystore
  KdfStrength strength = KdfStrength::kInteractive;  // for a new database only

  static MasterKeySource from_passphrase(std::string passphrase, KdfStrength strength = KdfStrength::kInteractive);
  static MasterKeySource from_key_file(std::filesystem::path path);
  static MasterKeySource from_raw_key(std::string bytes);
  const char* kind_name() const;
  ~MasterKeySource();
};

}  // namespace hearth::privacy
