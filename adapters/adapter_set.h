// Putting adapters into a decoder: attach / detach one, and the set of loaded adapters a
// server switches between per request (pointer swaps in the projections' adapter slots).
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "adapters/adapter.h"
#include "inference/decoder.h"

namespace hearth {

// Sets the adapter slot of every projection `adapter` targets and clears all others.
// kInvalidArgument when the adapter was made for a model of another shape.
void attach_adapter(Decoder& decoder, const std::shared_ptr<Adapter>& adapter);
// Clears every projection's adapter slot: the decoder computes the bare base again.
void detach_adapters(Decoder& decoder);

// Many adapters over one base; activate(name) makes the decoder compute with that one.
// Not for concurrent requests on one decoder: switching changes what a running forward sees.
class AdapterSet {
 public:
  explicit AdapterSet(std::shared_ptr<Decoder> decoder);

  // Adds `adapter` under `name` (kInvalidArgument if the name is taken or the shape differs).
  void add(const std::string& name, std::shared_ptr<Adapter> adapter);
  // Loads a PEFT folder (peft_files.h) and adds it.
  std::shared_ptr<Adapter> load(const std::string& name, const std::filesystem::path& dir,
                                const std::string& base_fingerprint);
  // Removes `name` (detaching it if active); kNotFound if absent.
  void remove(const std::string& name);

  // Makes `name` the decoder's adapter; "" means the bare base. kNotFound for an unknown name.
  void activate(const std::string& name);
  const std::string& active() const { return active_; }
  std::shared_ptr<Adapter> get(const std::string& name) const;
  std::vector<std::string> names() const;
  Decoder& decoder() { return *decoder_; }

 private:
  // The slots an adapter fills, resolved once when it is added, so switching is pointer swaps.
  struct Entry {
    std::shared_ptr<Adapter> adapter;
    std::vector<std::pair<Linear*, std::shared_ptr<const LinearAdapter>>> slots;
  };

  std::shared_ptr<Decoder> decoder_;
  std::map<std::string, Entry> entries_;
  std::string active_;
};

}  // namespace hearth
