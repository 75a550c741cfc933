// The `hearth` command: global options, subcommands registered by cli/cmd_*.cpp, and the
// one place where errors become a single line on stderr and a non-zero exit code.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "cli/command.h"
#include "core/error.h"
#include "core/log.h"
#include "core/openmp_wait_policy.h"
#include "core/runtime.h"
#include "core/threads.h"
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

// CLI11 clamps an integer option that overflows (99999999999999999999 becomes 2^63-1 and is
// then reported as that): every integer option refuses such a value as typed instead.
void refuse_integer_overflow(CLI::App& app) {
  for (CLI::Option* option : app.get_options()) {
    const std::string type = option->get_type_name();
    const bool is_unsigned = type.rfind("UINT", 0) == 0;
    if (!is_unsigned && type.rfind("INT", 0) != 0) continue;
    option->check(CLI::Validator(
        [is_unsigned](std::string& value) -> std::string {
          errno = 0;
          char* end = nullptr;
          if (is_unsigned) std::strtoull(value.c_str(), &end, 0);
          else std::strtoll(value.c_str(), &end, 0);
          if (errno == ERANGE) return value + " does not fit in a 64-bit integer";
          if (is_unsigned && value.find('-') != std::string::npos) return value + " is negative; this option takes 0 or more";
          return {};
        },
        "", "fits in 64 bits"));
  }
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) refuse_integer_overflow(*sub);
}

// An option-parser error as one line: CLI11's message, then where to read about the options.
std::string parse_error_line(const CLI::App& app, const CLI::ParseError& e) {
  std::string message = e.what();
  for (char& c : message)
    if (c == '\n') c = ' ';
  std::string command = app.get_name();
  for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
    sub = sub->get_subcommands().front();
    command += " " + sub->get_name();
  }
  return message + " (see `" + command + " --help`)";
}

}  // namespace
}  // namespace hearth::cli

int main(int argc, char** argv) {
  using namespace hearth;
  using namespace hearth::cli;
  CLI::App app{"hearth: on-device fine-tuning and personalization of small language models", "hearth"};
  app.require_subcommand(1);
  // Global options (--home, --threads, --json, --yes) may come before or after the subcommand.
  app.fallthrough();
  auto& options = global_options();
  app.set_version_flag("--version", [] { return engine::version_line(); }, "print the version and the kernels this CPU runs");
  app.add_option("--home", options.home, "Hearth home folder (default: $HEARTH_HOME or ~/.hearth)");
  app.add_flag("--yes", options.yes, "answer yes to confirmations (forget, data delete)");
  app.add_option("--threads", options.threads,
                 "worker threads for LibTorch, OpenMP and BLAS, at most the cores available (default 0: all cores)")
      ->check(CLI::Range(0, kMaxThreads));
  app.add_flag("--json", options.json, "print one JSON object with the results as the last line of stdout");
  app.add_flag("-v,--verbose", options.verbose, "log debug messages");
  app.parse_complete_callback([&] {
    init_logging(options.verbose);
    init_runtime(options.threads);
  });
  for (auto& [name, setup] : registered_commands()) setup(app);
  refuse_integer_overflow(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help: the help text on stdout, exit 0
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s\n", parse_error_line(app, e).c_str());
    return exit_code_for(ErrorCode::kInvalidArgument);
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
