#include "device/registry.hpp"

#include <algorithm>
#include <cctype>
#include <mutex>
#include <sstream>

#include "shoal/error.hpp"

namespace shoal {
namespace device {
namespace {

struct Registry {
  std::mutex mu;
  std::vector<Backend> backends;
};

Registry& registry() {
  static Registry r;  // constructed on first use: backends register from static initializers
  return r;
}

}  // namespace

bool register_backend(Backend backend) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.mu);
  for (const Backend& b : r.backends)
    if (b.kind == backend.kind)
      throw Error(ErrorKind::internal, "backend '" + backend.kind + "' registered twice");
  r.backends.push_back(std::move(backend));
  std::stable_sort(r.backends.begin(), r.backends.end(), [](const Backend& a, const Backend& b) {
    return a.order != b.order ? a.order < b.order : a.kind < b.kind;
  });
  return true;
}

std::vector<Backend> backends() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.mu);
  return r.backends;
}

Backend backend(const std::string& kind) {
  for (Backend& b : backends())
    if (b.kind == kind) return b;
  throw Error(ErrorKind::device, "no backend '" + kind + "' in this build");
}

std::vector<DeviceInfo> enumerate_devices(const Settings& settings) {
  std::vector<DeviceInfo> out;
  for (const Backend& b : backends()) {
    std::vector<DeviceInfo> devs = b.enumerate(settings);
    for (size_t i = 0; i < devs.size(); ++i) {
      DeviceInfo& d = devs[i];
      d.id = int(out.size());
      d.kind = b.kind;
      d.index = int(i);
      d.name = b.kind + ":" + std::to_string(i);
      d.automatic = b.automatic;
      out.push_back(std::move(d));
    }
  }
  return out;
}

}  // namespace device

std::string DeviceInfo::describe() const {
  std::ostringstream o;
  o << "device " << id << " (" << name << "): " << kind << ", ";
  o << compute_units << " " << compute_unit << (compute_units == 1 ? "" : "s");
  if (!cores.empty()) {
    o << " [";
    for (size_t i = 0; i < cores.size(); ++i) o << (i ? "," : "") << cores[i];
    o << "]";
  }
  o << ", " << clusters << " cluster" << (clusters == 1 ? "" : "s") << ", " << (memory_bytes >> 20)
    << " MiB" << (host_addressable ? "" : ", own memory");
  return o.str();
}

std::vector<DeviceInfo> devices() { return device::enumerate_devices(read_settings()); }

int find_device(const std::string& name) {
  const std::vector<DeviceInfo> devs = device::enumerate_devices(read_settings());
  std::string n = name;
  n.erase(std::remove(n.begin(), n.end(), ' '), n.end());
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  if (!n.empty() && n.size() <= 6 && n.find_first_not_of("0123456789") == std::string::npos) {
    const int id = std::stoi(n);
    if (id < int(devs.size())) return id;
  } else {
    for (const DeviceInfo& d : devs)
      if (d.name == n) return d.id;
  }
  std::string have;
  for (const DeviceInfo& d : devs) have += (have.empty() ? "" : ", ") + d.name;
  throw Error(ErrorKind::invalid_argument, "no device '" + name +
                                               "' on this host (expected kind:index or an id; "
                                               "its devices are " +
                                               have + ")");
}

}  // namespace shoal
