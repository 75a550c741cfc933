#include "trainer/distributed_options.h"

#include <cstdlib>

#include "core/error.h"

namespace hearth::trainer {
namespace {

int parse_int(const std::string& text, const std::string& what) {
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  require(used == text.size() && !text.empty() && v >= 0 && v <= 1000000, ErrorCode::kInvalidArgument,
          what + " must be a non-negative integer, not \"" + text + "\"");
  return int(v);
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

}  // namespace

void DistributedOptions::validate() const {
  require(world_size >= 1 && world_size <= 1024, ErrorCode::kInvalidArgument,
          "--world-size must be between 1 and 1024, not " + std::to_string(world_size));
  require(rank >= 0 && rank < world_size, ErrorCode::kInvalidArgument,
          "the process rank (--process-rank or $RANK) must be between 0 and world size - 1 (" + std::to_string(world_size - 1) + "), not " + std::to_string(rank));
  require(master_port > 0 && master_port < 65536, ErrorCode::kInvalidArgument,
          "the master port must be between 1 and 65535, not " + std::to_string(master_port));
  require(!master_addr.empty(), ErrorCode::kInvalidArgument, "the master address is empty; give --master ADDR:PORT");
  require(timeout_seconds > 0 && timeout_seconds <= 86400, ErrorCode::kInvalidArgument,
          "the distributed timeout must be between 0 and 86400 seconds");
}

Json DistributedOptions::to_json() const {
  return Json{{"world_size", world_size}, {"rank", rank}, {"master", master_addr + ":" + std::to_string(master_port)},
              {"timeout_seconds", timeout_seconds}};
}

std::pair<std::string, int> parse_host_port(const std::string& text, const std::string& what) {
  const size_t colon = text.rfind(':');
  require(colon != std::string::npos && colon > 0 && colon + 1 < text.size(), ErrorCode::kInvalidArgument,
          what + " must be ADDR:PORT (e.g. 127.0.0.1:29500), not \"" + text + "\"");
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const int port = parse_int(text.substr(colon + 1), what + "'s port");
  require(port > 0 && port < 65536, ErrorCode::kInvalidArgument, what + "'s port must be between 1 and 65535");
  return {host, port};
}

DistributedOptions distributed_options_from_environment(const DistributedOptions& fallback) {
  DistributedOptions o = fallback;
  if (const char* v = env("WORLD_SIZE")) o.world_size = parse_int(v, "WORLD_SIZE");
  if (const char* v = env("RANK")) o.rank = parse_int(v, "RANK");
  if (const char* v = env("MASTER_ADDR")) o.master_addr = v;
  if (const char* v = env("MASTER_PORT")) o.master_port = parse_int(v, "MASTER_PORT");
  return o;
}

}  // namespace hearth::trainer
