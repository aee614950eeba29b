#include "backends/cpu/native/nest.hpp"

#include <numeric>

namespace shoal::cpu::native {

int64_t Nest::rows() const {
  int64_t r = 1;
  for (int i = 0; i + 1 < dims; ++i) r *= extent[size_t(i)];
  return r;
}

std::vector<int64_t> layout_strides(const program::TensorDesc& t) {
  const Shape& s = t.shape;
  const size_t r = s.size();
  std::vector<int64_t> st(r, 1);
  if (t.layout == program::Layout::channels_last && r >= 3) {
    // Memory order N, spatial..., C.
    int64_t acc = 1;
    st[1] = acc;
    acc *= s[1];
    for (size_t d = r; d-- > 2;) {
      st[d] = acc;
      acc *= s[d];
    }
    st[0] = acc;
    return st;
  }
  for (size_t d = r; d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

bool broadcast_strides(const program::TensorDesc& t, const Shape& space,
                       std::vector<int64_t>& strides) {
  if (t.shape.size() > space.size()) return false;
  const std::vector<int64_t> own = layout_strides(t);
  const size_t lead = space.size() - t.shape.size();
  strides.assign(space.size(), 0);
  for (size_t d = 0; d < t.shape.size(); ++d) {
    const int64_t dim = t.shape[d], want = space[lead + d];
    if (dim == want)
      strides[lead + d] = dim == 1 ? 0 : own[d];
    else if (dim != 1)
      return false;
  }
  return true;
}

Nest make_nest(const Shape& space, const std::vector<std::vector<int64_t>>& strides, int order_by) {
  Nest n;
  n.operands = int(strides.size());
  // Dims in the order-by operand's memory order (largest stride first); a dim
  // it does not walk (stride 0) keeps its logical place before the others'.
  std::vector<size_t> order(space.size());
  std::iota(order.begin(), order.end(), size_t(0));
  const auto& key = strides[size_t(order_by)];
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t ka = key[a] == 0 ? INT64_MAX : key[a], kb = key[b] == 0 ? INT64_MAX : key[b];
    return ka > kb;
  });
  std::vector<size_t> kept;
  for (size_t d : order)
    if (space[d] != 1) kept.push_back(d);
  // Merge neighbours that stay contiguous for every operand.
  std::vector<int64_t> ext;
  std::vector<std::vector<int64_t>> st(strides.size());
  for (size_t d : kept) {
    bool merge = !ext.empty();
    for (size_t o = 0; merge && o < strides.size(); ++o)
      merge = st[o].back() == strides[o][d] * space[d];
    if (merge) {
      ext.back() *= space[d];
      for (size_t o = 0; o < strides.size(); ++o) st[o].back() = strides[o][d];
    } else {
      ext.push_back(space[d]);
      for (size_t o = 0; o < strides.size(); ++o) st[o].push_back(strides[o][d]);
    }
  }
  if (ext.empty()) {  // a single element
    ext.push_back(1);
    for (auto& s : st) s.push_back(0);
  }
  // More dims than a nest holds even after merging: dims = 0 tells the
  // builder to decline (the reference kernel takes the op).
  n.dims = int(ext.size());
  if (n.dims > kMaxDims) {
    n.dims = 0;
    return n;
  }
  for (size_t i = 0; i < ext.size(); ++i) {
    n.extent[i] = ext[i];
    for (size_t o = 0; o < strides.size(); ++o) n.stride[o][i] = st[o][i];
  }
  return n;
}

}  // namespace shoal::cpu::native
