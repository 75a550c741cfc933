// Helpers shared by the storage tests: a fresh Hearth home per test, a vault opened with the
// cheapest Argon2id cost, small files to ingest, and a byte scan of every file in the home.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "core/atomic_file.h"
#include "core/error.h"
#include "storage/vault.h"
#include "error_of.h"

namespace hearth::storage::testing {

namespace fs = std::filesystem;

inline const char* kPassphrase = "test passphrase with 'quotes' and \"more\"";

class TempHome {
 public:
  explicit TempHome(const std::string& name) {
    path_ = fs::temp_directory_path() / ("hearth_storage_" + name + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
  }
  ~TempHome() {
    std::error_code ec;
    fs::remove_all(path_, ec);
    fs::remove_all(path_.parent_path() / (path_.filename().string() + "_in"), ec);
  }
  const fs::path& path() const { return path_; }
  fs::path file(const std::string& name, const std::string& content) const {
    fs::create_directories(path_.parent_path() / (path_.filename().string() + "_in"));
    fs::path p = path_.parent_path() / (path_.filename().string() + "_in") / name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::unique_ptr<Vault> open(const std::string& passphrase = kPassphrase) const {
    return std::make_unique<Vault>(
        path_, privacy::MasterKeySource::from_passphrase(passphrase, privacy::KdfStrength::kMinimum));
  }

 private:
  fs::path path_;
};

// Every regular file under `dir` whose bytes contain `needle`.
inline std::vector<std::string> files_containing(const fs::path& dir, const std::string& needle) {
  std::vector<std::string> hits;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::string bytes = read_file(entry.path());
    if (bytes.find(needle) != std::string::npos) hits.push_back(entry.path().string());
  }
  return hits;
}

using hearth::testing::error_of;

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace hearth::storage::testing
