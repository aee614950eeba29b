// Operator attributes: shared by the IR (compile time) and program
// instructions (run time), so kernels read them the same way in both.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "core/tensor.hpp"

namespace shoal {

using AttrValue = std::variant<int64_t, float, std::string, std::vector<int64_t>,
                               std::vector<float>, HostTensor>;

class Attrs {
 public:
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  void set(const std::string& name, AttrValue v) { map_[name] = std::move(v); }
  void erase(const std::string& name) { map_.erase(name); }

  /// Typed getters: the default is returned when the attribute is absent;
  /// a present attribute of another type raises Error(invalid_argument).
  int64_t i(const std::string& name, int64_t def) const;
  float f(const std::string& name, float def) const;
  std::string s(const std::string& name, const std::string& def) const;
  std::vector<int64_t> ints(const std::string& name,
                            std::vector<int64_t> def = {}) const;
  std::vector<float> floats(const std::string& name,
                            std::vector<float> def = {}) const;
  const HostTensor* tensor(const std::string& name) const;

  const std::map<std::string, AttrValue>& items() const { return map_; }
  bool operator==(const Attrs& o) const { return map_ == o.map_; }

 private:
  std::map<std::string, AttrValue> map_;
};

}  // namespace shoal
