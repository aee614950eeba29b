// The device interface: what a backend implements so that the runtime can
// load and run programs on its devices. A device owns its memory (allocate,
// free, copies in and out, fill), its clusters and their execution (submit),
// and says which instructions it runs. How a batch is partitioned and
// scheduled lives in the runtime (src/runtime/session.cpp), which knows
// devices only through this interface and the registry (registry.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/settings.hpp"
#include "device/kernel.hpp"
#include "program/program_data.hpp"
#include "shoal/shoal.hpp"

namespace shoal::device {

/// How a runtime sets up one device.
struct DeviceConfig {
  int clusters = 1;   ///< clusters taking whole samples (>= 1)
  bool team = false;  ///< one more cluster (the last) spanning the whole device
  Settings settings;  ///< the environment as the API read it (core/settings.hpp)
};

class Device {
 public:
  virtual ~Device() = default;
  /// Typed attributes: kind, name, compute units, memory, host_addressable.
  virtual const DeviceInfo& info() const = 0;
  virtual int num_clusters() const = 0;

  // --- memory ---------------------------------------------------------------
  // A device address (what allocate returns) lives in the device's own
  // address space. The runtime offsets it (p + bytes, within an allocation)
  // and hands it to the device's kernels and copies, but never reads or
  // writes through it unless info().host_addressable says the host may.
  // Copies and fills are ordered with the kernels the same cluster runs and
  // may complete asynchronously; synchronize(ctx) waits for them. Host
  // buffers passed to copy_in/copy_out must stay valid until then.

  /// Device memory of at least `bytes` bytes, 64-byte aligned. Throws
  /// Error(out_of_memory).
  virtual void* allocate(size_t bytes) = 0;
  virtual void free(void* p) noexcept = 0;
  /// Host -> device.
  virtual void copy_in(ExecContext& ctx, void* dst, const void* host_src, size_t bytes) = 0;
  /// Device -> host.
  virtual void copy_out(ExecContext& ctx, void* host_dst, const void* src, size_t bytes) = 0;
  /// Device -> device, within this device.
  virtual void copy(ExecContext& ctx, void* dst, const void* src, size_t bytes) = 0;
  virtual void fill(ExecContext& ctx, void* dst, uint8_t value, size_t bytes) = 0;
  /// Waits until everything issued on ctx's cluster has completed.
  virtual void synchronize(ExecContext& ctx) = 0;

  /// Whether, under automatic weight placement, this device reads weights
  /// resident in host memory (the mapped program file) in place instead of
  /// copying them into its own memory. Only a host-addressable device may say
  /// yes (CPU: a host with one NUMA node, whose memory is equally near every
  /// core).
  virtual bool prefers_host_weights() const { return false; }

  // --- execution ------------------------------------------------------------
  /// Whether the device can run programs compiled for `target` ("cpu").
  virtual bool runs_target(const std::string& target) const = 0;
  /// Whether the device can execute the instruction at all.
  virtual bool supports(const program::Instruction& ins,
                        const program::ProgramData& prog) const = 0;
  /// The kernel for `ins` on `cluster`; prog.weights is the device address of
  /// this device's weights (or, host-addressable, the host's), and the
  /// program was validated (ops::check_instruction) when it was loaded.
  virtual std::unique_ptr<Kernel> make_kernel(const program::Instruction& ins,
                                              const program::ProgramData& prog, int cluster) = 0;
  /// Queues `work` on the cluster's threads; returns at once. Work items on
  /// one cluster run one at a time, in order.
  virtual void submit(int cluster, std::function<void(ExecContext&)> work) = 0;
};

}  // namespace shoal::device
