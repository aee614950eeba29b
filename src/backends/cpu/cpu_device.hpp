// The CPU backend's devices: sets of host cores (cpu_devices.cpp enumerates
// them) and CpuDevice (cpu_device.cpp), registered as backend "cpu".
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "device/device.hpp"

namespace shoal::cpu {

/// This host's CPU devices: one per NUMA node, or as SHOAL_CPU_DEVICES
/// (settings.cpu_devices) says.
std::vector<DeviceInfo> enumerate_devices(const Settings& settings);

/// The cpu target's compile hook (cpu_compile.cpp): bf16 marks
/// (assign_precision), Winograd choices and weight prepacking.
void compile_for_cpu(program::ProgramData& p, const CompileOptions& o, const Settings& settings,
                     const std::function<void(const std::string&)>& log);

/// How many NUMA nodes hold cores this process may use (at least 1).
int numa_node_count();

/// The CPU device for `info` with config.clusters clusters over its cores;
/// with config.team, one more cluster spans all of them.
std::unique_ptr<device::Device> make_cpu_device(const DeviceInfo& info,
                                                const device::DeviceConfig& config);

}  // namespace shoal::cpu
