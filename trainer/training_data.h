// Reads training data files into tokenized documents, split into a training and a held-out
// part: plain text (.txt/.md or any non-JSONL file, folders searched recursively), chat JSONL
// ({"messages":[{"role","content"}]}) and prompt/completion JSONL ({"prompt","completion"}).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "inference/tokenizer/tokenizer.h"
#include "trainer/token_document.h"

namespace hearth::trainer {

enum class EvalSplit {
  kTail,  // the last eval_fraction of each file (lines of a text, records of a JSONL file)
  kHash,  // each paragraph / record by a hash of its content (stable across file order)
};

struct DataOptions {
  double eval_fraction = 0.1;  // share held out for evaluation, in [0, 0.9]
  EvalSplit split = EvalSplit::kTail;
};

struct TrainingData {
  std::vector<TokenDocument> train;
  std::vector<TokenDocument> eval;
};

// The files of `paths` (folders expanded recursively, in sorted order), read and tokenized.
// A malformed JSONL line is a kInvalidArgument error naming "file:line" and what is wrong.
TrainingData load_training_data(const std::vector<std::filesystem::path>& paths, const Tokenizer& tokenizer,
                                const DataOptions& options);

// The same for one file's contents (used by load_training_data and by tests).
void add_file_documents(const std::string& name, const std::string& contents, const Tokenizer& tokenizer,
                        const DataOptions& options, TrainingData& out);

EvalSplit parse_eval_split(const std::string& name);

}  // namespace hearth::trainer
