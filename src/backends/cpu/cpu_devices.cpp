// Enumerates this host's CPU devices: one per NUMA node by default, or as
// SHOAL_CPU_DEVICES says ("2": two equal devices; "0-7,8-15": one per range).
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "backends/cpu/cpu_device.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

std::vector<int> parse_cpulist(const std::string& text, const std::string& what) {
  std::vector<int> cores;
  std::stringstream ss(text);
  std::string part;
  auto num = [&](const std::string& s) {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 6)
      throw Error(ErrorKind::invalid_argument, what + ": bad core list '" + text +
                                                   "' (expected e.g. 0-3,4-7 or a device count)");
    return std::stoi(s);
  };
  while (std::getline(ss, part, ',')) {
    part.erase(std::remove(part.begin(), part.end(), ' '), part.end());
    part.erase(std::remove(part.begin(), part.end(), '\n'), part.end());
    if (part.empty()) continue;
    auto dash = part.find('-');
    int lo = num(part.substr(0, dash)),
        hi = dash == std::string::npos ? lo : num(part.substr(dash + 1));
    if (hi < lo) throw Error(ErrorKind::invalid_argument, what + ": bad range '" + part + "'");
    for (int c = lo; c <= hi; ++c) cores.push_back(c);
  }
  return cores;
}

std::vector<int> allowed_cores() {
  cpu_set_t set;
  std::vector<int> cores;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cores.push_back(c);
  }
  if (cores.empty()) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    for (int c = 0; c < std::max(1L, n); ++c) cores.push_back(c);
  }
  return cores;
}

uint64_t host_memory() {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : 0;
}

std::vector<std::vector<int>> numa_nodes(const std::vector<int>& allowed) {
  std::vector<std::vector<int>> nodes;
  std::set<int> ok(allowed.begin(), allowed.end());
  for (int n = 0; n < 1024; ++n) {
    std::ifstream f("/sys/devices/system/node/node" + std::to_string(n) + "/cpulist");
    if (!f) break;
    std::string text;
    std::getline(f, text);
    std::vector<int> cores;
    for (int c : parse_cpulist(text, "numa node"))
      if (ok.count(c)) cores.push_back(c);
    if (!cores.empty()) nodes.push_back(cores);
  }
  if (nodes.empty()) nodes.push_back(allowed);
  return nodes;
}

}  // namespace

int numa_node_count() { return int(numa_nodes(allowed_cores()).size()); }

std::vector<DeviceInfo> enumerate_devices(const Settings& settings) {
  const std::vector<int> allowed = allowed_cores();
  std::vector<std::vector<int>> groups;
  const std::string& spec = settings.cpu_devices;
  if (spec.empty()) {
    groups = numa_nodes(allowed);
  } else if (spec.find_first_not_of("0123456789") == std::string::npos) {
    const int n = std::stoi(spec.substr(0, 6));
    if (n < 1 || n > int(allowed.size()))
      throw Error(ErrorKind::invalid_argument,
                  "SHOAL_CPU_DEVICES=" + spec + ": this process may use " +
                      std::to_string(allowed.size()) + " cores, so 1 to " +
                      std::to_string(allowed.size()) +
                      " devices (a plain number is a device count; core " + spec +
                      " alone is written " + spec + "-" + spec + ")");
    for (int d = 0; d < n; ++d) {
      size_t lo = allowed.size() * size_t(d) / size_t(n),
             hi = allowed.size() * size_t(d + 1) / size_t(n);
      groups.emplace_back(allowed.begin() + long(lo), allowed.begin() + long(hi));
    }
  } else {
    std::stringstream ss(spec);
    std::string item;
    while (std::getline(ss, item, ';')) {
      // "0-7,8-15": each comma item is one device.
      std::stringstream items(item);
      std::string range;
      while (std::getline(items, range, ','))
        groups.push_back(parse_cpulist(range, "SHOAL_CPU_DEVICES"));
    }
    // An empty item ("0-1,,2" or ",") would be a device without cores.
    for (size_t i = 0; i < groups.size(); ++i)
      if (groups[i].empty())
        throw Error(ErrorKind::invalid_argument,
                    "SHOAL_CPU_DEVICES=" + spec + ": device " + std::to_string(i) +
                        " has no cores (an empty item; expected e.g. 0-3,4-7 or a device count)");
    if (groups.empty())
      throw Error(ErrorKind::invalid_argument,
                  "SHOAL_CPU_DEVICES=" + spec +
                      " names no cores (expected e.g. 0-3,4-7 or a device count)");
    std::set<int> ok(allowed.begin(), allowed.end());
    for (auto& g : groups)
      for (int c : g)
        if (!ok.count(c))
          throw Error(ErrorKind::invalid_argument, "SHOAL_CPU_DEVICES=" + spec + ": core " +
                                                       std::to_string(c) +
                                                       " is not available to this process");
  }
  std::vector<DeviceInfo> out;
  const uint64_t mem = host_memory();
  for (size_t i = 0; i < groups.size(); ++i) {
    DeviceInfo d;
    d.cores = groups[i];
    d.compute_units = int(groups[i].size());
    d.clusters = int(groups[i].size());
    d.host_addressable = true;
    d.memory_bytes = mem / groups.size();
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace shoal::cpu
