#include "core/atomic_file.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("hearth_atomic_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(AtomicFile, WritesAndReplaces) {
  auto dir = fresh_dir("write");
  write_file_atomic(dir / "f.txt", "one");
  write_file_atomic(dir / "f.txt", "two");
  EXPECT_EQ(read_file(dir / "f.txt"), "two");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(AtomicFile, AbandonedWriterLeavesNothing) {
  auto dir = fresh_dir("abandon");
  {
    AtomicFileWriter w(dir / "f.bin");
    w.append("partial");
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

TEST(AtomicFile, StagedDirectoryIsAllOrNothing) {
  auto dir = fresh_dir("staged");
  try {
    StagedDirectory staged(dir / "out");
    write_file_atomic(staged.path() / "a.txt", "a");
    throw Error(ErrorCode::kInternal, "boom");
  } catch (const Error&) {
  }
  EXPECT_TRUE(fs::is_empty(dir));
  StagedDirectory staged(dir / "out");
  write_file_atomic(staged.path() / "a.txt", "a");
  staged.commit();
  EXPECT_EQ(read_file(dir / "out" / "a.txt"), "a");
}

TEST(AtomicFile, ReadFileRefusesOversizeAndMissing) {
  auto dir = fresh_dir("read");
  write_file_atomic(dir / "big.txt", std::string(100, 'x'));
  EXPECT_THROW(read_file(dir / "big.txt", 10), Error);
  try {
    read_file(dir / "nope.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace hearth
