#include "inference/tensor_source.h"

#include "core/error.h"
#include "core/json.h"

namespace hearth {
namespace {

namespace fs = std::filesystem;

class SafetensorsSource : public TensorSource {
 public:
  void add_file(std::shared_ptr<SafetensorsFile> file) {
    for (const auto& e : file->entries()) {
      auto [it, inserted] = owner_.emplace(e.name, file);
      if (!inserted) {
        fail(ErrorCode::kCorruptFile, "tensor \"" + e.name + "\" appears in two shards (" + it->second->path().string() +
                                          ", " + file->path().string() + ")");
      }
    }
  }
  bool contains(const std::string& name) const override { return owner_.count(name) != 0; }
  at::Tensor get(const std::string& name) const override {
    auto it = owner_.find(name);
    require(it != owner_.end(), ErrorCode::kCorruptFile, "the checkpoint has no tensor \"" + name + "\"");
    return it->second->tensor(name);
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : owner_) out.push_back(kv.first);
    return out;
  }
  std::shared_ptr<SafetensorsFile> file_of(const std::string& name) const override {
    auto it = owner_.find(name);
    return it == owner_.end() ? nullptr : it->second;
  }
  void release(const std::string& name) const override {
    if (auto file = file_of(name)) file->drop_resident_pages(name);
  }
  void release_part(const std::string& name, size_t offset, size_t bytes) const override {
    if (auto file = file_of(name)) file->drop_resident_pages(name, offset, bytes);
  }

 private:
  std::map<std::string, std::shared_ptr<SafetensorsFile>> owner_;
};

}  // namespace

std::unique_ptr<TensorSource> open_safetensors_folder(const fs::path& dir) {
  auto source = std::make_unique<SafetensorsSource>();
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(single)) {
    source->add_file(SafetensorsFile::open(single));
  } else if (fs::exists(index)) {
    Json j = read_json_file(index);
    require(j.contains("weight_map") && j["weight_map"].is_object(), ErrorCode::kCorruptFile,
            index.string() + ": missing \"weight_map\"");
    std::map<std::string, bool> shards;
    for (const auto& item : j["weight_map"].items()) {
      require(item.value().is_string(), ErrorCode::kCorruptFile, index.string() + ": weight_map values must be file names");
      std::string shard = item.value().get<std::string>();
      require(shard.find('/') == std::string::npos && shard.find("..") == std::string::npos, ErrorCode::kCorruptFile,
              index.string() + ": shard name \"" + shard + "\" must be a plain file name");
      shards[shard] = true;
    }
    for (const auto& kv : shards) source->add_file(SafetensorsFile::open(dir / kv.first));
  } else {
    fail(ErrorCode::kNotFound, dir.string() + " has neither model.safetensors nor model.safetensors.index.json");
  }
  return source;
}

at::Tensor TensorMap::get(const std::string& name) const {
  auto it = tensors_.find(name);
  require(it != tensors_.end(), ErrorCode::kCorruptFile, "the checkpoint has no tensor \"" + name + "\"");
  return it->second;
}

std::vector<std::string> TensorMap::names() const {
  std::vector<std::string> out;
  for (const auto& kv : tensors_) out.push_back(kv.first);
  return out;
}

at::Tensor OverlayTensorSource::get(const std::string& name) const {
  auto it = replaced_.find(name);
  return it != replaced_.end() ? it->second : base_.get(name);
}

std::shared_ptr<SafetensorsFile> OverlayTensorSource::file_of(const std::string& name) const {
  return replaced(name) ? nullptr : base_.file_of(name);
}

void OverlayTensorSource::release(const std::string& name) const {
  if (!replaced(name)) base_.release(name);
}

void OverlayTensorSource::release_part(const std::string& name, size_t offset, size_t bytes) const {
  if (!replaced(name)) base_.release_part(name, offset, bytes);
}

std::shared_ptr<const QuantizedMatrix> OverlayTensorSource::packed(const std::string& name) const {
  return replaced(name) ? nullptr : base_.packed(name);
}

}  // namespace hearth
