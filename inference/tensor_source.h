// Named weight tensors of a checkpoint, in Hugging Face naming, from wherever they live:
// one safetensors file, a sharded set, or a llama2.c file. Tensors view mapped memory.
#pragma once
#include <ATen/ATen.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors.h"

namespace hearth {

struct QuantizedMatrix;

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual bool contains(const std::string& name) const = 0;
  // The tensor (a zero-copy view where the format allows); fails naming the missing tensor.
  virtual at::Tensor get(const std::string& name) const = 0;
  virtual std::vector<std::string> names() const = 0;
  // The safetensors file holding `name`, for packed formats read as raw parts; may be null.
  virtual std::shared_ptr<SafetensorsFile> file_of(const std::string& name) const { return nullptr; }
  // Called once `name` has been converted (quantized) and its source bytes are no longer read:
  // a mapped file lets their pages go, so quantizing at load never holds the whole full-precision
  // model resident. Views of `name` stay valid (pages are re-read from the file).
  virtual void release(const std::string& name) const {}
  // release() for bytes [offset, offset + bytes) of `name` only: a large tensor converted in
  // slices lets each slice go once it is done.
  virtual void release_part(const std::string& name, size_t offset, size_t bytes) const {}
  // A 2-D weight the source stores in a block format Hearth computes with directly (a GGUF
  // tensor), as a matrix viewing the source's bytes; nullptr when it is stored dense.
  virtual std::shared_ptr<const QuantizedMatrix> packed(const std::string& name) const { return nullptr; }
};

// model.safetensors, or the shards listed by model.safetensors.index.json, in `dir`.
std::unique_ptr<TensorSource> open_safetensors_folder(const std::filesystem::path& dir);

// Tensors given directly (llama2.c loading, tests).
class TensorMap : public TensorSource {
 public:
  void add(const std::string& name, at::Tensor t) { tensors_[name] = std::move(t); }
  bool contains(const std::string& name) const override { return tensors_.count(name) != 0; }
  at::Tensor get(const std::string& name) const override;
  std::vector<std::string> names() const override;

 private:
  std::map<std::string, at::Tensor> tensors_;
};

// `base` with some tensors replaced (weights tuned before quantizing, tests): the replacements
// are read as given, everything else from `base`.
class OverlayTensorSource : public TensorSource {
 public:
  OverlayTensorSource(const TensorSource& base, std::map<std::string, at::Tensor> replaced)
      : base_(base), replaced_(std::move(replaced)) {}
  bool contains(const std::string& name) const override { return replaced_.count(name) != 0 || base_.contains(name); }
  at::Tensor get(const std::string& name) const override;
  std::vector<std::string> names() const override { return base_.names(); }
  std::shared_ptr<SafetensorsFile> file_of(const std::string& name) const override;
  void release(const std::string& name) const override;
  void release_part(const std::string& name, size_t offset, size_t bytes) const override;
  std::shared_ptr<const QuantizedMatrix> packed(const std::string& name) const override;

 private:
  bool replaced(const std::string& name) const { return replaced_.count(name) != 0; }
  const TensorSource& base_;
  std::map<std::string, at::Tensor> replaced_;
};

}  // namespace hearth
