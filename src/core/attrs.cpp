#include "core/attrs.hpp"

#include "shoal/error.hpp"

namespace shoal {
namespace {

template <class T>
const T* get(const std::map<std::string, AttrValue>& m, const std::string& name,
             const char* type) {
  auto it = m.find(name);
  if (it == m.end()) return nullptr;
  if (auto* p = std::get_if<T>(&it->second)) return p;
  throw Error(ErrorKind::invalid_argument,
              "attribute '" + name + "' is not of type " + type);
}

}  // namespace

int64_t Attrs::i(const std::string& name, int64_t def) const {
  auto* p = get<int64_t>(map_, name, "int");
  return p ? *p : def;
}

float Attrs::f(const std::string& name, float def) const {
  auto it = map_.find(name);
  if (it != map_.end())
    if (auto* p = std::get_if<int64_t>(&it->second)) return float(*p);
  auto* p = get<float>(map_, name, "float");
  return p ? *p : def;
}

std::string Attrs::s(const std::string& name, const std::string& def) const {
  auto* p = get<std::string>(map_, name, "string");
  return p ? *p : def;
}

std::vector<int64_t> Attrs::ints(const std::string& name,
                                 std::vector<int64_t> def) const {
  auto* p = get<std::vector<int64_t>>(map_, name, "ints");
  return p ? *p : def;
}

std::vector<float> Attrs::floats(const std::string& name,
                                 std::vector<float> def) const {
  auto* p = get<std::vector<float>>(map_, name, "floats");
  return p ? *p : def;
}

const HostTensor* Attrs::tensor(const std::string& name) const {
  return get<HostTensor>(map_, name, "tensor");
}

}  // namespace shoal
