// A 32-byte secret key held in locked memory and wiped with sodium_memzero when it goes away,
// so master keys and per-user data keys never linger in freed memory or swap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace hearth::privacy {

// Every key in Hearth is 32 bytes: XChaCha20-Poly1305, BLAKE2b-256 keys and Argon2id outputs alike.
inline constexpr size_t kKeyBytes = 32;

class SecretKey {
 public:
  SecretKey();  // all zero; fill through data()
  ~SecretKey();
  SecretKey(const SecretKey& other);
  SecretKey& operator=(const SecretKey& other);
  SecretKey(SecretKey&& other) noexcept;
  SecretKey& operator=(SecretKey&& other) noexcept;

  // A key of fresh random bytes from the operating system's CSPRNG.
  static SecretKey random();
  // A key copied from exactly kKeyBytes bytes; anything else is kInvalidArgument.
  static SecretKey from_bytes(std::string_view bytes);

  uint8_t* data() { return bytes_.get(); }
  const uint8_t* data() const { return bytes_.get(); }
  static constexpr size_t size() { return kKeyBytes; }
  std::string_view view() const { return {reinterpret_cast<const char*>(bytes_.get()), kKeyBytes}; }

 private:
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> bytes_;
};

// Wipes a byte buffer that held secret material (passphrases, decrypted text).
void wipe(std::string& secret);

// Initialises libsodium once; every function of privacy/ calls it, callers need not.
void ensure_sodium();

}  // namespace hearth::privacy
