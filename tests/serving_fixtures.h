// A real Hearth home for serving tests: users created through the engine and adapters of chosen
// kinds (LoRA / DoRA, ranks, targets) sealed into each user's registry, their B matrices drawn at
// random so every adapter changes the base's answers.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "adapters/adapter.h"
#include "adapters/adapter_bundle.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "storage/adapter_registry.h"
#include "storage/vault.h"
#include "test_helpers.h"

namespace hearth::testing {

inline const std::string& serving_key() {
  static const std::string key(32, '\x5a');
  return key;
}

inline privacy::MasterKeySource serving_key_source() { return privacy::MasterKeySource::from_raw_key(serving_key()); }

inline engine::EngineOptions serving_engine_options(const std::filesystem::path& home,
                                                    const privacy::MasterKeySource& key = serving_key_source()) {
  engine::EngineOptions o;
  o.home = home;
  o.key = key;
  return o;
}

inline engine::BaseModelSpec stories_nf4_spec() {
  engine::BaseModelSpec b;
  b.path = stories260k_dir().string();
  b.quant = "nf4";
  return b;
}

// An adapter for `decoder` whose B is N(0, b_std) (a fresh one's B is zero: no effect).
inline std::shared_ptr<Adapter> random_adapter(const Decoder& decoder, AdapterConfig config, double b_std) {
  auto adapter = Adapter::create(decoder, config);
  at::NoGradGuard no_grad;
  at::Generator gen = make_generator(config.seed + 1000);
  for (auto& [name, t] : adapter->named_parameters())
    if (name.find("lora_B") != std::string::npos) t.normal_(0, b_std, gen);
  return adapter;
}

// Seals `adapter` as the next version of (user, name) in the home's registry. The user must exist.
inline void register_adapter(const std::filesystem::path& home, const std::string& user, const std::string& name,
                             const Adapter& adapter, const std::string& base_fingerprint,
                             const privacy::MasterKeySource& key = serving_key_source()) {
  storage::Vault vault(home, key);
  storage::AdapterRegistry registry(vault.db(), vault.keyring(), vault.home());
  storage::AdapterRecord meta;
  meta.user_id = storage::UserStore(vault.db()).get(user).id;
  meta.name = name;
  meta.method = adapter_method_name(adapter.config().method);
  meta.rank = adapter.config().rank;
  meta.targets = adapter.config().targets;
  meta.base_fingerprint = base_fingerprint;
  registry.add(meta, adapter_to_bundle(adapter, "stories260K", base_fingerprint, Json::object()));
}

// Creates `user` through the engine (a one-line document) if it does not exist yet.
inline void ensure_user(engine::Engine& e, const std::string& user) {
  for (const auto& u : e.users())
    if (u.name == user) return;
  e.ingest_texts(user, {{storage::IngestItem::Kind::kDocument, "note", "A short note.\n"}});
}

inline AdapterConfig adapter_kind(AdapterMethod method, int64_t rank, double alpha, const std::string& targets,
                                  uint64_t seed) {
  AdapterConfig c;
  c.method = method;
  c.rank = rank;
  c.alpha = alpha;
  c.targets = AdapterConfig::parse_targets(targets);
  c.seed = seed;
  return c;
}

}  // namespace hearth::testing
