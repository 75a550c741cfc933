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

TEST(AtomicFile, StagedDirectoryMadeForNothingLeavesNoParentFolders) {
  auto dir = fresh_dir("staged_parents");
  try {
    StagedDirectory staged(dir / "a" / "b" / "out");
    write_file_atomic(staged.path() / "x.txt", "x");
    throw Error(ErrorCode::kInternal, "boom");
  } catch (const Error&) {
  }
  EXPECT_TRUE(fs::is_empty(dir));  // neither a/b/out's staging folder nor a/ and a/b/
  {
    StagedDirectory staged(dir / "a" / "b" / "out");
    write_file_atomic(staged.path() / "x.txt", "x");
    staged.commit();
  }
  EXPECT_EQ(read_file(dir / "a" / "b" / "out" / "x.txt"), "x");
}

TEST(AtomicFile, CommitOverAnExistingFolderReplacesItWholeAndLeavesNoTemporaries) {
  auto dir = fresh_dir("staged_replace");
  for (const std::string& content : {"first", "second"}) {
    StagedDirectory staged(dir / "out");
    write_file_atomic(staged.path() / (content + ".txt"), content);
    staged.commit();
  }
  EXPECT_FALSE(fs::exists(dir / "out" / "first.txt"));
  EXPECT_EQ(read_file(dir / "out" / "second.txt"), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);  // no out.tmp-* beside it
}

TEST(AtomicFile, NewDirectoryIsRemovedUnlessKeptAndNeverRemovesWhatExisted) {
  auto dir = fresh_dir("new_dir");
  { NewDirectory d(dir / "p" / "q"); EXPECT_TRUE(d.created()); EXPECT_TRUE(fs::is_directory(dir / "p" / "q")); }
  EXPECT_TRUE(fs::is_empty(dir));
  {
    NewDirectory d(dir / "p" / "q");
    d.keep();
  }
  EXPECT_TRUE(fs::is_directory(dir / "p" / "q"));
  write_file_atomic(dir / "p" / "q" / "mine.txt", "keep me");
  { NewDirectory d(dir / "p" / "q"); EXPECT_FALSE(d.created()); }
  EXPECT_EQ(read_file(dir / "p" / "q" / "mine.txt"), "keep me");
  { NewDirectory d(dir / "p" / "r"); }  // only r was new: p stays
  EXPECT_TRUE(fs::is_directory(dir / "p" / "q"));
  EXPECT_FALSE(fs::exists(dir / "p" / "r"));
  write_file_atomic(dir / "file", "x");
  EXPECT_THROW(NewDirectory(dir / "file"), Error);
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
