#include "trainer/process_group.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <thread>

#include "core/error.h"

namespace hearth::trainer {
namespace {

std::chrono::milliseconds millis(double seconds) { return std::chrono::milliseconds(int64_t(seconds * 1000)); }

// c10d's messages carry a source location and a C++ backtrace; the first line says what happened.
std::string first_line(const std::exception& e) {
  std::string s = e.what();
  const size_t nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

}  // namespace

// ---- Rendezvous

struct Rendezvous::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
};

Rendezvous::~Rendezvous() = default;

std::shared_ptr<Rendezvous> Rendezvous::host(const std::string& addr, int port, double timeout_seconds) {
  std::shared_ptr<Rendezvous> r(new Rendezvous());
  r->impl_ = std::make_unique<Impl>();
  r->timeout_seconds_ = timeout_seconds;
  c10d::TCPStoreOptions o;
  o.port = uint16_t(port);
  o.isServer = true;
  o.waitWorkers = false;
  o.timeout = millis(timeout_seconds);
  try {
    r->impl_->store = c10::make_intrusive<c10d::TCPStore>(addr, o);
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "cannot host the rendezvous on " + addr + ":" + std::to_string(port) + " (" + first_line(e) +
                             "); choose another port or stop the process using it");
  }
  return r;
}

std::shared_ptr<Rendezvous> Rendezvous::join(const std::string& addr, int port, double timeout_seconds) {
  std::shared_ptr<Rendezvous> r(new Rendezvous());
  r->impl_ = std::make_unique<Impl>();
  r->timeout_seconds_ = timeout_seconds;
  c10d::TCPStoreOptions o;
  o.port = uint16_t(port);
  o.isServer = false;
  o.waitWorkers = false;
  o.timeout = millis(timeout_seconds);
  try {
    r->impl_->store = c10::make_intrusive<c10d::TCPStore>(addr, o);
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "cannot reach the rendezvous at " + addr + ":" + std::to_string(port) + " within " +
                             std::to_string(int(timeout_seconds)) + " s (" + first_line(e) +
                             "); start the coordinator or rank 0 first and check the address");
  }
  return r;
}

void Rendezvous::set(const std::string& key, const std::string& value) {
  try {
    impl_->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "the rendezvous store stopped answering while writing \"" + key + "\" (" + first_line(e) + ")");
  }
}

std::string Rendezvous::get(const std::string& key, const std::string& what, double timeout_seconds) {
  const double t = timeout_seconds > 0 ? timeout_seconds : timeout_seconds_;
  try {
    impl_->store->wait({key}, millis(t));
    const std::vector<uint8_t> v = impl_->store->get(key);
    return std::string(v.begin(), v.end());
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "gave up waiting for " + what + " after " + std::to_string(int(t)) + " s (" + first_line(e) +
                             "); a peer stopped or the coordinator is gone");
  }
}

bool Rendezvous::has(const std::string& key) {
  try {
    return impl_->store->check({key});
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "the rendezvous store stopped answering (" + first_line(e) + ")");
  }
}

int64_t Rendezvous::add(const std::string& key, int64_t delta) {
  try {
    return impl_->store->add(key, delta);
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "the rendezvous store stopped answering (" + first_line(e) + ")");
  }
}

void Rendezvous::erase(const std::string& key) {
  try {
    impl_->store->deleteKey(key);
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "the rendezvous store stopped answering (" + first_line(e) + ")");
  }
}

void* Rendezvous::native() const { return impl_->store.get(); }

// ---- Pending collectives

struct PendingCollective::Impl {
  c10::intrusive_ptr<c10d::Work> work;
  std::string what;
  int rank = 0, size = 0;
};

namespace {

[[noreturn]] void lost_peer(const std::string& what, int rank, int size, const std::exception& e) {
  fail(ErrorCode::kIo, "rank " + std::to_string(rank) + " of " + std::to_string(size) + " lost its peers during " + what +
                           ": " + first_line(e) +
                           " (a process of the group stopped, was killed or hung past the timeout; restart every rank, "
                           "with --resume to continue from the last checkpoint)");
}

}  // namespace

void PendingCollective::wait() {
  if (!impl_) return;
  try {
    impl_->work->wait();
  } catch (const std::exception& e) {
    lost_peer(impl_->what, impl_->rank, impl_->size, e);
  }
}

// ---- Process groups

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
};

ProcessGroup::ProcessGroup(std::shared_ptr<Rendezvous> rendezvous, const std::string& name, int rank, int size,
                           double timeout_seconds, const std::string& bind_addr)
    : impl_(std::make_unique<Impl>()), rendezvous_(std::move(rendezvous)), rank_(rank), size_(size) {
  require(size >= 1 && rank >= 0 && rank < size, ErrorCode::kInvalidArgument,
          "process group " + name + ": rank " + std::to_string(rank) + " is outside a group of " + std::to_string(size));
  auto* store = static_cast<c10d::Store*>(rendezvous_->native());
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(name, c10::intrusive_ptr<c10d::Store>::reclaim_copy(store));
  auto options = c10d::ProcessGroupGloo::Options::create(millis(timeout_seconds));
  try {
    options->devices.push_back(is_loopback(bind_addr) ? c10d::ProcessGroupGloo::createDeviceForHostname(bind_addr)
                                                      : c10d::ProcessGroupGloo::createDefaultDevice());
    options->threads = 1;  // one background thread: collectives here are small next to the compute
    impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, size, options);
  } catch (const std::exception& e) {
    fail(ErrorCode::kIo, "rank " + std::to_string(rank) + " could not form the process group \"" + name + "\" of " +
                             std::to_string(size) + " within " + std::to_string(int(timeout_seconds)) + " s (" + first_line(e) +
                             "); start every rank with the same --world-size and --master");
  }
}

ProcessGroup::~ProcessGroup() = default;

std::shared_ptr<ProcessGroup> ProcessGroup::connect(const DistributedOptions& o) {
  o.validate();
  std::shared_ptr<Rendezvous> r = o.rank == 0 ? Rendezvous::host(o.master_addr, o.master_port, o.timeout_seconds)
                                              : Rendezvous::join(o.master_addr, o.master_port, o.timeout_seconds);
  return std::make_shared<ProcessGroup>(r, "train", o.rank, o.world_size, o.timeout_seconds, o.master_addr);
}

void ProcessGroup::allreduce_sum(std::vector<at::Tensor>& tensors, const std::string& what) {
  try {
    impl_->gloo->allreduce(tensors)->wait();
  } catch (const std::exception& e) {
    lost_peer(what, rank_, size_, e);
  }
}

PendingCollective ProcessGroup::allreduce_sum_async(const at::Tensor& tensor, const std::string& what) {
  auto impl = std::make_shared<PendingCollective::Impl>();
  impl->what = what;
  impl->rank = rank_;
  impl->size = size_;
  std::vector<at::Tensor> tensors{tensor};
  try {
    impl->work = impl_->gloo->allreduce(tensors);
  } catch (const std::exception& e) {
    lost_peer(what, rank_, size_, e);
  }
  return PendingCollective(impl);
}

void ProcessGroup::reduce_sum(at::Tensor& tensor, int root, const std::string& what) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::ReduceOptions o;
  o.rootRank = root;
  try {
    impl_->gloo->reduce(tensors, o)->wait();
  } catch (const std::exception& e) {
    lost_peer(what, rank_, size_, e);
  }
}

void ProcessGroup::broadcast(at::Tensor& tensor, int root, const std::string& what) {
  std::vector<at::Tensor> tensors{tensor};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  try {
    impl_->gloo->broadcast(tensors, o)->wait();
  } catch (const std::exception& e) {
    lost_peer(what, rank_, size_, e);
  }
}

void ProcessGroup::barrier(const std::string& what) {
  try {
    impl_->gloo->barrier()->wait();
  } catch (const std::exception& e) {
    lost_peer(what, rank_, size_, e);
  }
}

}  // namespace hearth::trainer
