// Tensor operators that change a tensor's shape: Reshape, Flatten, Squeeze,
// Unsqueeze (bytes unchanged), Transpose and Expand (bytes moved). Every
// dtype is accepted.
#include <optional>
#include <set>

#include "reference/ref_util.hpp"

namespace shoal::ref {
namespace {

/// The run-time dtypes of the ops that only relabel the shape: they run no
/// kernel where the memory plan gives them their input's buffer, so the
/// 8-bit tensors of int8 layers too (a Flatten before a quantized classifier).
const std::vector<DType> kViewDTypes = {DType::f32, DType::i64, DType::u8, DType::i8};

/// Kernel of the ops that only relabel the shape.
void copy_kernel(const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
  copy_bytes(in[0], out[0]);
}

/// An int list that opset N moved from an attribute to input `input`: the
/// attribute when present, else the (constant) input; nullopt when neither.
std::optional<std::vector<int64_t>> attr_or_input(const Attrs& a, std::span<const ValueInfo> in,
                                                  const std::string& op, const std::string& name,
                                                  size_t input) {
  if (a.has(name)) return a.ints(name);
  if (const ValueInfo* v = opt_input(in, input)) return const_ints(*v, op, name);
  return std::nullopt;
}

// --- Reshape ------------------------------------------------------------------

/// ONNX Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred.
Shape reshape_target(const Shape& in, const std::vector<int64_t>& spec, bool allowzero) {
  const std::string what = "Reshape: cannot reshape " + shape_str(in) + " to " + shape_str(spec);
  Shape out(spec.size());
  int infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == -1) {
      if (infer_at >= 0) fail(ErrorKind::invalid_argument, what + ": more than one -1");
      infer_at = int(i);
      continue;
    }
    if (d < -1) fail(ErrorKind::invalid_argument, what + ": negative dimension");
    if (d == 0 && !allowzero) {
      if (i >= in.size())
        fail(ErrorKind::invalid_argument,
             what + ": 0 at position " + std::to_string(i) + " has no input dim to copy");
      d = in[i];
    }
    out[i] = d;
    if (__builtin_mul_overflow(known, d, &known))
      fail(ErrorKind::invalid_argument, what + ": the element count overflows");
  }
  int64_t n = shape_numel(in);
  if (infer_at >= 0) {
    if (allowzero && known == 0)
      fail(ErrorKind::invalid_argument, what + ": -1 together with a 0 dim (allowzero)");
    if (known == 0 || n % known != 0)
      fail(ErrorKind::invalid_argument,
           what + ": " + std::to_string(n) + " elements do not divide into the given dims");
    out[size_t(infer_at)] = n / known;
  } else if (known != n) {
    fail(ErrorKind::invalid_argument, what + ": element counts " + std::to_string(n) + " and " +
                                          std::to_string(known) + " differ");
  }
  return out;
}

void add_reshape(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Reshape", 1, 1, 2, "y = x with a new shape (0 copies a dim, -1 is inferred)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Reshape");
        auto target = attr_or_input(a, in, "Reshape", "shape", 1);
        if (!target) fail(ErrorKind::invalid_argument, "Reshape: missing input 'shape'");
        if (opt_input(in, 1) && !a.has("shape") && in[1].shape.size() != 1)
          fail(ErrorKind::invalid_argument,
               "Reshape: input 'shape' must be 1-D, got shape " + shape_str(in[1].shape));
        return std::vector<TypeShape>{
            {x.dtype, reshape_target(x.shape, *target, a.i("allowzero", 0) != 0)}};
      },
      copy_kernel, kViewDTypes));
  t.back().view = true;
}

// --- Flatten ------------------------------------------------------------------

void add_flatten(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Flatten", 1, 1, 1, "y = x as 2-D [prod(dims < axis), prod(dims >= axis)]",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Flatten");
        int64_t r = int64_t(x.shape.size());
        int64_t axis = a.i("axis", 1);
        if (axis < -r || axis > r)
          fail(ErrorKind::invalid_argument, "Flatten: axis " + std::to_string(axis) +
                                                " out of range for rank " + std::to_string(r) +
                                                " (valid: [" + std::to_string(-r) + ", " +
                                                std::to_string(r) + "])");
        if (axis < 0) axis += r;
        int64_t outer = 1, inner = 1;
        for (int64_t i = 0; i < r; ++i) (i < axis ? outer : inner) *= x.shape[size_t(i)];
        return std::vector<TypeShape>{{x.dtype, {outer, inner}}};
      },
      copy_kernel, kViewDTypes));
  t.back().view = true;
}

// --- Squeeze, Unsqueeze ---------------------------------------------------------

void add_squeeze(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Squeeze", 1, 1, 2, "removes the size-1 dims listed in axes (all when absent)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Squeeze");
        int64_t r = int64_t(x.shape.size());
        auto axes = attr_or_input(a, in, "Squeeze", "axes", 1);
        std::set<int64_t> drop;
        if (axes) {
          for (int64_t ax : *axes) {
            int64_t d = normalize_axis("Squeeze", ax, r, "axes entry");
            if (x.shape[size_t(d)] != 1)
              fail(ErrorKind::invalid_argument,
                   "Squeeze: cannot squeeze axis " + std::to_string(ax) + " of size " +
                       std::to_string(x.shape[size_t(d)]) + " (shape " + shape_str(x.shape) + ")");
            drop.insert(d);
          }
        } else {
          for (int64_t d = 0; d < r; ++d)
            if (x.shape[size_t(d)] == 1) drop.insert(d);
        }
        Shape out;
        for (int64_t d = 0; d < r; ++d)
          if (!drop.count(d)) out.push_back(x.shape[size_t(d)]);
        return std::vector<TypeShape>{{x.dtype, out}};
      },
      copy_kernel, kViewDTypes));
  t.back().view = true;
}

void add_unsqueeze(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Unsqueeze", 1, 1, 2, "inserts size-1 dims at axes (positions in the output)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Unsqueeze");
        auto axes = attr_or_input(a, in, "Unsqueeze", "axes", 1);
        if (!axes) fail(ErrorKind::invalid_argument, "Unsqueeze: missing axes");
        int64_t r = int64_t(x.shape.size() + axes->size());
        std::set<int64_t> ins;
        for (int64_t ax : *axes)
          if (!ins.insert(normalize_axis("Unsqueeze", ax, r, "axes entry")).second)
            fail(ErrorKind::invalid_argument,
                 "Unsqueeze: axis " + std::to_string(ax) + " given twice");
        Shape out;
        size_t next = 0;
        for (int64_t d = 0; d < r; ++d) out.push_back(ins.count(d) ? 1 : x.shape[next++]);
        return std::vector<TypeShape>{{x.dtype, out}};
      },
      copy_kernel, kViewDTypes));
  t.back().view = true;
}

// --- Transpose -----------------------------------------------------------------

std::vector<int64_t> transpose_perm(const Attrs& a, size_t rank) {
  std::vector<int64_t> perm = a.ints("perm");
  if (!a.has("perm"))
    for (size_t i = rank; i-- > 0;) perm.push_back(int64_t(i));
  return perm;
}

void add_transpose(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Transpose", 1, 1, 1, "permutes dims by perm (default: reversed)",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Transpose");
        std::vector<int64_t> perm = transpose_perm(a, x.shape.size());
        std::string bad = "Transpose: perm " + shape_str(perm) + " is not a permutation of " +
                          std::to_string(x.shape.size()) + " dims (input shape " +
                          shape_str(x.shape) + ")";
        if (perm.size() != x.shape.size()) fail(ErrorKind::invalid_argument, bad);
        std::vector<bool> seen(perm.size(), false);
        Shape out;
        for (int64_t p : perm) {
          if (p < 0 || p >= int64_t(perm.size()) || seen[size_t(p)])
            fail(ErrorKind::invalid_argument, bad);
          seen[size_t(p)] = true;
          out.push_back(x.shape[size_t(p)]);
        }
        return std::vector<TypeShape>{{x.dtype, out}};
      },
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        std::vector<int64_t> perm = transpose_perm(a, in[0].shape.size());
        Shape in_st = strides_of(in[0].shape);
        gather_per_dim(in[0], out[0],
                       [&](size_t d, int64_t p) { return p * in_st[size_t(perm[d])]; });
      },
      kTensorDTypes));
}

// --- Expand ---------------------------------------------------------------------

void add_expand(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Expand", 8, 2, 2, "broadcasts x with the shape given by input 'shape'",
      [](const Attrs&, std::span<const ValueInfo> in) {
        const ValueInfo& x = data_input(in, "Expand");
        const ValueInfo& s = req_input(in, 1, "Expand", "shape");
        if (s.shape.size() != 1)
          fail(ErrorKind::invalid_argument,
               "Expand: input 'shape' must be 1-D, got shape " + shape_str(s.shape));
        Shape target = const_ints(s, "Expand", "shape");
        for (int64_t d : target)
          if (d < 0)
            fail(ErrorKind::invalid_argument,
                 "Expand: negative dimension in shape " + shape_str(target));
        return std::vector<TypeShape>{{x.dtype, broadcast_shape("Expand", x.shape, target)}};
      },
      [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        gather_elements(in[0], out[0], broadcast_index(in[0].shape, out[0].shape));
      },
      kTensorDTypes));
}

}  // namespace

void register_tensor_shape(std::vector<OpSpec>& t) {
  add_reshape(t);
  add_flatten(t);
  add_squeeze(t);
  add_unsqueeze(t);
  add_transpose(t);
  add_expand(t);
}

}  // namespace shoal::ref
