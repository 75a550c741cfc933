// Fuzz target: the database's sealed records and files (privacy/aead.h, privacy/sealed_file.h,
// wrapped user keys) opened with a fixed test key: a failure must be a clean, named refusal.
#include <functional>

#include "fuzz/harness.h"
#include "fuzz/test_records.h"
#include "privacy/aead.h"
#include "privacy/data_key.h"
#include "privacy/sealed_file.h"
#include "storage/training_example.h"

using namespace hearth;
using fuzz::kExampleRow;
using fuzz::test_key;

namespace {

// `open` must either succeed or fail with one of `allowed`, naming the record.
void expect_refusal(const std::function<void()>& open, std::initializer_list<ErrorCode> allowed) {
  try {
    open();
  } catch (const Error& e) {
    bool ok = false;
    for (ErrorCode code : allowed) ok |= e.code() == code;
    fuzz::check(ok, std::string("unexpected error kind ") + error_code_name(e.code()) + ": " + e.what());
  }
}

// A record sealed here opens to its plaintext, and with any one bit flipped fails to authenticate.
void seal_flip_open(std::string_view plaintext) {
  const std::string sealed = privacy::seal(test_key(), plaintext, kExampleRow);
  fuzz::must_succeed("opening a record just sealed", [&] {
    fuzz::check(privacy::open(test_key(), sealed, kExampleRow) == plaintext, "a record opened to other bytes");
  });
  std::string altered = sealed;
  const size_t bit = std::hash<std::string_view>{}(plaintext) % (altered.size() * 8);
  altered[bit / 8] = static_cast<char>(altered[bit / 8] ^ (1 << (bit % 8)));
  try {
    privacy::open(test_key(), altered, kExampleRow);
    fuzz::finding("a record with a flipped bit opened");
  } catch (const Error& e) {
    fuzz::check(e.code() == ErrorCode::kAuthentication, "a flipped bit gave a non-authentication error");
    fuzz::check(std::string_view(e.what()).find(kExampleRow.describe()) != std::string_view::npos,
                "the authentication error does not name the record");
  }
  // What an example row holds once opened is parsed like any stored example.
  fuzz::refusal_is_clean([&] { storage::example_from_canonical_json(plaintext, kExampleRow.describe()); });
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  test_key();
  return 0;
}

// The first byte picks what the rest is: a sealed record, a sealed file, a wrapped user key, or a
// plaintext to seal, alter and open.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest = fuzz::as_bytes(data + 1, size - 1);
  switch (static_cast<fuzz::SealedInput>(data[0] % 4)) {
    case fuzz::SealedInput::kRecord:
      expect_refusal(
          [&] {
            const std::string plaintext = privacy::open(test_key(), rest, kExampleRow);
            fuzz::refusal_is_clean([&] { storage::example_from_canonical_json(plaintext, kExampleRow.describe()); });
          },
          {ErrorCode::kAuthentication});
      break;
    case fuzz::SealedInput::kFile:
      expect_refusal([&] { privacy::open_sealed_bytes(rest, test_key(), fuzz::kAdapterFile, "fuzz.sealed"); },
                     {ErrorCode::kAuthentication, ErrorCode::kCorruptFile, ErrorCode::kUnsupported});
      break;
    case fuzz::SealedInput::kWrappedKey:
      expect_refusal([&] { privacy::unwrap_data_key(test_key(), rest, fuzz::kKeyUser); }, {ErrorCode::kAuthentication});
      break;
    case fuzz::SealedInput::kPlaintext:
      seal_flip_open(rest);
      break;
  }
  return 0;
}
