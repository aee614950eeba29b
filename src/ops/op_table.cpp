#include "ops/op_table.hpp"

#include <algorithm>

namespace shoal::ops {

const std::vector<OpSpec>& all_ops() {
  static const std::vector<OpSpec> table = [] {
    std::vector<OpSpec> t;
    register_elementwise(t);
    register_nn(t);
    register_tensor(t);
    assign_batch_rules(t);
    std::sort(t.begin(), t.end(),
              [](const OpSpec& a, const OpSpec& b) { return a.name < b.name; });
    return t;
  }();
  return table;
}

const OpSpec* find_op(std::string_view name) {
  const auto& t = all_ops();
  auto it = std::lower_bound(
      t.begin(), t.end(), name,
      [](const OpSpec& a, std::string_view n) { return a.name < n; });
  return it != t.end() && it->name == name ? &*it : nullptr;
}

}  // namespace shoal::ops
