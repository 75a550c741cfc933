// Optimizer::save_state / load_state: scalars through cereal, moments through safetensors.
#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstring>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "optim/optimizer.h"

namespace hearth {
namespace optim {
namespace {

constexpr char kMagic[8] = {'H', 'R', 'T', 'H', 'O', 'P', 'T', '1'};
constexpr uint32_t kFormatVersion = 1;

struct GroupRecord {
  double lr = 0;
  double weight_decay = 0;
  uint64_t num_params = 0;
  template <class Archive>
  void serialize(Archive& a) { a(lr, weight_decay, num_params); }
};

struct ParamRecord {
  uint64_t step = 0;
  double last_update_norm = -1;
  bool has_moments = false;
  std::vector<int64_t> shape;         // of the parameter, to catch a state of other params
  std::vector<int64_t> moment_shape;  // empty when has_moments is false
  template <class Archive>
  void serialize(Archive& a) { a(step, last_update_norm, has_moments, shape, moment_shape); }
};

struct StateRecord {
  uint32_t version = kFormatVersion;
  std::string kind;
  std::map<std::string, std::string> settings;
  std::vector<GroupRecord> groups;
  std::vector<ParamRecord> params;
  template <class Archive>
  void serialize(Archive& a) { a(version, kind, settings, groups, params); }
};

// FNV-1a: detects a damaged state file before cereal is asked to trust its lengths.
uint64_t checksum(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Settings such as the per-matrix rank list can be long; an error shows their start.
std::string shorten(const std::string& s) { return s.size() <= 60 ? s : s.substr(0, 60) + "..."; }

std::string moment_name(size_t i, const char* which) { return "param." + std::to_string(i) + "." + which; }

// Parses optimizer_state.bin: magic, checksum of the payload, then the cereal payload.
StateRecord read_state_record(const std::string& bytes, const std::string& what, uint64_t* sum) {
  require(bytes.size() >= 16 && std::memcmp(bytes.data(), kMagic, 8) == 0, ErrorCode::kCorruptFile,
          what + " is not a Hearth optimizer state file (bad magic or too short)");
  std::memcpy(sum, bytes.data() + 8, 8);
  const std::string_view payload(bytes.data() + 16, bytes.size() - 16);
  require(checksum(payload) == *sum, ErrorCode::kCorruptFile,
          what + " is damaged (checksum mismatch); resume from another checkpoint");
  StateRecord rec;
  try {
    std::istringstream in{std::string(payload)};
    cereal::PortableBinaryInputArchive archive(in);
    archive(rec);
  } catch (const std::exception& e) {
    fail(ErrorCode::kCorruptFile, what + " cannot be decoded: " + e.what());
  }
  require(rec.version == kFormatVersion, ErrorCode::kUnsupported,
          what + " has format version " + std::to_string(rec.version) + "; this build reads version " + std::to_string(kFormatVersion));
  return rec;
}

}  // namespace

void Optimizer::save_state(const std::filesystem::path& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  require(!ec, ErrorCode::kIo, "cannot create optimizer state folder " + dir.string() + ": " + ec.message());
  SafetensorsWriter moments;
  const std::string file = encode_state(moments);
  moments.write(dir / kMomentsFile);
  write_file_atomic(dir / kStateFile, file);
}

constexpr const char* kStateTensor = "optimizer_state_file";

std::string Optimizer::save_state_bytes() const {
  SafetensorsWriter moments;
  const std::string file = encode_state(moments);
  at::Tensor bytes = at::empty({int64_t(file.size())}, at::kByte);
  std::memcpy(bytes.data_ptr(), file.data(), file.size());
  moments.add(kStateTensor, bytes);
  return moments.to_bytes();
}

void Optimizer::load_state_bytes(std::string_view bytes, const std::string& name) {
  auto file = SafetensorsFile::from_bytes(bytes, name);
  require(file->contains(kStateTensor) && file->entry(kStateTensor).dtype == at::kByte, ErrorCode::kCorruptFile,
          name + " holds no optimizer state");
  const at::Tensor t = file->tensor(kStateTensor);
  decode_state(std::string(reinterpret_cast<const char*>(t.data_ptr()), t.numel()), *file, "optimizer state in " + name, name);
}

std::string Optimizer::encode_state(SafetensorsWriter& moments) const {
  StateRecord rec;
  rec.kind = kind();
  rec.settings = state_settings();
  for (const auto& g : groups_) rec.groups.push_back({*g.lr, *g.weight_decay, g.params.size()});
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamState& s = states_[i];
    ParamRecord p;
    p.step = s.step;
    p.last_update_norm = s.last_update_norm;
    p.shape = params_[i].sizes().vec();
    p.has_moments = s.exp_avg.defined();
    if (p.has_moments) {
      p.moment_shape = s.exp_avg.sizes().vec();
      moments.add(moment_name(i, "exp_avg"), s.exp_avg);
      moments.add(moment_name(i, "exp_avg_sq"), s.exp_avg_sq);
    }
    rec.params.push_back(std::move(p));
  }
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive archive(out);
    archive(rec);
  }
  const std::string payload = out.str();
  const uint64_t sum = checksum(payload);
  // The moments file carries the checksum of the scalars file, so a pair from two different
  // saves (a crash between the two renames) is detected on load.
  moments.set_metadata("format", "hearth-optimizer-moments-1");
  moments.set_metadata("state_id", hex(sum));
  std::string file(kMagic, 8);
  file.append(reinterpret_cast<const char*>(&sum), 8);
  file += payload;
  return file;
}

void Optimizer::load_state(const std::filesystem::path& dir) {
  require(std::filesystem::is_directory(dir), ErrorCode::kNotFound, "optimizer state folder " + dir.string() + " does not exist");
  const std::string state_file = read_file(dir / kStateFile, size_t(1) << 30);
  auto moments = SafetensorsFile::open(dir / kMomentsFile);
  decode_state(state_file, *moments, "optimizer state in " + dir.string(), (dir / kMomentsFile).string());
}

void Optimizer::decode_state(const std::string& state_file, const SafetensorsFile& moments, const std::string& what,
                             const std::string& moments_what) {
  uint64_t sum = 0;
  const StateRecord rec = read_state_record(state_file, what, &sum);

  require(rec.kind == kind(), ErrorCode::kInvalidArgument, what + " was saved by the " + rec.kind + " optimizer, not " + kind());
  require(rec.groups.size() == groups_.size(), ErrorCode::kInvalidArgument,
          what + " has " + std::to_string(rec.groups.size()) + " parameter groups; the optimizer has " + std::to_string(groups_.size()));
  for (size_t g = 0; g < groups_.size(); ++g) {
    require(rec.groups[g].num_params == groups_[g].params.size(), ErrorCode::kInvalidArgument,
            what + ": group " + std::to_string(g) + " was saved with " + std::to_string(rec.groups[g].num_params) +
                " parameters; it now has " + std::to_string(groups_[g].params.size()));
  }
  require(rec.params.size() == params_.size(), ErrorCode::kInvalidArgument,
          what + " holds " + std::to_string(rec.params.size()) + " parameters; the optimizer has " + std::to_string(params_.size()));

  // Which parameters first (the clearest message), then with which settings.
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::vector<int64_t> shape = params_[i].sizes().vec();
    require(rec.params[i].shape == shape, ErrorCode::kInvalidArgument,
            what + ": parameter " + std::to_string(i) + " has shape " + shape_str(shape) + " but the state was saved for shape " +
                shape_str(rec.params[i].shape));
  }
  const auto settings = state_settings();
  for (const auto& [key, value] : settings) {
    auto it = rec.settings.find(key);
    const std::string saved = it == rec.settings.end() ? "(absent)" : it->second;
    require(saved == value, ErrorCode::kInvalidArgument,
            what + " was saved with " + key + " = " + shorten(saved) + " but the optimizer has " + key + " = " + shorten(value) +
                "; resume with the settings of the saved run");
  }
  const SafetensorsFile* file = &moments;
  auto id = file->metadata().find("state_id");
  require(id != file->metadata().end() && id->second == hex(sum), ErrorCode::kCorruptFile,
          moments_what + " does not belong to " + what + " (they come from different saves)");

  std::vector<ParamState> loaded(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const ParamRecord& p = rec.params[i];
    loaded[i].step = p.step;
    loaded[i].last_update_norm = p.last_update_norm;
    if (!p.has_moments) continue;
    const std::vector<int64_t> expected = moment_shape(i);
    require(p.moment_shape == expected, ErrorCode::kInvalidArgument,
            what + ": parameter " + std::to_string(i) + " needs moments of shape " + shape_str(expected) + " but the state has " +
                shape_str(p.moment_shape) + " (was the rank changed?)");
    for (const char* which : {"exp_avg", "exp_avg_sq"}) {
      const std::string name = moment_name(i, which);
      const SafetensorsEntry& e = file->entry(name);
      require(e.shape == expected && e.dtype == params_[i].scalar_type(), ErrorCode::kCorruptFile,
              moments_what + ": tensor " + name + " has shape " + shape_str(e.shape) + " and dtype " +
                  c10::toString(e.dtype) + "; expected " + shape_str(expected) + " " + c10::toString(params_[i].scalar_type()));
      // clone(): the file's view must not outlive the mapping or alias the checkpoint.
      at::Tensor t = file->tensor(name).clone().to(params_[i].device());
      (std::string(which) == "exp_avg" ? loaded[i].exp_avg : loaded[i].exp_avg_sq) = t;
    }
  }
  // Everything checked: commit.
  states_ = std::move(loaded);
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].lr = rec.groups[g].lr;
    groups_[g].weight_decay = rec.groups[g].weight_decay;
  }
  on_state_loaded();
}

}  // namespace optim
}  // namespace hearth
