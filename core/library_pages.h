// Shared libraries' pages in this process's resident memory. Linking LibTorch (Debian's build
// pulls in ~290 libraries, OpenCV and Qt among them) leaves ~100 MB of their code and read-only
// data resident after start-up, almost none of which inference runs again.
#pragma once
#include <cstdint>

namespace hearth {

struct ReleasedLibraryPages {
  int64_t mappings = 0;  // mappings whose pages were released
  int64_t bytes = 0;     // resident bytes they held
};

// Drops from this process's resident set the pages of loaded shared libraries that are clean
// copies of their files: mappings that are not writable and hold no page of their own
// (smaps' Anonymous: 0). The kernel's page cache keeps them, so a page used again comes back by a
// minor fault, with the same bytes. Each library is first pinned (never unloaded), so no other
// mapping can take its addresses: in a host app that later unloads a library of its own, that
// library stays mapped (its clean pages still cost nothing resident). Returns what was released;
// nothing on a kernel without smaps.
ReleasedLibraryPages release_library_pages();

}  // namespace hearth
