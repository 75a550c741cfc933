// How `hearth` subcommands plug in: each cli/cmd_*.cpp defines one static CommandRegistration
// that adds its subcommand to the CLI11 app. main.cpp knows none of them by name.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace hearth::cli {

// Options every subcommand shares, filled in by main before the subcommand runs.
struct GlobalOptions {
  int threads = 0;      // 0 = all cores
  bool json = false;    // print one JSON object as the last line of stdout
  bool verbose = false;
  std::string home;     // --home: the Hearth home ("" = $HEARTH_HOME or ~/.hearth)
  bool yes = false;     // --yes: do not ask before destructive commands
};

GlobalOptions& global_options();

using CommandSetup = std::function<void(CLI::App& app)>;

struct CommandRegistration {
  CommandRegistration(std::string name, CommandSetup setup);
};

// Every registered subcommand, in the order the static objects were constructed.
std::vector<std::pair<std::string, CommandSetup>>& registered_commands();

// Prints `result` as one compact JSON line on stdout when --json was given.
void print_json_result(const std::string& compact_json);

// Before a destructive command: true with --yes; on a terminal, asks `question` and reads y/N;
// without a terminal and without --yes, a kInvalidArgument error saying to pass --yes.
bool confirm(const std::string& question);

}  // namespace hearth::cli
