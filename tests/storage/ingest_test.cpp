// Ingest end to end on a real database file: formats, de-duplication, redaction, the
// one-transaction rule for bad input, size limits, tampering, and two concurrent writers.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/database.h"
#include "storage/ingest.h"
#include "storage/record_store.h"
#include "storage/user_data.h"
#include "storage/user_store.h"
#include "test_home.h"

using namespace hearth;
using namespace hearth::storage;
using namespace hearth::storage::testing;

namespace {

const char* kChat =
    R"({"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello there"}]})";
const char* kCompletion = R"({"prompt":"2+2=","completion":"4","id":17})";

IngestReport ingest(Vault& v, const std::vector<fs::path>& files, const std::string& user = "ann",
                    std::optional<privacy::RedactionMode> mode = std::nullopt) {
  IngestOptions options;
  options.user = user;
  options.redaction = mode;
  options.actor = "test";
  return ingest_files(v.db(), v.keyring(), files, options);
}

int64_t total_rows(Database& db) {
  Statement s = db.prepare("SELECT (SELECT COUNT(*) FROM documents) + (SELECT COUNT(*) FROM examples) + (SELECT COUNT(*) FROM users)");
  s.step();
  return s.column_int(0);
}

}  // namespace

TEST(Ingest, DocumentsAndBothJsonlFormatsRoundTrip) {
  TempHome home("formats");
  auto v = home.open();
  auto doc = home.file("notes.md", "# Title\nSome *markdown* text.\n");
  auto jsonl = home.file("chat.jsonl", std::string(kChat) + "\n\n" + kCompletion + "\r\n");
  IngestReport r = ingest(*v, {doc, jsonl});
  EXPECT_TRUE(r.user_created);
  EXPECT_EQ(r.documents_added, 1u);
  EXPECT_EQ(r.examples_added, 2u);
  UserData data = load_user_data(v->db(), v->keyring(), "ann");
  ASSERT_EQ(data.documents.size(), 1u);
  EXPECT_EQ(data.documents[0], "# Title\nSome *markdown* text.\n");
  ASSERT_EQ(data.examples.size(), 2u);
  EXPECT_EQ(data.examples[0].format, ExampleFormat::kChat);
  ASSERT_EQ(data.examples[0].messages.size(), 2u);
  EXPECT_EQ(data.examples[0].messages[1].role, "assistant");
  EXPECT_EQ(data.examples[0].messages[1].content, "hello there");
  EXPECT_EQ(data.examples[1].format, ExampleFormat::kCompletion);
  EXPECT_EQ(data.examples[1].prompt, "2+2=");
  EXPECT_EQ(data.examples[1].completion, "4");
}

TEST(Ingest, DuplicatesAreSkippedPerUser) {
  TempHome home("dedupe");
  auto v = home.open();
  auto a = home.file("a.txt", "same words");
  auto b = home.file("b.txt", "same words");
  auto j = home.file("x.jsonl", std::string(kChat) + "\n" + kChat + "\n");
  IngestReport first = ingest(*v, {a, b, j});
  EXPECT_EQ(first.documents_added, 1u);
  EXPECT_EQ(first.examples_added, 1u);
  EXPECT_EQ(first.duplicates, 2u);
  IngestReport again = ingest(*v, {a, j});
  EXPECT_EQ(again.documents_added + again.examples_added, 0u);
  EXPECT_EQ(again.duplicates, 3u);
  IngestReport other = ingest(*v, {a}, "bob");  // another user's copy is theirs
  EXPECT_EQ(other.documents_added, 1u);
}

TEST(Ingest, RedactionMasksCountsAndDrops) {
  TempHome home("redact");
  auto v = home.open();
  auto doc = home.file("r.txt", "Mail jane@example.org or call 555-123-4567 at 10:30 on 2024-05-01.");
  IngestReport masked = ingest(*v, {doc}, "ann", privacy::RedactionMode::kMask);
  EXPECT_EQ(masked.redactions.total(), 2u);
  UserData data = load_user_data(v->db(), v->keyring(), "ann");
  ASSERT_EQ(data.documents.size(), 1u);
  EXPECT_EQ(data.documents[0], "Mail [EMAIL] or call [PHONE] at 10:30 on 2024-05-01.");
  auto j = home.file("d.jsonl", R"({"prompt":"my card","completion":"4111 1111 1111 1111"})" "\n" + std::string(kCompletion) + "\n");
  IngestReport dropped = ingest(*v, {j}, "dora", privacy::RedactionMode::kDrop);
  EXPECT_EQ(dropped.dropped, 1u);
  EXPECT_EQ(dropped.examples_added, 1u);
  EXPECT_EQ(UserStore(v->db()).get("dora").redaction, privacy::RedactionMode::kDrop);
  IngestReport off = ingest(*v, {doc}, "otto", privacy::RedactionMode::kOff);
  EXPECT_EQ(load_user_data(v->db(), v->keyring(), "otto").documents.at(0),
            "Mail jane@example.org or call 555-123-4567 at 10:30 on 2024-05-01.");
}

TEST(Ingest, MalformedLineRejectsTheWholeCallNamingFileAndLine) {
  TempHome home("malformed");
  auto v = home.open();
  auto good = home.file("good.txt", "fine text");
  auto bad = home.file("bad.jsonl", std::string(kChat) + "\n" + kCompletion + "\n{\"messages\": [}\n");
  Error e = error_of([&] { ingest(*v, {good, bad}); });
  EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  EXPECT_TRUE(contains(e.what(), "bad.jsonl:3")) << e.what();
  EXPECT_EQ(total_rows(v->db()), 0);  // not even the user
  for (const char* line : {R"({"messages":[{"role":"wizard","content":"x"}]})", R"({"messages":[{"role":"user","content":"x"}]})",
                           R"({"prompt":"p"})", R"([1,2])", R"({"text":"x"})", R"({"prompt":"p","completion":5})"}) {
    auto f = home.file("one.jsonl", std::string(kChat) + "\n" + line + "\n");
    Error le = error_of([&] { ingest(*v, {f}); });
    EXPECT_EQ(le.code(), ErrorCode::kCorruptFile) << line;
    EXPECT_TRUE(contains(le.what(), "one.jsonl:2")) << line << " -> " << le.what();
  }
  EXPECT_EQ(total_rows(v->db()), 0);
  auto wrong_type = home.file("x.csv", "a,b");
  EXPECT_EQ(error_of([&] { ingest(*v, {good, wrong_type}); }).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(v->db().integrity_check(), "ok");
}

TEST(Ingest, InvalidUtf8IsRejectedNamingFileAndLine) {
  TempHome home("utf8");
  auto v = home.open();
  auto doc = home.file("bad.txt", "line one\nline two \xC3\x28 here\n");
  Error e = error_of([&] { ingest(*v, {doc}); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(e.what(), "bad.txt:2")) << e.what();
  auto j = home.file("bad.jsonl", std::string(kChat) + "\n{\"prompt\":\"\xED\xA0\x80\",\"completion\":\"x\"}\n");
  Error je = error_of([&] { ingest(*v, {j}); });
  EXPECT_TRUE(contains(je.what(), "bad.jsonl:2")) << je.what();
  EXPECT_EQ(total_rows(v->db()), 0);
}

TEST(Ingest, HundredMegabyteLineIsAClearErrorWithoutReadingItAll) {
  TempHome home("huge");
  auto v = home.open();
  for (const char* name : {"huge.jsonl", "huge.txt"}) {
    fs::path p = home.file(name, "{\"prompt\":\"");
    ASSERT_EQ(::truncate(p.c_str(), 100l << 20), 0);  // 100 MB, one line, no newline
    Error e = error_of([&] { ingest(*v, {p}); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << name;
    EXPECT_TRUE(contains(e.what(), name) && contains(e.what(), "limit")) << e.what();
    fs::remove(p);
  }
  EXPECT_EQ(total_rows(v->db()), 0);
  EXPECT_EQ(v->db().integrity_check(), "ok");
}

TEST(Ingest, CanaryNeverReachesAnyFileUnderHome) {
  TempHome home("canary");
  const std::string canary = "CANARY-7f3a9b21-zebra-quokka";
  {
    auto v = home.open();
    auto doc = home.file("canary-doc.txt", "The secret is " + canary + " indeed.");
    auto named = home.file(canary + ".md", "file name only");
    auto chat = home.file("c.jsonl", R"({"messages":[{"role":"user","content":"say it"},{"role":"assistant","content":")" +
                                         canary + R"("}]})" "\n" R"({"prompt":")" + canary + R"(","completion":"ok"})" "\n");
    ingest(*v, {doc, named, chat}, "ann");
    // While the connection is open the WAL holds the newest pages: scan now too.
    auto hits = files_containing(home.path(), canary);
    EXPECT_TRUE(hits.empty()) << hits[0];
    UserData data = load_user_data(v->db(), v->keyring(), "ann");
    EXPECT_TRUE(contains(data.documents.at(0), canary));
  }
  auto hits = files_containing(home.path(), canary);  // after close: db, WAL and shm as left on disk
  EXPECT_TRUE(hits.empty()) << hits[0];
  EXPECT_GE(std::distance(fs::recursive_directory_iterator(home.path()), fs::recursive_directory_iterator()), 1);
}

TEST(Ingest, TamperedOrMovedCiphertextNamesTheRecord) {
  TempHome home("tamper");
  auto v = home.open();
  ingest(*v, {home.file("a.txt", "alpha text"), home.file("b.txt", "beta text")}, "ann");
  ingest(*v, {home.file("c.txt", "gamma text")}, "bob");
  Database& db = v->db();
  RecordStore records(db, v->keyring());
  int64_t ann = UserStore(db).get("ann").id, bob = UserStore(db).get("bob").id;
  auto ann_docs = records.list(ann);
  int64_t a = ann_docs.at(0).id, b = ann_docs.at(1).id, c = records.list(bob).at(0).id;
  auto sealed_of = [&](int64_t id) {
    Statement s = db.prepare("SELECT sealed FROM documents WHERE id = ?1");
    s.bind(1, id);
    s.step();
    return s.column_blob(0);
  };
  auto set_sealed = [&](int64_t id, const std::string& blob) {
    db.prepare("UPDATE documents SET sealed = ?1 WHERE id = ?2").bind_blob(1, blob).bind(2, id).run();
  };
  const std::string original = sealed_of(a);
  for (size_t i : {size_t(0), size_t(23), size_t(24), original.size() / 2, original.size() - 1}) {
    std::string flipped = original;
    flipped[i] ^= 0x04;
    set_sealed(a, flipped);
    Error e = error_of([&] { records.open_document(ann, a); });
    // The vault's key was verified when it opened, so this is damage to that one record.
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << i;
    EXPECT_TRUE(contains(e.what(), "documents record " + std::to_string(a) + " of user " + std::to_string(ann) + " is damaged"))
        << e.what();
    EXPECT_TRUE(contains(e.what(), "only this record")) << e.what();
  }
  set_sealed(a, sealed_of(b));  // moved within the user
  EXPECT_EQ(error_of([&] { records.open_document(ann, a); }).code(), ErrorCode::kCorruptFile);
  set_sealed(a, sealed_of(c));  // moved from another user
  EXPECT_EQ(error_of([&] { records.open_document(ann, a); }).code(), ErrorCode::kCorruptFile);
  EXPECT_EQ(records.open_document(ann, b), "beta text");  // the other records are untouched
  set_sealed(a, original);  // nothing is lost: the original opens again
  EXPECT_EQ(records.open_document(ann, a), "alpha text");
  EXPECT_EQ(error_of([&] { records.open_document(bob, a); }).code(), ErrorCode::kNotFound);
  EXPECT_EQ(db.integrity_check(), "ok");
}

TEST(Ingest, TwoProcessesWritingAtOnceBothLand) {
  TempHome home("concurrent");
  { auto v = home.open(); }  // create the database and key config before forking
  const int kCalls = 12;
  auto child = [&](int who) -> int {
    try {
      auto v = home.open();
      for (int i = 0; i < kCalls; ++i) {
        std::string body = "writer " + std::to_string(who) + " call " + std::to_string(i);
        auto f = home.file("w" + std::to_string(who) + "_" + std::to_string(i) + ".txt", body);
        auto j = home.file("w" + std::to_string(who) + "_" + std::to_string(i) + ".jsonl",
                           R"({"prompt":")" + body + R"(","completion":"x"})" "\n");
        ingest(*v, {f, j}, "shared");
      }
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "writer %d: %s\n", who, e.what());
      return 1;
    }
  };
  pid_t pids[2];
  for (int w = 0; w < 2; ++w) {
    pids[w] = ::fork();
    ASSERT_GE(pids[w], 0);
    if (pids[w] == 0) ::_exit(child(w));
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  auto v = home.open();
  UserData data = load_user_data(v->db(), v->keyring(), "shared");
  EXPECT_EQ(data.documents.size(), 2u * kCalls);
  EXPECT_EQ(data.examples.size(), 2u * kCalls);
  EXPECT_EQ(UserStore(v->db()).list().size(), 1u);
  EXPECT_EQ(v->db().integrity_check(), "ok");
}
