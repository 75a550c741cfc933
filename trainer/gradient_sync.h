// Data parallelism's one exchange per step: every rank's adapter gradients summed over the
// process group, in buckets of about 1 MiB. When backward runs in one pass (no gradient
// checkpointing), each bucket's all-reduce starts from a gradient hook as soon as backward has
// produced its last gradient, so communication overlaps the rest of backward; otherwise the
// buckets go out right after backward.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "trainer/process_group.h"

namespace hearth::trainer {

class GradientSync {
 public:
  // `params` in the trainable's order; `overlap`: start buckets from gradient hooks (only valid
  // when every parameter's gradient is produced exactly once per backward call).
  GradientSync(ProcessGroup& group, const std::vector<std::pair<std::string, at::Tensor>>& params, bool overlap,
               size_t bucket_bytes = size_t(1) << 20);
  ~GradientSync();  // removes the hooks
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Call before the backward pass of the step's last micro-batch: its hooks then copy each
  // finished gradient (the micro-batches' sum) into its bucket.
  void arm();
  // After that backward: starts the buckets not yet started, waits for all, and writes the
  // summed gradients back into every parameter's .grad.
  void finish();
  int64_t buckets() const { return int64_t(buckets_.size()); }
  // Buckets started from a hook (during backward) in the last step.
  int64_t overlapped() const { return overlapped_; }

 private:
  struct Bucket {
    at::Tensor flat;                    // fp32, the bucket's gradients back to back
    std::vector<size_t> members;        // indices into params_
    std::vector<int64_t> offsets;       // element offset of each member in flat
    int64_t ready = 0;
    PendingCollective pending;
  };
  void copy_in(size_t param, const at::Tensor& grad);
  void start(Bucket& b);

  ProcessGroup& group_;
  std::vector<std::pair<std::string, at::Tensor>> params_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, size_t>> where_;  // param -> (bucket, member slot)
  std::vector<bool> copied_;
  std::vector<unsigned> hooks_;  // handle of each parameter's hook (overlap only)
  bool overlap_ = false, armed_ = false;
  int64_t overlapped_ = 0;
};

}  // namespace hearth::trainer
