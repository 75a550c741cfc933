// The `hearth` command: global options, subcommands registered by cli/cmd_*.cpp, and the
// one place where errors become a single line on stderr and a non-zero exit code.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "engine/version.h"

namespace hearth::cli {

GlobalOptions& global_options() {
  static GlobalOptions options;
  return options;
}

std::vector<std::pair<std::string, CommandSetup>>& registered_commands() {
  static std::vector<std::pair<std::string, CommandSetup>> commands;
  return commands;
}

CommandRegistration::CommandRegistration(std::string name, CommandSetup setup) {
  registered_commands().emplace_back(std::move(name), std::move(setup));
}

bool confirm(const std::string& question) {
  if (global_options().yes) return true;
  require(::isatty(STDIN_FILENO) != 0, ErrorCode::kInvalidArgument,
          question + " Not on a terminal, so nothing was done; pass --yes to confirm");
  std::fprintf(stderr, "%s [y/N] ", question.c_str());
  std::fflush(stderr);
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

void print_json_result(const std::string& compact_json) {
  if (global_options().json) {
    std::fflush(stdout);
    std::cout << compact_json << std::endl;
  }
}

namespace {

int exit_code_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 2;
    case ErrorCode::kNotFound: return 3;
    case ErrorCode::kCorruptFile: return 4;
    case ErrorCode::kUnsupported: return 5;
    case ErrorCode::kIo: return 6;
    case ErrorCode::kAuthentication: return 7;
    case ErrorCode::kCancelled: return 130;
    case ErrorCode::kInternal: return 70;
  }
  return 1;
}

}  // namespace
}  // namespace hearth::cli

int main(int argc, char** argv) {
  using namespace hearth;
  using namespace hearth::cli;
  CLI::App app{"hearth: on-device fine-tuning and personalization of small language models"};
  app.require_subcommand(1);
  // Global options (--home, --threads, --json, --yes) may come before or after the subcommand.
  app.fallthrough();
  auto& options = global_options();
  app.set_version_flag("--version", [] { return engine::version_line(); }, "print the version and the kernels this CPU runs");
  app.add_option("--home", options.home, "Hearth home folder (default: $HEARTH_HOME or ~/.hearth)");
  app.add_flag("--yes", options.yes, "answer yes to confirmations (forget, data delete)");
  app.add_option("--threads", options.threads, "worker threads for LibTorch, OpenMP and BLAS (default: all cores)");
  app.add_flag("--json", options.json, "print one JSON object with the results as the last line of stdout");
  app.add_flag("-v,--verbose", options.verbose, "log debug messages");
  app.parse_complete_callback([&] {
    init_logging(options.verbose);
    init_runtime(options.threads);
  });
  for (auto& [name, setup] : registered_commands()) setup(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_code_for(e.code());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: internal tensor error: %s\n", e.what_without_backtrace());
    return 70;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
