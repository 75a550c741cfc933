#include "core/library_pages.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace hearth {
namespace {

namespace fs = std::filesystem;

// Resident and private kB of each mapping of this process, by start address, from smaps.
struct Resident {
  std::string path, perms;
  int64_t rss_kb = 0, anonymous_kb = 0;
};
std::map<uintptr_t, Resident> resident_mappings() {
  std::map<uintptr_t, Resident> out;
  std::ifstream in("/proc/self/smaps");
  std::string line;
  Resident* current = nullptr;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first.find('-') != std::string::npos && first.back() != ':') {
      Resident r;
      std::string offset, device, inode;
      fields >> r.perms >> offset >> device >> inode >> r.path;
      current = &(out[std::stoull(first.substr(0, first.find('-')), nullptr, 16)] = r);
    } else if (current && first == "Rss:") {
      fields >> current->rss_kb;
    } else if (current && first == "Anonymous:") {
      fields >> current->anonymous_kb;
    }
  }
  return out;
}

int64_t libtorch_clean_rss_kb() {
  int64_t kb = 0;
  for (const auto& [begin, m] : resident_mappings())
    if (m.path.find("libtorch_cpu.so") != std::string::npos && m.perms[1] != 'w' && m.anonymous_kb == 0) kb += m.rss_kb;
  return kb;
}

// LibTorch's start-up leaves megabytes of its code resident; afterwards they are gone from this
// process, and LibTorch still computes (its pages come back as they run).
TEST(LibraryPages, ReleasesLibTorchsCleanPagesAndLibTorchStillRuns) {
  const at::Tensor a = at::randn({64, 64}, at::kDouble);
  const at::Tensor before = at::matmul(a, a);
  ASSERT_GT(libtorch_clean_rss_kb(), 4 * 1024) << "start-up should have left LibTorch code resident";
  const ReleasedLibraryPages released = release_library_pages();
  EXPECT_GT(released.mappings, 0);
  EXPECT_GT(released.bytes, 4 << 20);
  // Only what the two lines below run can have come back: far under the megabytes before.
  const int64_t after_kb = libtorch_clean_rss_kb();
  EXPECT_LT(after_kb, 2 * 1024);
  EXPECT_TRUE(at::equal(at::matmul(a, a), before));
}

// Mappings with pages of their own (a library's relocated read-only data: the dynamic linker
// wrote it, then made it read-only) keep them: dropping them would lose the relocations.
TEST(LibraryPages, KeepsReadOnlyMappingsWithPagesOfTheirOwn) {
  std::map<uintptr_t, int64_t> relocated;
  for (const auto& [begin, m] : resident_mappings())
    if (m.path.find(".so") != std::string::npos && m.perms[1] != 'w' && m.anonymous_kb > 0) relocated[begin] = m.anonymous_kb;
  ASSERT_FALSE(relocated.empty()) << "expected relocated read-only data in some loaded library";
  release_library_pages();
  const auto after = resident_mappings();
  for (const auto& [begin, kb] : relocated) {
    ASSERT_TRUE(after.count(begin));
    EXPECT_EQ(after.at(begin).anonymous_kb, kb) << after.at(begin).path;
  }
}

// A file named like a library but mapped by the program, not loaded by the dynamic linker, is
// not a library: its pages stay, and so do the bytes written into a private copy of it.
TEST(LibraryPages, LeavesMappingsThatAreNotLoadedLibraries) {
  const fs::path file = fs::temp_directory_path() / ("hearth_fake_" + std::to_string(::getpid()) + ".so");
  { std::ofstream(file, std::ios::binary) << std::string(8 * 4096, 'x'); }
  const int fd = ::open(file.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  auto* clean = static_cast<volatile char*>(mmap(nullptr, 8 * 4096, PROT_READ, MAP_PRIVATE, fd, 0));
  auto* written = static_cast<char*>(mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  ::close(fd);
  ASSERT_NE(clean, MAP_FAILED);
  ASSERT_NE(written, MAP_FAILED);
  for (int page = 0; page < 8; ++page) (void)clean[page * 4096];
  written[0] = 'y';
  ASSERT_EQ(mprotect(written, 4096, PROT_READ), 0);
  const auto clean_begin = reinterpret_cast<uintptr_t>(const_cast<char*>(clean));
  ASSERT_EQ(resident_mappings().at(clean_begin).rss_kb, 32);
  release_library_pages();
  EXPECT_EQ(resident_mappings().at(clean_begin).rss_kb, 32) << "a mapping that is no loaded library was released";
  EXPECT_EQ(written[0], 'y');
  munmap(const_cast<char*>(clean), 8 * 4096);
  munmap(written, 4096);
  fs::remove(file);
}

}  // namespace
}  // namespace hearth
