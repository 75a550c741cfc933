#include "adapters/adapter_set.h"

#include "adapters/peft_files.h"
#include "core/error.h"

namespace hearth {
namespace {

std::vector<std::pair<Linear*, std::shared_ptr<const LinearAdapter>>> resolve_slots(Decoder& decoder,
                                                                                      const Adapter& adapter) {
  require(adapter.num_layers() == static_cast<int64_t>(decoder.layers().size()), ErrorCode::kInvalidArgument,
          "the adapter was made for a model with " + std::to_string(adapter.num_layers()) + " layers, this one has " +
              std::to_string(decoder.layers().size()));
  std::vector<std::pair<Linear*, std::shared_ptr<const LinearAdapter>>> slots;
  for (const AdapterModule& m : adapter.modules()) {
    Linear& linear = decoder_projection(decoder.layers()[m.layer], m.name);
    require(linear.in_features() == m.impl->in_features() && linear.out_features() == m.impl->out_features(),
            ErrorCode::kInvalidArgument,
            "adapter module " + m.peft_prefix() + " does not fit this model's projection shape");
    slots.emplace_back(&linear, m.impl);
  }
  return slots;
}

}  // namespace

void detach_adapters(Decoder& decoder) {
  for (DecoderLayer& layer : decoder.layers())
    for (auto& [name, linear] : layer.projections()) linear->set_adapter(nullptr);
}

void attach_adapter(Decoder& decoder, const std::shared_ptr<Adapter>& adapter) {
  require(adapter != nullptr, ErrorCode::kInvalidArgument, "attach_adapter: no adapter given");
  auto slots = resolve_slots(decoder, *adapter);
  detach_adapters(decoder);
  for (auto& [linear, impl] : slots) linear->set_adapter(impl);
}

AdapterSet::AdapterSet(std::shared_ptr<Decoder> decoder) : decoder_(std::move(decoder)) {
  require(decoder_ != nullptr, ErrorCode::kInvalidArgument, "AdapterSet needs a decoder");
}

void AdapterSet::add(const std::string& name, std::shared_ptr<Adapter> adapter) {
  require(!name.empty(), ErrorCode::kInvalidArgument, "an adapter needs a non-empty name");
  require(entries_.count(name) == 0, ErrorCode::kInvalidArgument, "an adapter named \"" + name + "\" is already loaded");
  require(adapter != nullptr, ErrorCode::kInvalidArgument, "AdapterSet::add: no adapter given");
  Entry e;
  e.slots = resolve_slots(*decoder_, *adapter);
  e.adapter = std::move(adapter);
  entries_.emplace(name, std::move(e));
}

std::shared_ptr<Adapter> AdapterSet::load(const std::string& name, const std::filesystem::path& dir,
                                          const std::string& base_fingerprint) {
  std::shared_ptr<Adapter> adapter = load_peft_adapter(dir, *decoder_, base_fingerprint);
  add(name, adapter);
  return adapter;
}

void AdapterSet::remove(const std::string& name) {
  require(entries_.count(name) != 0, ErrorCode::kNotFound, "no adapter named \"" + name + "\" is loaded");
  if (active_ == name) activate("");
  entries_.erase(name);
}

void AdapterSet::activate(const std::string& name) {
  const Entry* next = nullptr;
  if (!name.empty()) {
    auto it = entries_.find(name);
    require(it != entries_.end(), ErrorCode::kNotFound, "no adapter named \"" + name + "\" is loaded");
    next = &it->second;
  }
  // Clear only the slots the current adapter filled, then fill the next one's.
  if (!active_.empty())
    for (auto& [linear, impl] : entries_.at(active_).slots) linear->set_adapter(nullptr);
  if (next)
    for (auto& [linear, impl] : next->slots) linear->set_adapter(impl);
  active_ = name;
}

std::shared_ptr<Adapter> AdapterSet::get(const std::string& name) const {
  auto it = entries_.find(name);
  require(it != entries_.end(), ErrorCode::kNotFound, "no adapter named \"" + name + "\" is loaded");
  return it->second.adapter;
}

std::vector<std::string> AdapterSet::names() const {
  std::vector<std::string> out;
  for (const auto& [name, e] : entries_) out.push_back(name);
  return out;
}

}  // namespace hearth
