// GGUF files, written: metadata and tensors laid out as llama.cpp's own writer does (version 3,
// tensors in the order added, each aligned to 32 bytes), to a temporary name, then renamed.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include "inference/gguf_file.h"

namespace hearth {

class GgufWriter {
 public:
  // Metadata in the order set; setting a key twice replaces its value.
  void set_string(const std::string& key, const std::string& value);
  void set_uint32(const std::string& key, uint32_t value);
  void set_int32(const std::string& key, int32_t value);
  void set_float32(const std::string& key, float value);
  void set_bool(const std::string& key, bool value);
  void set_strings(const std::string& key, const std::vector<std::string>& values);
  void set_float32s(const std::string& key, const std::vector<float>& values);
  void set_int32s(const std::string& key, const std::vector<int32_t>& values);
  // Copies a value read from another GGUF file (tokenizer metadata, ...).
  void copy_value(const std::string& key, const GgufValue& value);

  // A tensor of ggml type `type` with GGUF dims (dims[0] = row length) whose bytes are `data`
  // (contiguous; its byte size must be what the type and dims imply). Kept until write().
  void add_tensor(const std::string& name, const std::vector<int64_t>& dims, uint32_t type, const at::Tensor& data);

  // Writes the file atomically (temporary name, fsync, rename).
  void write(const std::filesystem::path& path) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t type;
    at::Tensor data;
  };
  std::string& slot(const std::string& key);
  std::string header() const;

  std::vector<std::pair<std::string, std::string>> metadata_;  // key -> encoded type + value
  std::vector<Tensor> tensors_;
};

}  // namespace hearth
