// Binary and variadic elementwise operators with numpy multidirectional
// broadcasting: arithmetic (Add..Pow, Max, Min, Sum, Mean), comparisons
// (Equal, Less, Greater -> bool) and Where.
#include <cmath>

#include "reference/ref_util.hpp"

namespace shoal::ref {
namespace {

const std::vector<DType> kArith = {DType::f32, DType::f64, DType::i32, DType::i64};
const std::vector<DType> kCompare = {DType::f32, DType::f64, DType::i32,
                                     DType::i64, DType::i8,  DType::u8};
constexpr int kMaxVariadic = 1 << 16;

/// Shape inference for ops whose inputs all share one dtype (from `allowed`)
/// and broadcast together. out_dtype undefined = the inputs' dtype.
InferFn broadcast_infer(std::string op, std::vector<DType> allowed,
                        DType out_dtype = DType::undefined) {
  return [op, allowed, out_dtype](const Attrs&, std::span<const ValueInfo> in) {
    const ValueInfo& a = req_input(in, 0, op, "A");
    check_dtype(op, "input 0", a.dtype, allowed);
    Shape shape = a.shape;
    for (size_t i = 1; i < in.size(); ++i) {
      const ValueInfo& b = req_input(in, i, op, "input " + std::to_string(i));
      if (b.dtype != a.dtype)
        fail(ErrorKind::invalid_argument, op + ": input " + std::to_string(i) +
                                              " has element type " + dtype_name(b.dtype) +
                                              " but input 0 has " + dtype_name(a.dtype));
      shape = broadcast_shape(op, shape, b.shape);
    }
    return std::vector<TypeShape>{{out_dtype == DType::undefined ? a.dtype : out_dtype, shape}};
  };
}

/// y[k] = f(a[.], b[.]) with broadcasting; A, B input types, R output type.
template <class R, class A, class B, class F>
void zip(const TensorRef& a, const TensorRef& b, const TensorRef& y, F f) {
  std::vector<int64_t> ia = broadcast_index(a.shape, y.shape);
  std::vector<int64_t> ib = broadcast_index(b.shape, y.shape);
  const A* pa = a.as<const A>();
  const B* pb = b.as<const B>();
  R* py = y.as<R>();
  for (size_t k = 0; k < ia.size(); ++k) py[k] = R(f(pa[ia[k]], pb[ib[k]]));
}

// --- arithmetic on one type T; integers wrap instead of overflowing --------

template <class T, bool = std::is_integral_v<T>>
struct WideOf {
  using type = T;
};
template <class T>
struct WideOf<T, true> {
  using type = std::make_unsigned_t<T>;
};
template <class T>
using Wide = typename WideOf<T>::type;

struct AddOp {
  template <class T>
  T operator()(T a, T b) const {
    return T(Wide<T>(Wide<T>(a) + Wide<T>(b)));
  }
};
struct SubOp {
  template <class T>
  T operator()(T a, T b) const {
    return T(Wide<T>(Wide<T>(a) - Wide<T>(b)));
  }
};
struct MulOp {
  template <class T>
  T operator()(T a, T b) const {
    return T(Wide<T>(Wide<T>(a) * Wide<T>(b)));
  }
};
/// Integer division truncates toward zero, as in C.
struct DivOp {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_integral_v<T>) {
      if (b == 0) fail(ErrorKind::invalid_argument, "Div: integer division by zero");
      if constexpr (std::is_signed_v<T>)
        if (b == T(-1)) return SubOp{}(T(0), a);  // avoids MIN / -1 overflow
    }
    return T(a / b);
  }
};
/// Max / Min propagate NaN, like numpy.maximum / minimum.
struct MaxOp {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>)
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
    return a < b ? b : a;
  }
};
struct MinOp {
  template <class T>
  T operator()(T a, T b) const {
    if constexpr (std::is_floating_point_v<T>)
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
    return b < a ? b : a;
  }
};

template <class Op>
RefKernel binary_kernel(std::string name) {
  return [name](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    visit_dtype(in[0].dtype, name, [&](auto z) {
      using T = decltype(z);
      zip<T, T, T>(in[0], in[1], out[0], Op{});
    });
  };
}

template <class Op>
void add_binary(std::vector<OpSpec>& t, const std::string& name, const std::string& summary) {
  t.push_back(make_spec(name, 7, 2, 2, summary, broadcast_infer(name, kArith),
                        binary_kernel<Op>(name), {DType::f32, DType::i64}));
}

/// Max, Min, Sum, Mean: y = fold of all inputs, all broadcast together.
template <class Op>
void add_variadic(std::vector<OpSpec>& t, const std::string& name, const std::string& summary,
                  bool mean) {
  std::vector<DType> allowed = mean ? std::vector<DType>{DType::f32, DType::f64} : kArith;
  t.push_back(make_spec(
      name, 6, 1, kMaxVariadic, summary, broadcast_infer(name, allowed),
      [name, mean](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        visit_dtype(in[0].dtype, name, [&](auto z) {
          using T = decltype(z);
          T* y = out[0].as<T>();
          std::vector<int64_t> i0 = broadcast_index(in[0].shape, out[0].shape);
          for (size_t k = 0; k < i0.size(); ++k) y[k] = in[0].as<const T>()[i0[k]];
          for (size_t j = 1; j < in.size(); ++j) zip<T, T, T>(out[0], in[j], out[0], Op{});
          if constexpr (std::is_floating_point_v<T>)
            if (mean)
              for (size_t k = 0; k < i0.size(); ++k) y[k] /= T(in.size());
        });
      },
      {DType::f32}));
}

// --- Pow: base and exponent may differ in type; y has the base's type ------

template <class T, class U>
T pow_one(T a, U b) {
  if constexpr (std::is_integral_v<T> && std::is_integral_v<U>) {
    if constexpr (std::is_signed_v<U>) {
      if (b < 0) {  // 1 / a^|b| truncated toward zero
        if (a == 1) return 1;
        if (a == T(-1)) return (b % 2) ? T(-1) : T(1);
        if (a == 0) fail(ErrorKind::invalid_argument, "Pow: 0 to a negative integer power");
        return 0;
      }
    }
    Wide<T> r = 1, base = Wide<T>(a);  // exact, wrapping on overflow
    for (uint64_t e = uint64_t(b); e; e >>= 1) {
      if (e & 1) r = Wide<T>(r * base);
      base = Wide<T>(base * base);
    }
    return T(r);
  } else if constexpr (std::is_floating_point_v<T> && std::is_same_v<T, U>) {
    return std::pow(a, b);
  } else {
    return convert<T>(std::pow(double(a), double(b)));
  }
}

void add_pow(std::vector<OpSpec>& t) {
  auto infer = [](const Attrs&, std::span<const ValueInfo> in) {
    const ValueInfo& a = req_input(in, 0, "Pow", "X");
    const ValueInfo& b = req_input(in, 1, "Pow", "Y");
    check_dtype("Pow", "base X", a.dtype, kArith);
    check_dtype("Pow", "exponent Y", b.dtype, kArith);
    return std::vector<TypeShape>{{a.dtype, broadcast_shape("Pow", a.shape, b.shape)}};
  };
  auto kernel = [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    visit_dtype(in[0].dtype, "Pow", [&](auto za) {
      using T = decltype(za);
      visit_dtype(in[1].dtype, "Pow", [&](auto zb) {
        using U = decltype(zb);
        zip<T, T, U>(in[0], in[1], out[0], [](T a, U b) { return pow_one<T, U>(a, b); });
      });
    });
  };
  t.push_back(make_spec("Pow", 7, 2, 2, "y = x ^ y, broadcast; y has x's type", infer, kernel));
}

// --- comparisons and Where ----------------------------------------------------

template <class Cmp>
void add_compare(std::vector<OpSpec>& t, const std::string& name, const std::string& summary,
                 std::vector<DType> allowed) {
  auto kernel = [name](const Attrs&, std::span<const TensorRef> in,
                       std::span<const TensorRef> out) {
    visit_dtype(in[0].dtype, name, [&](auto z) {
      using T = decltype(z);
      zip<uint8_t, T, T>(in[0], in[1], out[0],
                         [](T a, T b) { return uint8_t(Cmp{}(a, b) ? 1 : 0); });
    });
  };
  // Run-time dtypes cover the operands and the bool result.
  t.push_back(make_spec(name, 7, 2, 2, summary, broadcast_infer(name, allowed, DType::boolean),
                        kernel, {DType::f32, DType::i64, DType::boolean}));
}

void add_where(std::vector<OpSpec>& t) {
  auto infer = [](const Attrs&, std::span<const ValueInfo> in) {
    const ValueInfo& c = req_input(in, 0, "Where", "condition");
    const ValueInfo& x = req_input(in, 1, "Where", "X");
    const ValueInfo& y = req_input(in, 2, "Where", "Y");
    if (c.dtype != DType::boolean)
      fail(ErrorKind::invalid_argument,
           std::string("Where: condition must be bool, got ") + dtype_name(c.dtype));
    check_defined("Where", x.dtype);
    if (x.dtype != y.dtype)
      fail(ErrorKind::invalid_argument, std::string("Where: X has element type ") +
                                            dtype_name(x.dtype) + " but Y has " +
                                            dtype_name(y.dtype));
    Shape s = broadcast_shape("Where", broadcast_shape("Where", c.shape, x.shape), y.shape);
    return std::vector<TypeShape>{{x.dtype, s}};
  };
  auto kernel = [](const Attrs&, std::span<const TensorRef> in, std::span<const TensorRef> out) {
    const Shape& s = out[0].shape;
    std::vector<int64_t> ic = broadcast_index(in[0].shape, s);
    std::vector<int64_t> ix = broadcast_index(in[1].shape, s);
    std::vector<int64_t> iy = broadcast_index(in[2].shape, s);
    size_t es = dtype_size(out[0].dtype);
    const uint8_t* c = in[0].as<const uint8_t>();
    const auto* x = in[1].as<const uint8_t>();
    const auto* y = in[2].as<const uint8_t>();
    auto* o = out[0].as<uint8_t>();
    for (size_t k = 0; k < ic.size(); ++k)
      std::memcpy(o + k * es, c[ic[k]] ? x + size_t(ix[k]) * es : y + size_t(iy[k]) * es, es);
  };
  t.push_back(make_spec("Where", 9, 3, 3, "y = condition ? X : Y, broadcast", infer, kernel,
                        {DType::f32, DType::i64}));
}

struct EqualCmp {
  template <class T>
  bool operator()(T a, T b) const {
    return a == b;
  }
};
struct LessCmp {
  template <class T>
  bool operator()(T a, T b) const {
    return a < b;
  }
};
struct GreaterCmp {
  template <class T>
  bool operator()(T a, T b) const {
    return a > b;
  }
};

}  // namespace

/// ONNX Mod: fmod=0 takes the divisor's sign (Python's %), fmod=1 the
/// dividend's (C's fmod). Exporters write it on shapes (Swin's window
/// padding), which fold at compile time.
void add_mod(std::vector<OpSpec>& t) {
  t.push_back(make_spec(
      "Mod", 10, 2, 2,
      "y = a mod b, broadcast: sign of the divisor (fmod = 0), or of the dividend (fmod = 1)",
      broadcast_infer("Mod", kArith),
      [](const Attrs& a, std::span<const TensorRef> in, std::span<const TensorRef> out) {
        const bool c_fmod = a.i("fmod", 0) != 0;
        visit_dtype(in[0].dtype, "Mod", [&](auto z) {
          using T = decltype(z);
          zip<T, T, T>(in[0], in[1], out[0], [c_fmod](T x, T y) -> T {
            T r;
            if constexpr (std::is_floating_point_v<T>) {
              r = std::fmod(x, y);
            } else {
              if (y == 0) fail(ErrorKind::invalid_argument, "Mod: integer division by zero");
              r = y == T(-1) ? T(0) : T(x % y);  // MIN % -1 overflows
            }
            if (!c_fmod && r != 0 && ((r < 0) != (y < 0))) r = T(r + y);
            return r;
          });
        });
      },
      {DType::f32, DType::i64}));
}

void register_elementwise_binary(std::vector<OpSpec>& t) {
  add_mod(t);
  add_binary<AddOp>(t, "Add", "y = a + b, broadcast");
  add_binary<SubOp>(t, "Sub", "y = a - b, broadcast");
  add_binary<MulOp>(t, "Mul", "y = a * b, broadcast");
  add_binary<DivOp>(t, "Div", "y = a / b, broadcast; integers truncate toward zero");
  add_pow(t);
  add_variadic<MaxOp>(t, "Max", "elementwise maximum of all inputs, broadcast", false);
  add_variadic<MinOp>(t, "Min", "elementwise minimum of all inputs, broadcast", false);
  add_variadic<AddOp>(t, "Sum", "elementwise sum of all inputs, broadcast", false);
  add_variadic<AddOp>(t, "Mean", "elementwise mean of all inputs, broadcast", true);
  std::vector<DType> eq = kCompare;
  eq.push_back(DType::boolean);
  add_compare<EqualCmp>(t, "Equal", "y = (a == b), bool, broadcast", eq);
  add_compare<LessCmp>(t, "Less", "y = (a < b), bool, broadcast", kCompare);
  add_compare<GreaterCmp>(t, "Greater", "y = (a > b), bool, broadcast", kCompare);
  add_where(t);
}

}  // namespace shoal::ref
