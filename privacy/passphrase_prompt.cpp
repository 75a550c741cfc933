#include "privacy/passphrase_prompt.h"

#include <termios.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "core/error.h"

namespace hearth::privacy {

namespace {

// Turns terminal echo off for its lifetime and restores it after, even on an exception.
class EchoOff {
 public:
  EchoOff() {
    if (tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios quiet = saved_;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      active_ = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    }
  }
  ~EchoOff() {
    if (active_) tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

}  // namespace

std::string obtain_passphrase(const std::string& prompt) {
  if (const char* env = std::getenv("HEARTH_PASSPHRASE"); env != nullptr && *env != '\0') return env;
  if (!isatty(STDIN_FILENO)) {
    fail(ErrorCode::kAuthentication,
         "no passphrase: set HEARTH_PASSPHRASE, run on a terminal to be prompted, or pass --key-file");
  }
  std::fprintf(stderr, "%s", prompt.c_str());
  std::fflush(stderr);
  std::string line;
  {
    EchoOff quiet;
    std::getline(std::cin, line);
  }
  std::fprintf(stderr, "\n");
  require(!line.empty(), ErrorCode::kAuthentication, "the passphrase is empty");
  return line;
}

}  // namespace hearth::privacy

namespace hearth::privacy {

MasterKeySource master_key_source_for_cli(const std::filesystem::path& key_file) {
  if (!key_file.empty()) return MasterKeySource::from_key_file(key_file);
  return MasterKeySource::from_passphrase(obtain_passphrase());
}

}  // namespace hearth::privacy
