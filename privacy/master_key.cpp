#include "privacy/master_key.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hearth::privacy {

namespace {

constexpr char kVerifierLabel[] = "hearth master key verifier v1";

std::string hex_decode_key(std::string_view text, const std::filesystem::path& path) {
  std::string out(kKeyBytes, '\0');
  size_t written = 0;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                     &written, nullptr) != 0 ||
      written != kKeyBytes) {
    fail(ErrorCode::kInvalidArgument, "key file " + path.string() + " is neither 32 raw bytes nor 64 hex digits");
  }
  return out;
}

}  // namespace

KdfParams KdfParams::fresh(KdfStrength strength) {
  ensure_sodium();
  KdfParams p;
  p.salt.assign(crypto_pwhash_SALTBYTES, '\0');
  randombytes_buf(p.salt.data(), p.salt.size());
  switch (strength) {
    case KdfStrength::kInteractive:
      p.opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
      p.memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
      break;
    case KdfStrength::kModerate:
      p.opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
      p.memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
      break;
    case KdfStrength::kMinimum:
      p.opslimit = crypto_pwhash_OPSLIMIT_MIN;
      p.memlimit = crypto_pwhash_MEMLIMIT_MIN;
      break;
  }
  return p;
}

SecretKey derive_master_key(std::string_view passphrase, const KdfParams& params) {
  ensure_sodium();
  require(!passphrase.empty(), ErrorCode::kInvalidArgument, "the passphrase is empty");
  require(params.salt.size() == crypto_pwhash_SALTBYTES, ErrorCode::kCorruptFile,
          "stored key-derivation salt has the wrong length");
  require(params.opslimit >= crypto_pwhash_OPSLIMIT_MIN && params.memlimit >= crypto_pwhash_MEMLIMIT_MIN,
          ErrorCode::kCorruptFile, "stored key-derivation cost is below Argon2id's minimum");
  SecretKey key;
  if (crypto_pwhash(key.data(), kKeyBytes, passphrase.data(), passphrase.size(),
                    reinterpret_cast<const unsigned char*>(params.salt.data()), params.opslimit,
                    static_cast<size_t>(params.memlimit), crypto_pwhash_ALG_ARGON2ID13) != 0) {
    fail(ErrorCode::kInternal, "Argon2id ran out of memory deriving the master key");
  }
  return key;
}

SecretKey read_key_file(const std::filesystem::path& path) {
  ensure_sodium();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
         "cannot open key file " + path.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ErrorCode::kInvalidArgument, "key file " + path.string() + " is not a regular file");
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", static_cast<unsigned>(st.st_mode & 0777));
    fail(ErrorCode::kAuthentication, "key file " + path.string() + " has mode " + mode +
                                         "; it must be readable only by its owner (chmod 600)");
  }
  std::string text(200, '\0');
  ssize_t n = ::read(fd, text.data(), text.size());
  ::close(fd);
  if (n < 0) fail(ErrorCode::kIo, "cannot read key file " + path.string());
  text.resize(static_cast<size_t>(n));
  SecretKey key;
  if (text.size() == kKeyBytes) {
    key = SecretKey::from_bytes(text);
  } else {
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    std::string raw = hex_decode_key(text, path);
    key = SecretKey::from_bytes(raw);
    wipe(raw);
  }
  wipe(text);
  return key;
}

SecretKey create_key_file(const std::filesystem::path& path) {
  SecretKey key = SecretKey::random();
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) fail(ErrorCode::kIo, "cannot create key file " + path.string() + ": " + std::strerror(errno));
  ssize_t n = ::write(fd, key.data(), kKeyBytes);
  int rc = ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(kKeyBytes) || rc != 0) fail(ErrorCode::kIo, "cannot write key file " + path.string());
  return key;
}

std::string key_verifier(const SecretKey& master) {
  ensure_sodium();
  std::string tag(crypto_generichash_BYTES, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(tag.data()), tag.size(),
                     reinterpret_cast<const unsigned char*>(kVerifierLabel), sizeof kVerifierLabel - 1,
                     master.data(), kKeyBytes);
  return tag;
}

bool verify_key(const SecretKey& master, std::string_view verifier) {
  std::string expected = key_verifier(master);
  return verifier.size() == expected.size() &&
         sodium_memcmp(expected.data(), verifier.data(), expected.size()) == 0;
}

MasterKeySource MasterKeySource::from_passphrase(std::string passphrase, KdfStrength strength) {
  MasterKeySource s;
  s.kind = Kind::kPassphrase;
  s.passphrase = std::move(passphrase);
  s.strength = strength;
  return s;
}

MasterKeySource MasterKeySource::from_key_file(std::filesystem::path path) {
  MasterKeySource s;
  s.kind = Kind::kKeyFile;
  s.key_file = std::move(path);
  return s;
}

MasterKeySource MasterKeySource::from_raw_key(std::string bytes) {
  MasterKeySource s;
  s.kind = Kind::kRawKey;
  s.raw_key = std::move(bytes);
  return s;
}

const char* MasterKeySource::kind_name() const {
  switch (kind) {
    case Kind::kPassphrase: return "passphrase";
    case Kind::kKeyFile: return "key_file";
    case Kind::kRawKey: return "raw_key";
  }
  return "unknown";
}

MasterKeySource::~MasterKeySource() {
  wipe(passphrase);
  wipe(raw_key);
}

}  // namespace hearth::privacy
