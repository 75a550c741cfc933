// The digest recorded for sealed files: SHA-256 (through OpenSSL) against the standard's test
// vectors and against libsodium's implementation on fresh random bytes.
#include <gtest/gtest.h>
#include <sodium.h>

#include <random>

#include "privacy/secret_key.h"
#include "storage/sealed_blob_file.h"
#include "test_helpers.h"

namespace hearth {
namespace {

TEST(Sha256, StandardVectors) {
  EXPECT_EQ(storage::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(storage::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(storage::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, MatchesLibsodiumOnRandomBytes) {
  privacy::ensure_sodium();
  std::mt19937_64 rng(std::random_device{}());
  for (size_t n : {size_t(1), size_t(63), size_t(64), size_t(65), size_t(1) << 20}) {
    std::string bytes(n, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, reinterpret_cast<const unsigned char*>(bytes.data()), n);
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    EXPECT_EQ(storage::sha256_hex(bytes), std::string(hex)) << n << " bytes";
  }
}

}  // namespace
}  // namespace hearth
