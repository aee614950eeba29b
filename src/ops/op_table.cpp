#include "ops/op_table.hpp"

#include <algorithm>

namespace shoal::ops {
namespace {

/// An op whose every output is empty has nothing to compute, and its kernel
/// is not called: the other dims of an empty tensor may be huge (2^40), too
/// many for the per-dim index tables some kernels build (Pad, Resize: fuzz
/// timeouts in CI when a constant such node was folded).
void skip_empty_outputs(OpSpec& spec) {
  spec.reference = [kernel = std::move(spec.reference)](const Attrs& a,
                                                        std::span<const TensorRef> in,
                                                        std::span<const TensorRef> out) {
    const bool empty = !out.empty() && std::all_of(out.begin(), out.end(), [](const TensorRef& t) {
      return t.numel() == 0;
    });
    if (!empty) kernel(a, in, out);
  };
}

}  // namespace

const std::vector<OpSpec>& all_ops() {
  static const std::vector<OpSpec> table = [] {
    std::vector<OpSpec> t;
    register_elementwise(t);
    register_nn(t);
    register_tensor(t);
    register_quantize(t);
    assign_batch_rules(t);
    assign_layout_facts(t);
    for (OpSpec& spec : t) skip_empty_outputs(spec);
    std::sort(t.begin(), t.end(), [](const OpSpec& a, const OpSpec& b) { return a.name < b.name; });
    return t;
  }();
  return table;
}

const OpSpec* find_op(std::string_view name) {
  const auto& t = all_ops();
  auto it = std::lower_bound(t.begin(), t.end(), name,
                             [](const OpSpec& a, std::string_view n) { return a.name < n; });
  return it != t.end() && it->name == name ? &*it : nullptr;
}

}  // namespace shoal::ops
