// Sealing, key wrapping, master keys and sealed files: round trips, and every way a
// ciphertext can be tampered with or misplaced fails with kAuthentication naming the record.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "privacy/aead.h"
#include "privacy/data_key.h"
#include "privacy/master_key.h"
#include "privacy/sealed_file.h"
#include "error_of.h"

namespace fs = std::filesystem;
using namespace hearth;
using namespace hearth::privacy;
using hearth::testing::error_of;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("hearth_priv_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

}  // namespace

TEST(Aead, RoundTripsAndBindsTheRecord) {
  SecretKey key = SecretKey::random();
  RecordRef where{3, "documents", 12};
  EXPECT_EQ(where.associated_data(), "user:3|kind:documents|record:12");
  std::string sealed = seal(key, "hello, private world", where);
  EXPECT_EQ(sealed.size(), 20 + kSealOverhead);
  EXPECT_EQ(sealed.find("hello"), std::string::npos);
  EXPECT_EQ(open(key, sealed, where), "hello, private world");
  EXPECT_EQ(open(key, seal(key, "", where), where), "");
}

TEST(Aead, EveryFlippedByteFailsNamingTheRecord) {
  SecretKey key = SecretKey::random();
  RecordRef where{7, "examples", 41};
  std::string sealed = seal(key, "canary-text-1234", where);
  for (size_t i = 0; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Error e = error_of([&] { open(key, bad, where); });
    EXPECT_EQ(e.code(), ErrorCode::kAuthentication) << "byte " << i;
    EXPECT_NE(std::string(e.what()).find("examples record 41 of user 7"), std::string::npos) << e.what();
  }
  EXPECT_EQ(error_of([&] { open(key, sealed.substr(0, 10), where); }).code(), ErrorCode::kAuthentication);
}

// seal() and open() run the AEAD through OpenSSL with a libsodium HChaCha20 subkey; the bytes
// must be libsodium's XChaCha20-Poly1305-IETF exactly, so every sealed file stays readable.
// Sizes around ChaCha's 64-byte blocks and Poly1305's 16-byte ones, and a few large ones.
TEST(Aead, AgreesWithLibsodiumBothWays) {
  SecretKey key = SecretKey::random();
  const RecordRef where{4, "adapter_file", 9};
  const std::string ad = where.associated_data();
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{63}, size_t{64}, size_t{65},
                   size_t{1000}, size_t{1} << 20, (size_t{3} << 20) + 7}) {
    std::string plain(n, '\0');
    randombytes_buf(plain.data(), n);
    // Ours -> libsodium.
    const std::string sealed = seal(key, plain, where);
    ASSERT_EQ(sealed.size(), n + kSealOverhead);
    const auto* c = reinterpret_cast<const unsigned char*>(sealed.data());
    std::string theirs(n, '\0');
    unsigned long long written = 0;
    ASSERT_EQ(crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(theirs.data()), &written,
                                                         nullptr, c + 24, sealed.size() - 24,
                                                         reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
                                                         c, key.data()),
              0)
        << n << " bytes";
    EXPECT_EQ(theirs, plain) << n << " bytes";
    // libsodium -> ours, and libsodium's bytes equal ours for the same nonce.
    std::string by_sodium(n + kSealOverhead, '\0');
    auto* out = reinterpret_cast<unsigned char*>(by_sodium.data());
    std::memcpy(out, c, 24);
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + 24, &written, reinterpret_cast<const unsigned char*>(plain.data()),
                                               n, reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), nullptr,
                                               out, key.data());
    EXPECT_EQ(by_sodium, sealed) << n << " bytes";
    EXPECT_EQ(open(key, by_sodium, where), plain) << n << " bytes";
  }
}

TEST(Aead, MovedCiphertextFails) {
  SecretKey key = SecretKey::random();
  std::string sealed = seal(key, "secret", RecordRef{1, "documents", 5});
  EXPECT_EQ(error_of([&] { open(key, sealed, RecordRef{1, "documents", 6}); }).code(), ErrorCode::kAuthentication);
  EXPECT_EQ(error_of([&] { open(key, sealed, RecordRef{2, "documents", 5}); }).code(), ErrorCode::kAuthentication);
  EXPECT_EQ(error_of([&] { open(key, sealed, RecordRef{1, "examples", 5}); }).code(), ErrorCode::kAuthentication);
  EXPECT_EQ(error_of([&] { open(SecretKey::random(), sealed, RecordRef{1, "documents", 5}); }).code(),
            ErrorCode::kAuthentication);
}

TEST(DataKey, WrapsForOneUserOnly) {
  SecretKey master = SecretKey::random();
  SecretKey data = SecretKey::random();
  std::string wrapped = wrap_data_key(master, data, 4);
  SecretKey back = unwrap_data_key(master, wrapped, 4);
  EXPECT_EQ(back.view(), data.view());
  Error e = error_of([&] { unwrap_data_key(master, wrapped, 5); });
  EXPECT_EQ(e.code(), ErrorCode::kAuthentication);
  EXPECT_NE(std::string(e.what()).find("user_key record 5 of user 5"), std::string::npos);
}

TEST(DataKey, SubkeysDifferAndContentHashIsKeyed) {
  SecretKey data = SecretKey::random();
  UserKeys keys = UserKeys::derive(data);
  EXPECT_NE(keys.seal.view(), keys.hash.view());
  EXPECT_NE(keys.seal.view(), data.view());
  UserKeys other = UserKeys::derive(SecretKey::random());
  EXPECT_EQ(content_hash(keys, "same text"), content_hash(keys, "same text"));
  EXPECT_NE(content_hash(keys, "same text"), content_hash(keys, "same text."));
  EXPECT_NE(content_hash(keys, "same text"), content_hash(other, "same text"));
  EXPECT_EQ(content_hash(keys, "x").size(), 32u);
}

TEST(MasterKey, PassphraseIsDeterministicPerSaltAndVerifierTellsWrongOnes) {
  KdfParams params = KdfParams::fresh(KdfStrength::kMinimum);
  SecretKey a = derive_master_key("correct horse", params);
  SecretKey b = derive_master_key("correct horse", params);
  SecretKey wrong = derive_master_key("correct horsf", params);
  EXPECT_EQ(a.view(), b.view());
  EXPECT_NE(a.view(), wrong.view());
  std::string verifier = key_verifier(a);
  EXPECT_TRUE(verify_key(b, verifier));
  EXPECT_FALSE(verify_key(wrong, verifier));
  KdfParams other = KdfParams::fresh(KdfStrength::kMinimum);
  EXPECT_NE(derive_master_key("correct horse", other).view(), a.view());
  EXPECT_EQ(error_of([&] { derive_master_key("", params); }).code(), ErrorCode::kInvalidArgument);
}

TEST(MasterKey, KeyFileMustBeOwnerOnly) {
  fs::path dir = temp_dir("keyfile");
  SecretKey made = create_key_file(dir / "k");
  EXPECT_EQ(read_key_file(dir / "k").view(), made.view());
  ::chmod((dir / "k").c_str(), 0640);
  Error e = error_of([&] { read_key_file(dir / "k"); });
  EXPECT_EQ(e.code(), ErrorCode::kAuthentication);
  EXPECT_NE(std::string(e.what()).find("640"), std::string::npos) << e.what();
  // 64 hex digits with a newline are accepted too.
  {
    std::ofstream out(dir / "hex");
    out << std::string(64, 'a') << "\n";
  }
  ::chmod((dir / "hex").c_str(), 0600);
  EXPECT_EQ(static_cast<unsigned char>(read_key_file(dir / "hex").view()[0]), 0xaa);
  {
    std::ofstream out(dir / "short");
    out << "abc";
  }
  ::chmod((dir / "short").c_str(), 0600);
  EXPECT_EQ(error_of([&] { read_key_file(dir / "short"); }).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_of([&] { read_key_file(dir / "missing"); }).code(), ErrorCode::kNotFound);
  fs::remove_all(dir);
}

TEST(SealedFile, RoundTripNoPlaintextAndTamperDetection) {
  fs::path dir = temp_dir("sealed");
  SecretKey key = SecretKey::random();
  RecordRef where{2, "adapter_file", 9};
  std::string plain = "ADAPTER-WEIGHTS-CANARY " + std::string(10000, 'w');
  seal_file(dir / "a.sealed", plain, key, where);
  std::string disk = read_file(dir / "a.sealed");
  EXPECT_EQ(disk.find("CANARY"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "a.sealed").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u);
  EXPECT_EQ(open_sealed_file(dir / "a.sealed", key, where), plain);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // no temp left
  for (size_t i : {size_t(0), size_t(12), size_t(40), disk.size() - 1}) {
    std::string bad = disk;
    bad[i] ^= 0x20;
    write_file_atomic(dir / "b.sealed", bad);
    Error e = error_of([&] { open_sealed_file(dir / "b.sealed", key, where); });
    EXPECT_TRUE(e.code() == ErrorCode::kAuthentication || (i < 8 && e.code() == ErrorCode::kCorruptFile)) << i;
  }
  Error moved = error_of([&] { open_sealed_file(dir / "a.sealed", key, RecordRef{3, "adapter_file", 9}); });
  EXPECT_EQ(moved.code(), ErrorCode::kAuthentication);
  EXPECT_NE(std::string(moved.what()).find("adapter_file record 9 of user 3"), std::string::npos);
  fs::remove_all(dir);
}
