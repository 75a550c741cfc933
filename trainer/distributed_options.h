// Where a process sits in a data-parallel run: world size, rank and the rendezvous address,
// from command-line options or the environment variables torchrun sets (WORLD_SIZE, RANK,
// MASTER_ADDR, MASTER_PORT).
#pragma once
#include <cstdint>
#include <string>

#include "core/json.h"

namespace hearth::trainer {

struct DistributedOptions {
  int world_size = 1;               // 1: a single process (everything else is ignored)
  int rank = 0;                     // 0 .. world_size-1; rank 0 hosts the rendezvous store and writes the results
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // How long a collective or the rendezvous may wait for a peer before the run fails with an
  // error naming the missing rank (a killed or hung process never leaves the others waiting forever).
  double timeout_seconds = 60;

  bool enabled() const { return world_size > 1; }
  // kInvalidArgument naming the bad field (rank outside the world, port out of range, ...).
  void validate() const;
  Json to_json() const;
};

// The options torchrun's variables describe; `fallback` where a variable is unset. A variable
// that is set but malformed is a kInvalidArgument error naming it.
DistributedOptions distributed_options_from_environment(const DistributedOptions& fallback);

// "ADDR:PORT" -> (addr, port); kInvalidArgument for anything else.
std::pair<std::string, int> parse_host_port(const std::string& text, const std::string& what);

}  // namespace hearth::trainer
