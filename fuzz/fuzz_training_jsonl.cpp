// Fuzz target: training JSONL (chat and prompt/completion lines) as `hearth ingest` parses,
// redacts and stores each line (storage/training_example.h), and as the trainer tokenizes a file.
#include <sstream>

#include "fuzz/fixtures.h"
#include "fuzz/harness.h"
#include "privacy/redactor.h"
#include "storage/training_example.h"
#include "storage/utf8.h"
#include "trainer/training_data.h"

using namespace hearth;

namespace {

// Redaction may only shrink a finding to its placeholder; the text around it is kept.
void check_redaction(const std::string& text) {
  const privacy::Redaction r = privacy::redact(text, privacy::RedactionMode::kMask);
  fuzz::check(storage::first_invalid_utf8(r.text) == std::string::npos, "redaction produced invalid UTF-8");
  if (r.counts.total() == 0) fuzz::check(r.text == text, "redaction changed text with no finding");
}

// One line as ingest sees it: valid UTF-8 first, then the strict parse; what parses must redact
// cleanly and survive the canonical form it is stored in.
void ingest_line(const std::string& line, size_t number) {
  if (storage::first_invalid_utf8(line) != std::string::npos) return;  // ingest refuses it before parsing
  fuzz::refusal_is_clean([&] {
    const std::string where = "fuzz.jsonl:" + std::to_string(number);
    const storage::TrainingExample example = storage::parse_example_line(line, where);
    for (const auto& m : example.messages) check_redaction(m.content);
    check_redaction(example.prompt);
    check_redaction(example.completion);
    const std::string stored = storage::canonical_example_json(example);
    fuzz::must_succeed("reading a stored example back", [&] {
      const storage::TrainingExample back = storage::example_from_canonical_json(stored, where);
      fuzz::check(storage::canonical_example_json(back) == stored, "the stored form of an example is not stable");
    });
  });
}

void check_documents(const std::vector<trainer::TokenDocument>& docs, int32_t vocab) {
  for (const auto& doc : docs) {
    fuzz::check(doc.tokens.size() == doc.trained.size(), "tokens and loss mask differ in length");
    for (int32_t id : doc.tokens) fuzz::check(id >= 0 && id < vocab, "a training token outside the vocabulary");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::init();
  fuzz::qwen3_tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string contents(fuzz::as_bytes(data, size));
  std::istringstream lines(contents);
  std::string line;
  for (size_t number = 1; std::getline(lines, line); ++number) ingest_line(line, number);

  const Tokenizer& tokenizer = fuzz::qwen3_tokenizer();
  fuzz::refusal_is_clean([&] {
    trainer::TrainingData out;
    trainer::add_file_documents("fuzz.jsonl", contents, tokenizer, trainer::DataOptions{}, out);
    check_documents(out.train, tokenizer.vocab_size());
    check_documents(out.eval, tokenizer.vocab_size());
  });
  return 0;
}
