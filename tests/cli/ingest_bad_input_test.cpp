// Bad input to `hearth ingest` through the real binary: a malformed JSONL line or invalid
// UTF-8 gives one error line naming the file and line, a non-zero exit and no rows at all (not
// even the user); SQL metacharacters and quotes in a user name are just a name.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "cli_runner.h"
#include "core/atomic_file.h"
#include "core/json.h"
#include "storage/database.h"
#include "storage/hearth_home.h"

namespace hearth {
namespace {
namespace fs = std::filesystem;
using testing::run_hearth;

class IngestBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::fresh_temp_dir("cli_ingest_bad");
    home_ = dir_ / "home";
    key_ = dir_ / "master.key";
    write_file_atomic(key_, std::string(32, '\x17'));
    ::chmod(key_.c_str(), 0600);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path file(const std::string& name, const std::string& content) const {
    write_file_atomic(dir_ / name, content);
    return dir_ / name;
  }
  testing::CliResult ingest(const std::string& user, const std::vector<fs::path>& files) const {
    std::vector<std::string> args{"ingest", "--home", home_.string(), "--key-file", key_.string(), "--user", user, "--json"};
    for (const fs::path& f : files) args.push_back(f.string());
    return run_hearth(args);
  }
  Json users() const {
    auto r = run_hearth({"data", "list", "--home", home_.string(), "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string out = r.out.substr(0, r.out.find_last_not_of('\n') + 1);
    return Json::parse(out.substr(out.rfind('\n') + 1))["users"];
  }
  void expect_one_error_naming(const testing::CliResult& r, const std::string& needle) const {
    EXPECT_EQ(r.signal, 0) << r.err;
    EXPECT_NE(r.exit_code, 0);
    EXPECT_EQ(testing::count_error_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "expected \"" << needle << "\" in: " << r.err;
  }
  void expect_intact() const {
    storage::Database db(storage::database_path(home_));
    EXPECT_EQ(db.integrity_check(), "ok");
  }

  fs::path dir_, home_, key_;
};

TEST_F(IngestBadInput, MalformedJsonlNamesFileAndLineAndStoresNothing) {
  const fs::path good = file("notes.txt", "A perfectly good note.\n");
  const fs::path bad = file("chats.jsonl",
                            "{\"prompt\": \"a\", \"completion\": \"b\"}\n"
                            "\n"
                            "{\"prompt\": \"c\", \"completion\": }\n");
  auto r = ingest("ann", {good, bad});
  expect_one_error_naming(r, "chats.jsonl:3");
  EXPECT_EQ(users().size(), 0u) << "a rejected call must not even create the user";
  expect_intact();
}

TEST_F(IngestBadInput, InvalidUtf8NamesFileAndLine) {
  const fs::path bad = file("diary.txt", "line one\nline two\nbad \xC0\xAF overlong slash\n");
  auto r = ingest("ann", {bad});
  expect_one_error_naming(r, "diary.txt:3");
  EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
  EXPECT_EQ(users().size(), 0u);
  const fs::path bad_jsonl = file("x.jsonl", "{\"prompt\": \"\xED\xA0\x80\", \"completion\": \"surrogate\"}\n");
  expect_one_error_naming(ingest("ann", {bad_jsonl}), "x.jsonl:1");
  EXPECT_EQ(users().size(), 0u);
  expect_intact();
}

TEST_F(IngestBadInput, SqlMetacharactersInUserNamesAreJustNames) {
  const std::vector<std::string> names{"Robert'); DROP TABLE users;--", "O'Brien \"the\" ; --", "ann"};
  for (const std::string& name : names) {
    auto r = ingest(name, {file("n.txt", "Note of " + name + " with 'quotes'; DELETE FROM documents;\n")});
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
  }
  Json listed = users();
  ASSERT_EQ(listed.size(), names.size());
  std::vector<std::string> got;
  for (const Json& u : listed) {
    got.push_back(u["user"].get<std::string>());
    EXPECT_EQ(u["documents"], 1) << u.dump();
  }
  for (const std::string& name : names) EXPECT_NE(std::find(got.begin(), got.end(), name), got.end()) << name;
  auto show = run_hearth({"data", "show", "--home", home_.string(), "--key-file", key_.string(), "--user", names[0],
                          "--kind", "document", "--id", "1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  EXPECT_NE(show.out.find("DELETE FROM documents;"), std::string::npos) << show.out;
  expect_intact();
}

}  // namespace
}  // namespace hearth
