// The device interface: memory, clusters, `supports` and execution. How a
// batch is partitioned and scheduled lives outside devices (session.cpp).
#pragma once

#include <functional>
#include <memory>

#include "program/program_data.hpp"
#include "runtime/kernel.hpp"
#include "shoal/shoal.hpp"

namespace shoal::runtime {

class Device {
 public:
  virtual ~Device() = default;
  virtual const DeviceInfo& info() const = 0;
  virtual int num_clusters() const = 0;

  /// Device memory: allocated, and first touched, by the device's threads.
  virtual void* allocate(size_t bytes) = 0;
  virtual void release(void* p) noexcept = 0;

  /// Whether the device can execute the instruction at all.
  virtual bool supports(const program::Instruction& ins,
                        const program::ProgramData& prog) const = 0;
  /// The kernel for `ins` on `cluster`; prog.weights points at this device's
  /// copy of the weights.
  virtual std::unique_ptr<Kernel> make_kernel(const program::Instruction& ins,
                                              const program::ProgramData& prog, int cluster) = 0;

  /// Queues `work` on the cluster's threads; returns at once.
  virtual void submit(int cluster, std::function<void(ExecContext&)> work) = 0;
};

/// Creates the CPU device for `info` with `clusters` clusters over its cores;
/// with `team`, one more cluster (the last) spans all of them.
std::unique_ptr<Device> make_cpu_device(const DeviceInfo& info, int clusters, bool team = false);

/// How many NUMA nodes hold cores this process may use (at least 1).
int numa_node_count();

/// A kernel running the op table's reference implementation.
std::unique_ptr<Kernel> make_reference_kernel(const program::Instruction& ins,
                                              const program::ProgramData& prog);

}  // namespace shoal::runtime
