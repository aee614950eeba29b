// `shoal devices`: lists the devices of this host.
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"
#include "shoal/shoal.hpp"

namespace shoal::cli {
namespace {

Command spec() {
  return Command("devices", "shoal devices [--json]",
                 "Lists the devices shoal can run on, of every backend: cpu devices "
                 "(host cores; they follow SHOAL_CPU_DEVICES), then ref devices (the "
                 "reference kernels, for debugging numerics; SHOAL_REF_DEVICES, default "
                 "1). Name them as kind:index (cpu:0, ref:0) or by id.")
      .flag("json", 0, "print a JSON array instead of a table")
      .positionals(0, 0);
}

std::string cores_json(const std::vector<int>& cores) {
  std::string s = "[";
  for (size_t i = 0; i < cores.size(); ++i)
    s += (i ? ", " : "") + std::to_string(cores[i]);
  return s + "]";
}

}  // namespace

int cmd_devices(const std::vector<std::string>& argv) {
  const Command cmd = spec();
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  const std::vector<DeviceInfo> devs = devices();
  if (args.has("json")) {
    std::string s = "[";
    for (size_t i = 0; i < devs.size(); ++i) {
      const DeviceInfo& d = devs[i];
      if (i) s += ", ";
      s += "{\"id\": " + std::to_string(d.id) + ", \"name\": " + json_string(d.name) +
           ", \"kind\": " + json_string(d.kind) + ", \"index\": " + std::to_string(d.index) +
           ", \"cores\": " + cores_json(d.cores) +
           ", \"compute_units\": " + std::to_string(d.compute_units) +
           ", \"compute_unit\": " + json_string(d.compute_unit) +
           ", \"host_addressable\": " + (d.host_addressable ? "true" : "false") +
           ", \"clusters\": " + std::to_string(d.clusters) +
           ", \"memory_bytes\": " + std::to_string(d.memory_bytes) + "}";
    }
    s += "]\n";
    std::fputs(s.c_str(), stdout);
    return kExitOk;
  }
  if (devs.empty()) {
    std::printf("no devices\n");
    return kExitOk;
  }
  std::printf("%-4s %-8s %-6s %-16s %8s %12s\n", "id", "name", "kind", "cores", "clusters",
              "memory");
  for (const DeviceInfo& d : devs)
    std::printf("%-4d %-8s %-6s %-16s %8d %12s%s\n", d.id, d.name.c_str(), d.kind.c_str(),
                d.cores.empty() ? "-" : int_ranges(d.cores).c_str(), d.clusters,
                human_bytes(d.memory_bytes).c_str(), d.host_addressable ? "" : "  (own memory)");
  return kExitOk;
}

}  // namespace shoal::cli
