#include "trainer/token_document.h"

namespace hearth::trainer {

int64_t trained_token_count(const TokenDocument& doc) {
  int64_t n = 0;
  for (size_t i = 1; i < doc.trained.size(); ++i) n += doc.trained[i];
  return n;
}

}  // namespace hearth::trainer
