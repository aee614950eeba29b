// The backend registry: each backend (src/backends/<kind>/) registers itself
// by name from its own source file, and the runtime enumerates and creates
// devices through it without naming any backend.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "device/device.hpp"

namespace shoal::device {

struct Backend {
  std::string kind;  ///< "cpu", "ref": the kind of its devices, "kind:index" names them
  int order = 0;     ///< backends enumerate in this order (then by kind): device ids follow it
  /// Whether a runtime naming no device may pick this backend's devices (a
  /// debugging backend says no: it runs only where named).
  bool automatic = true;
  /// This host's devices of the backend, as the settings partition them; id,
  /// kind, index and name are filled in by the registry.
  std::function<std::vector<DeviceInfo>(const Settings&)> enumerate;
  std::function<std::unique_ptr<Device>(const DeviceInfo&, const DeviceConfig&)> create;
  /// Optional: the layers ("Op 'name'") of a program that this backend's
  /// devices would run on slow fallback kernels (Program::reference_layers,
  /// strict compiles, `shoal inspect`).
  std::function<std::vector<std::string>(const program::ProgramData&)> reference_layers;
  /// Optional: the target-specific part of compiling a program for this
  /// backend (CompileOptions::target == kind), run on the emitted program:
  /// precision, algorithm choices, weight layouts. Without one, the program
  /// keeps plain f32 weights and precision must be f32.
  std::function<void(program::ProgramData&, const CompileOptions&, const Settings&,
                     const std::function<void(const std::string&)>& log)>
      compile;
};

/// Registers a backend (from a static initializer); returns true. Throws
/// Error(internal) for a kind registered twice.
bool register_backend(Backend backend);
/// The registered backends, in enumeration order.
std::vector<Backend> backends();
/// Every device of every backend; DeviceInfo::id is the index in this list.
std::vector<DeviceInfo> enumerate_devices(const Settings& settings);
/// The backend of devices of `kind`; throws Error(device) when none is.
Backend backend(const std::string& kind);

}  // namespace shoal::device
