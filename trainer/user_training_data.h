// Training data from a user's stored rows (storage::UserData, decrypted in memory) instead of
// files: documents are split and tokenized like text files, examples like JSONL records.
#pragma once
#include "inference/tokenizer/tokenizer.h"
#include "storage/user_data.h"
#include "trainer/training_data.h"

namespace hearth::trainer {

// Each document is one text ("document <n>"), all examples one JSONL stream ("examples",
// line n = the n-th example), so the held-out split and the loss masks are those of files.
// Nothing is written anywhere.
TrainingData user_training_data(const storage::UserData& data, const Tokenizer& tokenizer, const DataOptions& options);

}  // namespace hearth::trainer
