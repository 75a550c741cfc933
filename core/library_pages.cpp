#include "core/library_pages.h"

#include <dlfcn.h>
#include <sys/mman.h>

#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace hearth {
namespace {

struct Mapping {
  uintptr_t begin = 0, end = 0;
  std::string perms, path;
  int64_t rss_kb = 0, anonymous_kb = 0;
};

// "libfoo.so" or "libfoo.so.1.2": a shared object by its name.
bool is_shared_object(const std::string& path) {
  const size_t at = path.rfind(".so");
  return at != std::string::npos && path.find('/') != std::string::npos &&
         (at + 3 == path.size() || path[at + 3] == '.');
}

// "7f...-7f... r-xp 00000000 08:01 1234   /usr/lib/libfoo.so" starts a mapping's block.
bool parse_header(const std::string& line, Mapping& m) {
  std::istringstream in(line);
  std::string range, offset, device, inode;
  if (!(in >> range >> m.perms >> offset >> device >> inode)) return false;
  const size_t dash = range.find('-');
  if (dash == std::string::npos || m.perms.size() != 4) return false;
  m.begin = std::stoull(range.substr(0, dash), nullptr, 16);
  m.end = std::stoull(range.substr(dash + 1), nullptr, 16);
  std::getline(in >> std::ws, m.path);
  return true;
}

int64_t field_kb(const std::string& line) {
  std::istringstream in(line.substr(line.find(':') + 1));
  int64_t kb = 0;
  in >> kb;
  return kb;
}

std::vector<Mapping> read_smaps() {
  std::vector<Mapping> out;
  std::ifstream in("/proc/self/smaps");
  std::string line;
  while (std::getline(in, line)) {
    Mapping m;
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) && parse_header(line, m)) {
      out.push_back(std::move(m));
    } else if (!out.empty() && line.rfind("Rss:", 0) == 0) {
      out.back().rss_kb = field_kb(line);
    } else if (!out.empty() && line.rfind("Anonymous:", 0) == 0) {
      out.back().anonymous_kb = field_kb(line);
    }
  }
  return out;
}

// A clean copy of a library's file: dropping its pages loses nothing.
bool releasable(const Mapping& m) {
  return is_shared_object(m.path) && m.perms[1] != 'w' && m.anonymous_kb == 0 && m.rss_kb > 0;
}

// Marks a loaded library never to be unloaded, so its addresses stay its own; false when `path`
// is not a loaded library (then its mapping is left alone).
bool pin_loaded_library(const std::string& path) {
  return dlopen(path.c_str(), RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE) != nullptr;
}

}  // namespace

ReleasedLibraryPages release_library_pages() {
  ReleasedLibraryPages released;
  std::map<std::string, bool> pinned;  // by path: whether it is a loaded library, now pinned
  for (const Mapping& m : read_smaps()) {
    if (!releasable(m)) continue;
    auto [it, first_seen] = pinned.try_emplace(m.path, false);
    if (first_seen) it->second = pin_loaded_library(m.path);
    if (!it->second) continue;
    if (madvise(reinterpret_cast<void*>(m.begin), m.end - m.begin, MADV_DONTNEED) != 0) continue;
    ++released.mappings;
    released.bytes += m.rss_kb * 1024;
  }
  return released;
}

}  // namespace hearth
