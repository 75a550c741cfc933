#include "engine/federated_protocol.h"

#include <sodium.h>

#include <cmath>

#include "core/error.h"

namespace hearth::engine {

Json FederatedSettings::to_json() const {
  return Json{{"local", local.to_json()},
              {"base_fingerprint", base_fingerprint},
              {"update_size", update_size},
              {"clip", clip},
              {"dp", dp},
              {"weight_cap_tokens", weight_cap_tokens},
              {"frac_bits", frac_bits},
              {"round_timeout_seconds", round_timeout_seconds}};
}

FederatedSettings FederatedSettings::from_json(const Json& j) {
  require(j.is_object(), ErrorCode::kCorruptFile, "the federation's settings are not a JSON object");
  FederatedSettings s;
  try {
    s.local = TrainingSpec::from_json(j.at("local"), "the federation's local training");
    s.base_fingerprint = j.at("base_fingerprint").get<std::string>();
    s.update_size = j.at("update_size").get<int64_t>();
    s.clip = j.at("clip").get<double>();
    s.dp = j.at("dp").get<bool>();
    s.weight_cap_tokens = j.at("weight_cap_tokens").get<double>();
    s.frac_bits = j.at("frac_bits").get<int>();
    s.round_timeout_seconds = j.at("round_timeout_seconds").get<double>();
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorCode::kCorruptFile, std::string("the federation's settings are malformed: ") + e.what() +
                                      "; the coordinator and this client run different Hearth versions");
  }
  require(s.update_size > 1 && s.frac_bits > 0 && s.frac_bits <= 40 && s.clip >= 0 && s.weight_cap_tokens > 0,
          ErrorCode::kCorruptFile, "the federation's settings are out of range");
  return s;
}

int secret_threshold(int cohort_size) { return std::max(2, cohort_size / 2 + 1); }

std::string round_key(int64_t n, const std::string& what) { return "fed/round/" + std::to_string(n) + "/" + what; }

std::string to_hex(const std::string& bytes) {
  std::string hex(bytes.size() * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  hex.pop_back();
  return hex;
}

std::string from_hex(const std::string& hex, const std::string& what) {
  std::string bytes(hex.size() / 2, '\0');
  size_t len = 0;
  const int rc = sodium_hex2bin(reinterpret_cast<unsigned char*>(bytes.data()), bytes.size(), hex.data(), hex.size(), nullptr,
                                &len, nullptr);
  require(rc == 0 && len == bytes.size() && hex.size() % 2 == 0, ErrorCode::kCorruptFile, what + " is not valid hex");
  return bytes;
}

std::string key_bytes(const privacy::Key32& key) { return std::string(reinterpret_cast<const char*>(key.data()), key.size()); }

privacy::Key32 key_from_bytes(const std::string& bytes, const std::string& what) {
  require(bytes.size() == 32, ErrorCode::kCorruptFile, what + " must be 32 bytes, not " + std::to_string(bytes.size()));
  privacy::Key32 k{};
  std::copy(bytes.begin(), bytes.end(), k.begin());
  return k;
}

double clip_update_(at::Tensor& delta, double clip) {
  if (clip <= 0) return 1.0;
  const double norm = delta.to(at::kDouble).norm().item<double>();
  const double factor = norm > clip ? clip / norm : 1.0;
  if (factor < 1.0) delta.mul_(factor);
  return factor;
}

at::Tensor encode_update(const at::Tensor& delta, double weight, const FederatedSettings& s) {
  require(delta.numel() + 1 == s.update_size, ErrorCode::kInvalidArgument,
          "a local update has " + std::to_string(delta.numel()) + " values; the federation's adapter has " +
              std::to_string(s.update_size - 1));
  at::Tensor v = at::cat({delta.to(at::kDouble).reshape({-1}) * weight, at::tensor({weight}, at::kDouble)});
  return privacy::encode_fixed_point(v, s.frac_bits);
}

std::pair<at::Tensor, double> decode_update_sum(const at::Tensor& encoded_sum, const FederatedSettings& s) {
  const at::Tensor v = privacy::decode_fixed_point(encoded_sum, s.frac_bits);
  return {v.narrow(0, 0, v.numel() - 1), v[v.numel() - 1].item<double>()};
}

}  // namespace hearth::engine
