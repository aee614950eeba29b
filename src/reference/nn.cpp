// The neural-network operators: registration and shared helpers. Each family
// lives in its own file (nn_conv, nn_pool, nn_matmul, nn_einsum, nn_reduce,
// nn_pad, nn_resize).
#include "reference/nn_internal.hpp"

namespace shoal::ops {

void register_nn(std::vector<OpSpec>& table) {
  ref::nn::add_conv_ops(table);
  ref::nn::add_pool_ops(table);
  ref::nn::add_matmul_ops(table);
  ref::nn::add_einsum_ops(table);
  ref::nn::add_reduce_ops(table);
  ref::nn::add_layernorm_ops(table);
  ref::nn::add_pad_ops(table);
  ref::nn::add_resize_ops(table);
  ref::nn::add_qlinear_ops(table);
  ref::nn::add_qlookup_ops(table);
}

}  // namespace shoal::ops

namespace shoal::ref::nn {

const ValueInfo& need(Infos in, size_t i, const std::string& op,
                      const std::string& what) {
  if (const ValueInfo* v = opt_input(in, i)) return *v;
  fail(ErrorKind::invalid_argument, op + ": required input " +
                                        std::to_string(i) + " ('" + what +
                                        "') is missing");
}

void require_f32(const std::string& op, const std::string& what,
                 const ValueInfo& v) {
  if (v.dtype != DType::f32)
    fail(ErrorKind::unsupported, op + ": input '" + what + "' has dtype " +
                                     dtype_name(v.dtype) +
                                     "; only float32 is supported");
}

OperandPair need_f32_pair(Infos in, const std::string& op,
                          const std::string& first, const std::string& second) {
  const ValueInfo& a = need(in, 0, op, first);
  const ValueInfo& b = need(in, 1, op, second);
  require_f32(op, first, a);
  require_f32(op, second, b);
  return {a, b};
}

std::vector<double> floats_of(const TensorRef& t, const std::string& op,
                              const std::string& what) {
  std::vector<double> v(size_t(t.numel()));
  for (size_t k = 0; k < v.size(); ++k) {
    switch (t.dtype) {
      case DType::f32:
        v[k] = t.as<const float>()[k];
        break;
      case DType::f64:
        v[k] = t.as<const double>()[k];
        break;
      case DType::i64:
        v[k] = double(t.as<const int64_t>()[k]);
        break;
      case DType::i32:
        v[k] = t.as<const int32_t>()[k];
        break;
      default:
        fail(ErrorKind::invalid_argument,
             op + ": input '" + what + "' must be a numeric tensor, got " +
                 dtype_name(t.dtype));
    }
  }
  return v;
}

namespace {
const HostTensor& known(const ValueInfo& v, const std::string& op,
                        const std::string& what) {
  if (!v.constant)
    fail(ErrorKind::unsupported,
         op + ": input '" + what +
             "' must be a compile-time constant (it determines the output "
             "shape)");
  return *v.constant;
}
}  // namespace

std::vector<int64_t> const_ints(const ValueInfo& v, const std::string& op,
                                const std::string& what) {
  return read_ints(known(v, op, what).ref(), op, what);
}

std::vector<double> const_floats(const ValueInfo& v, const std::string& op,
                                 const std::string& what) {
  return floats_of(known(v, op, what).ref(), op, what);
}

int64_t norm_axis(const std::string& op, int64_t axis, int64_t rank,
                  const std::string& what) {
  if (axis < -rank || axis >= rank)
    fail(ErrorKind::invalid_argument,
         op + ": " + what + " " + std::to_string(axis) +
             " out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::string ints_str(const std::vector<int64_t>& v) { return shape_str(v); }

void check_out(const std::string& op, const TensorRef& out, const Shape& want) {
  if (out.shape != want || out.dtype != DType::f32 ||
      (out.data == nullptr && shape_numel(want) != 0))
    fail(ErrorKind::internal, op + ": reference kernel got output " +
                                  shape_str(out.shape) + " " +
                                  dtype_name(out.dtype) + ", expected " +
                                  shape_str(want) + " float32");
}

Win3 win3(const WindowGeometry& g) {
  Win3 w;
  int off = 3 - g.spatial();
  for (int i = 0; i < 3; ++i) {
    bool real = i >= off;
    size_t j = size_t(i - off);
    w.in[i] = real ? g.in[j] : 1;
    w.out[i] = real ? g.out[j] : 1;
    w.k[i] = real ? g.kernel[j] : 1;
    w.s[i] = real ? g.stride[j] : 1;
    w.d[i] = real ? g.dilation[j] : 1;
    w.pb[i] = real ? g.pad_begin[j] : 0;
  }
  return w;
}

Shape window_out_shape(const WindowGeometry& g) {
  Shape s = {g.n, g.c_out};
  s.insert(s.end(), g.out.begin(), g.out.end());
  return s;
}

}  // namespace shoal::ref::nn
