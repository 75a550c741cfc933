#include "inference/load_options.h"

#include "core/error.h"

namespace hearth {

at::ScalarType parse_compute_dtype(const std::string& name) {
  if (name == "fp32" || name == "f32" || name == "float32") return at::kFloat;
  if (name == "bf16" || name == "bfloat16") return at::kBFloat16;
  fail(ErrorCode::kInvalidArgument, "unknown dtype \"" + name + "\" (fp32 or bf16)");
}

EmbeddingStorage parse_embedding_storage(const std::string& name) {
  if (name == "int8") return EmbeddingStorage::kInt8;
  if (name == "nf4") return EmbeddingStorage::kNF4;
  if (name == "nf4-32") return EmbeddingStorage::kNF4_32;
  if (name == "int4") return EmbeddingStorage::kInt4;
  if (name == "bf16") return EmbeddingStorage::kBF16;
  fail(ErrorCode::kInvalidArgument, "unknown embedding storage \"" + name + "\" (int8, nf4, nf4-32, int4 or bf16)");
}

const char* embedding_storage_name(EmbeddingStorage storage) {
  switch (storage) {
    case EmbeddingStorage::kInt8: return "int8";
    case EmbeddingStorage::kNF4: return "nf4";
    case EmbeddingStorage::kNF4_32: return "nf4-32";
    case EmbeddingStorage::kInt4: return "int4";
    case EmbeddingStorage::kBF16: return "bf16";
  }
  return "int8";
}

}  // namespace hearth
