// Process-wide runtime settings applied once at start-up by every entry point (CLI, C API,
// tests, benchmarks): the thread count and the memory allocator's reuse policy.
#pragma once

namespace hearth {

// What the allocator does with freed tensor memory.
enum class MemoryPolicy {
  // Freed blocks stay in the heap for reuse, so each forward pass does not page-fault its
  // activations in again (generation: a few MB allocated and freed per layer, per token).
  kReuse,
  // Blocks of 128 KiB and more are mapped on their own and go back to the kernel when freed,
  // so the resident size follows the live tensors (training: long-lived saved activations and
  // gradients between short-lived temporaries would otherwise fragment the heap, which never
  // shrinks). The price is a page fault per 4 KiB of every such block, which a small model
  // (little arithmetic per byte allocated) feels most.
  kBounded,
};

// Sets threads (resolve_thread_count in threads.h: 0 = all cores, capped to the cores there
// are, refused outside 0..kMaxThreads) and the kReuse policy.
void init_runtime(int threads);

// Switches the policy for the whole process; switching to kBounded also returns the heap's
// free memory to the kernel.
void set_memory_policy(MemoryPolicy policy);
MemoryPolicy memory_policy();

// Gives the heap's free pages back to the kernel now, whatever the policy: for work whose
// phases each free what the last one held (quantization's layers), so the resident size does
// not keep every phase's high-water mark.
void return_free_memory();

// Sets a policy for its lifetime and restores the previous one.
class ScopedMemoryPolicy {
 public:
  explicit ScopedMemoryPolicy(MemoryPolicy policy) : previous_(memory_policy()) { set_memory_policy(policy); }
  ~ScopedMemoryPolicy() { set_memory_policy(previous_); }
  ScopedMemoryPolicy(const ScopedMemoryPolicy&) = delete;
  ScopedMemoryPolicy& operator=(const ScopedMemoryPolicy&) = delete;

 private:
  MemoryPolicy previous_;
};

}  // namespace hearth
