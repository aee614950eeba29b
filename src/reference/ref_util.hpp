// Private helpers of the reference operators: error raising, optional
// operands, broadcasting, axes, dtype dispatch, op-table entries.
// Header-only; included by src/reference/*.cpp only (the nn family through
// nn_internal.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::ref {

// The op-table types every reference operator names.
using ops::InferFn;
using ops::OpSpec;
using ops::RefKernel;
using ops::TypeShape;
using ops::ValueInfo;

/// An op-table entry with one output. `dtypes`: the runtime dtypes.
inline OpSpec make_spec(std::string name, int min_opset, int min_in, int max_in,
                        std::string summary, InferFn infer, RefKernel kernel,
                        std::vector<DType> dtypes = {DType::f32}) {
  OpSpec s;
  s.name = std::move(name);
  s.min_opset = min_opset;
  s.min_inputs = min_in;
  s.max_inputs = max_in;
  s.infer = std::move(infer);
  s.reference = std::move(kernel);
  s.summary = std::move(summary);
  s.dtypes = std::move(dtypes);
  return s;
}

/// Runtime dtypes of the tensor ops (tensor_{ops,shape,index}.cpp); shape
/// inference and compile-time folding take every dtype.
inline const std::vector<DType> kTensorDTypes = {DType::f32, DType::i64};

[[noreturn]] inline void fail(ErrorKind kind, const std::string& message) {
  throw Error(kind, message);
}

/// Optional operand i, or nullptr when the node lacks it or it is absent.
inline const ops::ValueInfo* opt_input(std::span<const ops::ValueInfo> in, size_t i) {
  return i < in.size() && in[i].present ? &in[i] : nullptr;
}
inline const TensorRef* opt_input(std::span<const TensorRef> in, size_t i) {
  return i < in.size() && in[i].present() ? &in[i] : nullptr;
}

/// Required operand i; throws invalid_argument naming the op and operand.
inline const ops::ValueInfo& req_input(std::span<const ops::ValueInfo> in, size_t i,
                                       const std::string& op, const std::string& what) {
  if (auto* v = opt_input(in, i)) return *v;
  fail(ErrorKind::invalid_argument,
       op + ": missing input " + std::to_string(i) + " ('" + what + "')");
}

/// Row-major element strides of a shape.
inline Shape strides_of(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

/// numpy multidirectional broadcasting of two shapes.
inline Shape broadcast_shape(const std::string& op, const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(ErrorKind::invalid_argument, op + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                                            " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

/// For each element of `out` (row-major), the linear index of the element
/// of a tensor of shape `in` that broadcasts onto it. `in` must broadcast to
/// `out` (checked by the caller's shape inference).
inline std::vector<int64_t> broadcast_index(const Shape& in, const Shape& out) {
  size_t r = out.size(), lead = r - in.size();
  Shape in_st = strides_of(in);
  Shape st(r, 0);  // stride in `in` per output dim; 0 where broadcast
  for (size_t i = lead; i < r; ++i) st[i] = in[i - lead] == 1 ? 0 : in_st[i - lead];
  int64_t n = shape_numel(out);
  std::vector<int64_t> idx(size_t(std::max<int64_t>(n, 0)));
  Shape pos(r, 0);
  int64_t off = 0;
  for (int64_t k = 0; k < n; ++k) {
    idx[size_t(k)] = off;
    for (size_t d = r; d-- > 0;) {  // odometer increment
      ++pos[d];
      off += st[d];
      if (pos[d] < out[d]) break;
      off -= st[d] * pos[d];
      pos[d] = 0;
    }
  }
  return idx;
}

/// Normalizes axis into [0, rank); throws invalid_argument when out of range.
inline int64_t normalize_axis(const std::string& op, int64_t axis, int64_t rank,
                              const std::string& what = "axis") {
  if (axis < -rank || axis >= rank)
    fail(ErrorKind::invalid_argument, op + ": " + what + " " + std::to_string(axis) +
                                          " out of range for rank " + std::to_string(rank) +
                                          " (valid: [" + std::to_string(-rank) + ", " +
                                          std::to_string(rank - 1) + "])");
  return axis < 0 ? axis + rank : axis;
}

inline bool is_int_dtype(DType t) {
  return t == DType::i32 || t == DType::i64 || t == DType::i8 || t == DType::u8;
}

/// Reads an integer tensor (any integer dtype) into int64s.
inline std::vector<int64_t> read_ints(const TensorRef& t, const std::string& op,
                                      const std::string& what) {
  std::vector<int64_t> v(size_t(t.numel()));
  for (size_t k = 0; k < v.size(); ++k) {
    switch (t.dtype) {
      case DType::i64:
        v[k] = t.as<const int64_t>()[k];
        break;
      case DType::i32:
        v[k] = t.as<const int32_t>()[k];
        break;
      case DType::i8:
        v[k] = t.as<const int8_t>()[k];
        break;
      case DType::u8:
        v[k] = t.as<const uint8_t>()[k];
        break;
      default:
        fail(ErrorKind::invalid_argument,
             op + ": input '" + what + "' must be an integer tensor, got " + dtype_name(t.dtype));
    }
  }
  return v;
}

/// The value of an integer input that shape inference needs; throws
/// unsupported when it is not a known constant.
inline std::vector<int64_t> const_ints(const ops::ValueInfo& v, const std::string& op,
                                       const std::string& what) {
  if (!v.constant)
    fail(ErrorKind::unsupported, op + ": input '" + what +
                                     "' must be a compile-time constant (its value determines the "
                                     "output shape)");
  return read_ints(v.constant->ref(), op, what);
}

/// Element value k of a numeric tensor as double.
inline double read_double(const TensorRef& t, int64_t k) {
  switch (t.dtype) {
    case DType::f32:
      return t.as<const float>()[k];
    case DType::f64:
      return t.as<const double>()[k];
    case DType::i64:
      return double(t.as<const int64_t>()[k]);
    case DType::i32:
      return t.as<const int32_t>()[k];
    case DType::i8:
      return t.as<const int8_t>()[k];
    case DType::u8:
    case DType::boolean:
      return t.as<const uint8_t>()[k];
    default:
      return 0;
  }
}

/// Converts like a C cast, but without undefined behaviour: NaN becomes 0
/// and out-of-range floats saturate when the target is an integer; any
/// nonzero value becomes true when the target is bool (pass is_bool).
template <class D, class S>
D convert(S s, bool to_bool = false) {
  if (to_bool) return D(s != S(0) ? 1 : 0);
  if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
    if (std::isnan(s)) return D(0);
    if (s <= S(std::numeric_limits<D>::lowest())) return std::numeric_limits<D>::lowest();
    if (s >= S(std::numeric_limits<D>::max())) return std::numeric_limits<D>::max();
    return D(s);
  } else {
    return D(s);
  }
}

/// Calls f(T{}) with the C++ type of a dtype. bool maps to uint8_t holding
/// 0/1 (callers that care test the dtype). undefined -> unsupported.
template <class F>
void visit_dtype(DType t, const std::string& op, F&& f) {
  switch (t) {
    case DType::f32:
      f(float{});
      return;
    case DType::f64:
      f(double{});
      return;
    case DType::i64:
      f(int64_t{});
      return;
    case DType::i32:
      f(int32_t{});
      return;
    case DType::i8:
      f(int8_t{});
      return;
    case DType::u8:
    case DType::boolean:
      f(uint8_t{});
      return;
    default:
      fail(ErrorKind::unsupported, op + ": unsupported element type " + dtype_name(t));
  }
}

/// Throws unsupported unless t is in `allowed`.
inline void check_dtype(const std::string& op, const std::string& what, DType t,
                        const std::vector<DType>& allowed) {
  for (DType a : allowed)
    if (a == t) return;
  std::string names;
  for (DType a : allowed) names += std::string(names.empty() ? "" : ", ") + dtype_name(a);
  fail(ErrorKind::unsupported,
       op + ": " + what + " has element type " + dtype_name(t) + "; supported: " + names);
}

/// Throws unless t is a defined dtype (the byte-moving tensor ops take any).
inline void check_defined(const std::string& op, DType t) {
  if (t == DType::undefined || dtype_size(t) == 0)
    fail(ErrorKind::unsupported, op + ": input of undefined element type");
}

/// Input 0 ('data') of a tensor op: required, of any defined dtype.
inline const ValueInfo& data_input(std::span<const ValueInfo> in, const std::string& op) {
  const ValueInfo& x = req_input(in, 0, op, "data");
  check_defined(op, x.dtype);
  return x;
}

/// Copies all of `in` into `out` (same byte size), tolerating aliasing.
inline void copy_bytes(const TensorRef& in, const TensorRef& out) {
  if (in.data != out.data && out.bytes() > 0) std::memmove(out.data, in.data, out.bytes());
}

/// Calls f(k, pos) for each element k of shape s in row-major order, pos
/// being its multi-index.
template <class F>
void for_each_pos(const Shape& s, F&& f) {
  int64_t n = shape_numel(s);
  Shape pos(s.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    f(k, static_cast<const Shape&>(pos));
    for (size_t d = s.size(); d-- > 0;) {
      if (++pos[d] < s[d]) break;
      pos[d] = 0;
    }
  }
}

/// out element k = in element idx[k], for any dtype (copies bytes).
inline void gather_elements(const TensorRef& in, const TensorRef& out,
                            const std::vector<int64_t>& idx) {
  size_t es = dtype_size(out.dtype);
  const auto* src = in.as<const uint8_t>();
  auto* dst = out.as<uint8_t>();
  for (size_t k = 0; k < idx.size(); ++k) std::memcpy(dst + k * es, src + size_t(idx[k]) * es, es);
}

/// out element k = the element of `in` at linear offset
/// sum over d of term(d, pos[d]), pos being element k's multi-index.
template <class Term>
void gather_per_dim(const TensorRef& in, const TensorRef& out, Term&& term) {
  std::vector<int64_t> idx(size_t(out.numel()));
  for_each_pos(out.shape, [&](int64_t k, const Shape& pos) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += term(d, pos[d]);
    idx[size_t(k)] = off;
  });
  gather_elements(in, out, idx);
}

// The tensor-op families register from their own files (tensor_ops.cpp calls
// them from ops::register_tensor).
void register_tensor_shape(std::vector<ops::OpSpec>& table);        // tensor_shape.cpp
void register_tensor_index(std::vector<ops::OpSpec>& table);        // tensor_index.cpp
void register_elementwise_binary(std::vector<ops::OpSpec>& table);  // elementwise_binary.cpp

}  // namespace shoal::ref
