// The distributed engine Hearth runs on: LibTorch's c10d. A Rendezvous is a TCPStore (a small
// key-value server one process hosts and the others reach over TCP); a ProcessGroup is a Gloo
// group over TCP formed through it, with sum-collectives on CPU tensors. Every wait is bounded:
// a peer that dies or hangs makes the others fail with a kIo error naming what was waited for.
// The c10d headers stay inside process_group.cpp.
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "trainer/distributed_options.h"

namespace hearth::trainer {

class Rendezvous {
 public:
  // Hosts the store on addr:port (the coordinator, or rank 0). kIo when the port is taken.
  static std::shared_ptr<Rendezvous> host(const std::string& addr, int port, double timeout_seconds);
  // Connects to a store hosted elsewhere, retrying until timeout_seconds (kIo after that).
  static std::shared_ptr<Rendezvous> join(const std::string& addr, int port, double timeout_seconds);
  ~Rendezvous();

  void set(const std::string& key, const std::string& value);
  // Waits up to `timeout_seconds` (0: the rendezvous's timeout) for the key; kIo naming `what` after that.
  std::string get(const std::string& key, const std::string& what, double timeout_seconds = 0);
  bool has(const std::string& key);
  int64_t add(const std::string& key, int64_t delta);
  void erase(const std::string& key);
  double timeout_seconds() const { return timeout_seconds_; }
  // The c10d store (c10d::Store*), for process groups formed over it.
  void* native() const;

 private:
  Rendezvous() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  double timeout_seconds_ = 60;
};

// A finished-or-pending collective started with a *_async call.
class PendingCollective {
 public:
  PendingCollective() = default;
  // Blocks until done; kIo (naming the operation and the lost peer) when a peer failed or timed out.
  void wait();
  bool valid() const { return impl_ != nullptr; }
  struct Impl;
  explicit PendingCollective(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

 private:
  std::shared_ptr<Impl> impl_;
};

class ProcessGroup {
 public:
  // Forms the group `name` of `size` members over `rendezvous` (keys under "<name>/"); blocks
  // until every member has joined (kIo naming the group after timeout_seconds).
  ProcessGroup(std::shared_ptr<Rendezvous> rendezvous, const std::string& name, int rank, int size,
               double timeout_seconds, const std::string& bind_addr);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  // A data-parallel run's group: rank 0 hosts the rendezvous at the master address.
  static std::shared_ptr<ProcessGroup> connect(const DistributedOptions& options);

  int rank() const { return rank_; }
  int size() const { return size_; }
  Rendezvous& rendezvous() { return *rendezvous_; }

  // Element-wise sums over every member, in place (float, double or int64 tensors, contiguous).
  void allreduce_sum(std::vector<at::Tensor>& tensors, const std::string& what);
  PendingCollective allreduce_sum_async(const at::Tensor& tensor, const std::string& what);
  // The sum arrives at `root` only (the others' tensors are left unspecified).
  void reduce_sum(at::Tensor& tensor, int root, const std::string& what);
  // `root`'s tensor copied into everyone's (same shape and type on every member).
  void broadcast(at::Tensor& tensor, int root, const std::string& what);
  void barrier(const std::string& what);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<Rendezvous> rendezvous_;
  int rank_ = 0, size_ = 1;
};

}  // namespace hearth::trainer
