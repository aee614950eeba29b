// Tensor operators that make or pass values: Identity, Dropout, Constant,
// ConstantOfShape, Shape, Size, Range. register_tensor also pulls in the
// shape family (tensor_shape.cpp) and the indexing family (tensor_index.cpp).
// Tensor ops move bytes, so they take every dtype: they also fold int64
// shape computations at compile time.
#include "reference/ref_util.hpp"

namespace shoal::ops {
namespace {

using ref::fail;
using ref::kTensorDTypes;
using ref::make_spec;

// --- Identity, Dropout --------------------------------------------------------

void add_identity(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Identity", 1, 1, 1, "y = x",
      [](const Attrs&, std::span<const ValueInfo> in) {
        const ValueInfo& x = ref::req_input(in, 0, "Identity", "input");
        ref::check_defined("Identity", x.dtype);
        return std::vector<TypeShape>{{x.dtype, x.shape}};
      },
      [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        ref::copy_bytes(in[0], out[0]);
      },
      kTensorDTypes));
  t.back().view = true;
}

/// Inference-mode Dropout: y = x; the optional mask output is all true.
void add_dropout(std::vector<OpSpec>& t) {
  OpSpec s = make_spec(
      "Dropout", 1, 1, 3,
      "inference: y = x, optional mask output all true; training_mode only at ratio 0 "
      "(a random mask cannot match another runtime's random numbers: outside the claim)",
      [](const Attrs&, std::span<const ValueInfo> in) {
        const ValueInfo& x = ref::req_input(in, 0, "Dropout", "data");
        ref::check_defined("Dropout", x.dtype);
        if (const ValueInfo* tm = ref::opt_input(in, 2)) {
          if (!tm->constant)
            fail(ErrorKind::unsupported,
                 "Dropout: input 'training_mode' must be a compile-time constant");
          // Training mode drops nothing at ratio 0 (Swin's attention dropout,
          // exported with training left on): y = x, as in inference.
          const ValueInfo* ratio = ref::opt_input(in, 1);
          const bool zero_ratio =
              ratio && ratio->constant && ratio->constant->numel() == 1 &&
              ratio->constant->float_at(0) == 0.0;
          if (tm->constant->numel() > 0 && tm->constant->int_at(0) != 0 && !zero_ratio)
            fail(ErrorKind::unsupported,
                 "Dropout: training_mode = true is not supported (inference only), "
                 "except with ratio 0");
        }
        return std::vector<TypeShape>{{x.dtype, x.shape}, {DType::boolean, x.shape}};
      },
      [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        ref::copy_bytes(in[0], out[0]);
        if (out.size() > 1 && out[1].present()) std::memset(out[1].data, 1, out[1].bytes());
      },
      kTensorDTypes);
  s.num_outputs = 2;  // the mask (output 1) is optional
  s.dtypes.push_back(DType::boolean);  // the mask's type at run time
  s.view = true;
  t.push_back(std::move(s));
}

// --- Constant, ConstantOfShape ------------------------------------------------

/// A tensor of dtype t holding `values`: 1-D, or a scalar (one value).
template <class T>
HostTensor host_values(DType t, const std::vector<T>& values, bool scalar) {
  HostTensor v(t, scalar ? Shape{} : Shape{int64_t(values.size())});
  std::copy(values.begin(), values.end(), v.as<T>());
  return v;
}

/// The value of a Constant node, from whichever value attribute it has.
HostTensor constant_value(const Attrs& a) {
  for (const char* bad : {"sparse_value", "value_string", "value_strings"})
    if (a.has(bad))
      fail(ErrorKind::unsupported,
           std::string("Constant: attribute '") + bad + "' is not supported");
  if (const HostTensor* v = a.tensor("value")) return *v;
  if (a.has("value_float")) return host_values<float>(DType::f32, {a.f("value_float", 0)}, true);
  if (a.has("value_floats")) return host_values(DType::f32, a.floats("value_floats"), false);
  if (a.has("value_int")) return host_values<int64_t>(DType::i64, {a.i("value_int", 0)}, true);
  if (a.has("value_ints")) return host_values(DType::i64, a.ints("value_ints"), false);
  fail(ErrorKind::invalid_argument,
       "Constant: needs one of the attributes value, value_float, value_floats, "
       "value_int, value_ints");
}

void add_constant(std::vector<OpSpec>& t) {
  // No inputs, so the compiler always folds it by running the reference.
  t.push_back(make_spec(
      "Constant", 1, 0, 0, "y = the value attribute (value, value_float(s), value_int(s))",
      [](const Attrs& a, std::span<const ValueInfo>) {
        HostTensor v = constant_value(a);
        ref::check_defined("Constant", v.dtype());
        return std::vector<TypeShape>{{v.dtype(), v.shape()}};
      },
      [](const Attrs& a, std::span<const TensorRef>, std::span<const TensorRef> out) {
        HostTensor v = constant_value(a);
        if (v.bytes() != out[0].bytes())
          fail(ErrorKind::internal, "Constant: output buffer does not match the value");
        if (v.bytes() > 0) std::memcpy(out[0].data, v.data(), v.bytes());
      },
      kTensorDTypes));
}

/// ConstantOfShape's fill value: attribute 'value' (one element), or f32 0.
HostTensor fill_value(const Attrs& a) {
  if (const HostTensor* v = a.tensor("value")) {
    if (v->numel() != 1)
      fail(ErrorKind::invalid_argument,
           "ConstantOfShape: attribute 'value' must have one element, got shape " +
               shape_str(v->shape()));
    return *v;
  }
  return HostTensor(DType::f32, {1});
}

void add_constant_of_shape(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "ConstantOfShape", 9, 1, 1, "y of shape 'input' filled with attribute 'value'",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& s = ref::req_input(in, 0, "ConstantOfShape", "input");
        if (s.shape.size() != 1)
          fail(ErrorKind::invalid_argument,
               "ConstantOfShape: input must be 1-D, got shape " + shape_str(s.shape));
        Shape shape = ref::const_ints(s, "ConstantOfShape", "input");
        for (int64_t d : shape)
          if (d < 0)
            fail(ErrorKind::invalid_argument,
                 "ConstantOfShape: negative dimension in shape " + shape_str(shape));
        HostTensor v = fill_value(a);
        ref::check_defined("ConstantOfShape", v.dtype());
        return std::vector<TypeShape>{{v.dtype(), shape}};
      },
      [](const Attrs& a, std::span<const TensorRef>, std::span<const TensorRef> out) {
        HostTensor v = fill_value(a);
        auto* o = out[0].as<uint8_t>();
        for (int64_t k = 0, n = out[0].numel(); k < n; ++k)
          std::memcpy(o + size_t(k) * v.bytes(), v.data(), v.bytes());
      },
      kTensorDTypes));
}

// --- Shape, Size --------------------------------------------------------------

/// Shape's [start, end) over the dims (opset 15), clamped as ONNX says.
std::pair<int64_t, int64_t> shape_range(const Attrs& a, int64_t rank) {
  auto clamp = [rank](int64_t v) {
    if (v < 0) v += rank;
    return std::min(std::max<int64_t>(v, 0), rank);
  };
  int64_t start = clamp(a.i("start", 0));
  int64_t end = clamp(a.i("end", rank));
  return {start, std::max(start, end)};
}

void add_shape_size(std::vector<OpSpec>& t) {
  OpSpec shape = make_spec(
      "Shape", 1, 1, 1, "y = the input's shape as int64 (opset 15 start/end); folded",
      [](const Attrs& a, std::span<const ValueInfo> in) {
        const ValueInfo& x = ref::req_input(in, 0, "Shape", "data");
        auto [s, e] = shape_range(a, int64_t(x.shape.size()));
        return std::vector<TypeShape>{{DType::i64, {e - s}}};
      },
      // Reads only the input's shape: its data may be absent at compile time.
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        auto [s, e] = shape_range(a, int64_t(in[0].shape.size()));
        for (int64_t i = s; i < e; ++i) out[0].as<int64_t>()[i - s] = in[0].shape[size_t(i)];
      },
      kTensorDTypes);
  shape.runtime = false;
  t.push_back(std::move(shape));

  OpSpec size = make_spec(
      "Size", 1, 1, 1, "y = the input's element count as an int64 scalar; folded",
      [](const Attrs&, std::span<const ValueInfo> in) {
        ref::req_input(in, 0, "Size", "data");
        return std::vector<TypeShape>{{DType::i64, {}}};
      },
      [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        out[0].as<int64_t>()[0] = in[0].numel();
      },
      kTensorDTypes);
  size.runtime = false;
  t.push_back(std::move(size));
}

// --- Range --------------------------------------------------------------------

/// Number of elements of Range(start, limit, delta):
/// max(ceil((limit - start) / delta), 0).
int64_t range_count(const TensorRef& s, const TensorRef& l, const TensorRef& d) {
  int64_t n = 0;
  ref::visit_dtype(s.dtype, "Range", [&](auto z) {
    using T = decltype(z);
    T start = s.as<const T>()[0], limit = l.as<const T>()[0], delta = d.as<const T>()[0];
    if (delta == T(0)) fail(ErrorKind::invalid_argument, "Range: delta must not be 0");
    if constexpr (std::is_floating_point_v<T>) {
      double c = std::ceil((double(limit) - double(start)) / double(delta));
      if (!(c < 1e12)) {
        if (std::isnan(c)) fail(ErrorKind::invalid_argument, "Range: NaN bound or delta");
        fail(ErrorKind::invalid_argument, "Range: too many elements");
      }
      n = c > 0 ? int64_t(c) : 0;
    } else {
      // int64 arithmetic in 128 bits so that extreme bounds cannot overflow.
      __int128 diff = __int128(limit) - __int128(start), dl = delta;
      __int128 c = diff / dl + ((diff % dl != 0 && ((diff > 0) == (dl > 0))) ? 1 : 0);
      if (c > __int128(1) << 40) fail(ErrorKind::invalid_argument, "Range: too many elements");
      n = c > 0 ? int64_t(c) : 0;
    }
  });
  return n;
}

void add_range(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Range", 11, 3, 3, "y = [start, start + delta, ...) up to limit (exclusive)",
      [](const Attrs&, std::span<const ValueInfo> in) {
        const char* names[] = {"start", "limit", "delta"};
        for (size_t i = 0; i < 3; ++i) {
          const ValueInfo& v = ref::req_input(in, i, "Range", names[i]);
          ref::check_dtype("Range", std::string("input '") + names[i] + "'", v.dtype,
                           {DType::f32, DType::f64, DType::i32, DType::i64});
          if (v.dtype != in[0].dtype)
            fail(ErrorKind::invalid_argument, std::string("Range: input '") + names[i] +
                                                  "' has element type " + dtype_name(v.dtype) +
                                                  " but 'start' has " + dtype_name(in[0].dtype));
          if (shape_numel(v.shape) != 1)
            fail(ErrorKind::invalid_argument, std::string("Range: input '") + names[i] +
                                                  "' must be a scalar, got shape " +
                                                  shape_str(v.shape));
          if (!v.constant)
            fail(ErrorKind::unsupported, std::string("Range: input '") + names[i] +
                                             "' must be a compile-time constant (it "
                                             "determines the output shape)");
        }
        int64_t n =
            range_count(in[0].constant->ref(), in[1].constant->ref(), in[2].constant->ref());
        return std::vector<TypeShape>{{in[0].dtype, {n}}};
      },
      [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        ref::visit_dtype(out[0].dtype, "Range", [&](auto z) {
          using T = decltype(z);
          T start = in[0].as<const T>()[0], delta = in[2].as<const T>()[0];
          for (int64_t i = 0, n = out[0].numel(); i < n; ++i) {
            if constexpr (std::is_integral_v<T>) {
              // Each element fits T but i * delta alone may not: wrap in the
              // unsigned type, whose modular sum is the exact element.
              using U = std::make_unsigned_t<T>;
              out[0].as<T>()[i] = T(U(start) + U(i) * U(delta));
            } else {
              out[0].as<T>()[i] = T(start + T(i) * delta);
            }
          }
        });
      },
      kTensorDTypes));
}

}  // namespace

void register_tensor(std::vector<OpSpec>& t) {
  add_identity(t);
  add_dropout(t);
  add_constant(t);
  add_constant_of_shape(t);
  add_shape_size(t);
  add_range(t);
  ref::register_tensor_shape(t);
  ref::register_tensor_index(t);
}

}  // namespace shoal::ops
