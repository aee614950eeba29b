// One cluster's share of a loaded program: its arena and its kernels, for
// one sample or a stack of samples at once (see batching.hpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "device/device.hpp"

namespace shoal::runtime {

using device::Device;
using device::ExecContext;
using device::Kernel;

class Executor {
 public:
  /// `view` (the program with weights on `device`) must outlive the executor;
  /// stacks hold up to `max_stack` samples; `settings` say whether a stack's
  /// split is forced (stack_split) or reported (debug_stack).
  Executor(Device& device, int cluster, const program::ProgramData& view, int64_t max_stack,
           const Settings& settings);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  Device& device() const { return device_; }
  int cluster() const { return cluster_; }

  /// Makes the one-sample kernels (call on the cluster's thread, which
  /// first-touches the arena). The arena is device memory: the executor
  /// offsets its address but moves bytes only through the device's copies.
  void init(ExecContext& ctx);
  /// Runs up to m samples, `first` onwards, of a batch (inputs and outputs
  /// with the batch as dim 0) as one stack: fewer when stacks are capped or
  /// cannot be made. Returns how many it ran. On the cluster's thread.
  /// `finite`: the inputs are known to hold no NaN or Inf (the session
  /// checked them), so they are not scanned again.
  int64_t run(ExecContext& ctx, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
              int64_t first, int64_t m, bool profile, bool finite = false);

  /// Runs sample 0 of the batch through the one-sample kernels and copies
  /// every instruction's outputs out after it ran (debugging).
  void run_layers(ExecContext& ctx, const std::vector<Tensor>& inputs,
                  std::vector<std::vector<Tensor>>& outputs);

  /// Per instruction: the one-sample kernel's implementation, and the
  /// profile (ms summed, samples run).
  std::string impl(size_t instruction) const;
  std::string precision(size_t instruction) const;  ///< "f32", "bf16"
  /// Safe to call while the cluster runs (the counters are atomics).
  double ms(size_t instruction) const { return ms_[instruction].load(std::memory_order_relaxed); }
  int64_t samples(size_t instruction) const {
    return samples_[instruction].load(std::memory_order_relaxed);
  }
  void reset_profile();

 private:
  struct Stack;
  /// The kernels for n samples, made on first use. For n > 1 a first part
  /// of the program may run a sample at a time where that measured faster.
  Stack& stack(ExecContext& ctx, int64_t n);
  void bind(Stack& s);
  /// Runs the first `split` instructions a sample at a time from now on.
  void set_split(Stack& s, size_t split);
  /// set_split for good: frees the stacked kernels it no longer runs.
  void settle(Stack& s, size_t split);
  /// Learns from the per-instruction times of the stack's first runs
  /// (stacked, then a sample at a time) where to split it.
  void tune(Stack& s, const std::vector<double>& times);
  /// Where sample `sample` of tensor t of stack s lives.
  void* address(const Stack& s, int32_t t, int64_t sample) const;

  Device& device_;
  const int cluster_;
  const program::ProgramData& view_;
  int64_t max_stack_;
  int64_t stack_split_;  // SHOAL_STACK_SPLIT (-1: timed)
  bool debug_stack_;     // SHOAL_DEBUG_STACK
  uint8_t* arena_ = nullptr;
  uint64_t arena_bytes_ = 0;
  // stacks_[n]: n samples at once, 1 <= n <= max_stack (sized once: impl()
  // reads stacks_[1] from other threads).
  std::vector<std::unique_ptr<Stack>> stacks_;
  std::vector<bool> seen_;  // seen_[n]: a run of n samples came before
  // Profile counters: written by the cluster's thread, read by profile().
  std::unique_ptr<std::atomic<double>[]> ms_;
  std::unique_ptr<std::atomic<int64_t>[]> samples_;
  size_t count_ = 0;
};

}  // namespace shoal::runtime
