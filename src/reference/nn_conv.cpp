// Conv (with fused bias/residual/activation), ConvTranspose and
// BatchNormalization (inference form).
#include <cmath>

#include "reference/nn_internal.hpp"
#include "reference/plans.hpp"

namespace shoal::ref::nn {
namespace {

// Optional per-output-channel bias B of shape [M].
void check_bias(const std::string& op, const ValueInfo* b, int64_t m) {
  if (!b) return;
  require_f32(op, "B", *b);
  if (b->shape != Shape{m})
    fail(ErrorKind::invalid_argument, op + ": bias B has shape " +
                                          shape_str(b->shape) + ", expected [" +
                                          std::to_string(m) + "]");
}

// --- Conv -------------------------------------------------------------------

std::vector<TypeShape> conv_infer(const Attrs& a, Infos in) {
  const std::string op = "Conv";
  const auto [x, w] = need_f32_pair(in, op, "X", "W");
  WindowGeometry g = conv_geometry(a, x.shape, w.shape);
  check_bias(op, opt_input(in, 2), g.c_out);
  Shape y = window_out_shape(g);
  if (const ValueInfo* r = opt_input(in, 3)) {
    require_f32(op, "residual", *r);
    if (r->shape != y)
      fail(ErrorKind::invalid_argument,
           op + ": residual input has shape " + shape_str(r->shape) +
               ", expected the output shape " + shape_str(y));
  }
  if (const ValueInfo* sc = opt_input(in, 4)) {
    require_f32(op, "channel scale", *sc);
    Shape want(x.shape.size(), 1);
    want[1] = g.c_in;
    Shape batch_want = want;
    batch_want[0] = g.n;
    if (sc->shape != want && sc->shape != batch_want)
      fail(ErrorKind::invalid_argument, op + ": channel scale (input 4) has shape " +
                                            shape_str(sc->shape) + ", expected " +
                                            shape_str(batch_want) + " or " + shape_str(want));
  }
  activation_from_attrs(a);  // validates the fused activation
  return {{DType::f32, y}};
}

void conv_ref(const Attrs& a, Refs in, Refs out) {
  const TensorRef& x = in[0];
  const TensorRef& w = in[1];
  const TensorRef* b = opt_input(in, 2);
  const TensorRef* r = opt_input(in, 3);
  const TensorRef* sc = opt_input(in, 4);  // channel scale: conv(x * s)
  WindowGeometry g = conv_geometry(a, x.shape, w.shape);
  check_out("Conv", out[0], window_out_shape(g));
  Activation act = activation_from_attrs(a);
  Win3 v = win3(g);
  const float* xp = x.as<const float>();
  const float* wp = w.as<const float>();
  float* yp = out[0].as<float>();
  const int64_t cg = g.c_in / g.group, mg = g.c_out / g.group;
  const int64_t in_sz = v.in[0] * v.in[1] * v.in[2];
  const int64_t k_sz = v.k[0] * v.k[1] * v.k[2];
  int64_t yi = 0;  // output index, row-major
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t m = 0; m < g.c_out; ++m) {
      const int64_t c0 = (m / mg) * cg;  // first input channel of m's group
      for (int64_t o0 = 0; o0 < v.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < v.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < v.out[2]; ++o2, ++yi) {
            double acc = b ? double(b->as<const float>()[m]) : 0.0;
            for (int64_t c = 0; c < cg; ++c) {
              const float* xc = xp + (n * g.c_in + c0 + c) * in_sz;
              const float* wc = wp + (m * cg + c) * k_sz;
              const float s =
                  sc ? sc->as<const float>()[(sc->shape[0] == 1 ? 0 : n * g.c_in) + c0 + c] : 1.0f;
              for (int64_t k0 = 0; k0 < v.k[0]; ++k0) {
                int64_t i0 = o0 * v.s[0] - v.pb[0] + k0 * v.d[0];
                if (i0 < 0 || i0 >= v.in[0]) continue;
                for (int64_t k1 = 0; k1 < v.k[1]; ++k1) {
                  int64_t i1 = o1 * v.s[1] - v.pb[1] + k1 * v.d[1];
                  if (i1 < 0 || i1 >= v.in[1]) continue;
                  for (int64_t k2 = 0; k2 < v.k[2]; ++k2) {
                    int64_t i2 = o2 * v.s[2] - v.pb[2] + k2 * v.d[2];
                    if (i2 < 0 || i2 >= v.in[2]) continue;
                    const float xs = xc[(i0 * v.in[1] + i1) * v.in[2] + i2];
                    acc += double(sc ? xs * s : xs) * double(wc[(k0 * v.k[1] + k1) * v.k[2] + k2]);
                  }
                }
              }
            }
            if (r) acc += double(r->as<const float>()[yi]);
            yp[yi] = act(float(acc));
          }
    }
}

// --- shoal.PointwiseDepthwise -------------------------------------------------
// A 1x1 convolution (inputs 1 and 2, activation pw_activation*) whose output
// only a depthwise convolution reads (inputs 3 and 4; the node's geometry and
// activation). passes::fuse_pointwise_depthwise forms it so that a kernel may
// run the pair in bands of rows, the 1x1's output never leaving the cache.

const std::string kPwDw = "shoal.PointwiseDepthwise";

/// The 1x1's output (the depthwise input); checks the pair.
TypeShape pointwise_out(const Attrs& a, Infos in) {
  const ValueInfo& w1 = need(in, 1, kPwDw, "W1");
  const ValueInfo& w2 = need(in, 3, kPwDw, "W2");
  if (w1.shape.size() != 4 || w1.shape[2] != 1 || w1.shape[3] != 1)
    fail(ErrorKind::invalid_argument,
         kPwDw + ": W1 must be a 1x1 kernel [M, C, 1, 1], got " + shape_str(w1.shape));
  if (w2.shape.size() != 4 || w2.shape[0] != w1.shape[0] || w2.shape[1] != 1 ||
      a.i("group", 1) != w1.shape[0])
    fail(ErrorKind::invalid_argument, kPwDw + ": W2 " + shape_str(w2.shape) +
                                          " with group " + std::to_string(a.i("group", 1)) +
                                          " is not a depthwise kernel over W1's " +
                                          std::to_string(w1.shape[0]) + " channels");
  const Attrs pa = pointwise_attrs(a);
  const ValueInfo pin[] = {need(in, 0, kPwDw, "X"), w1, need(in, 2, kPwDw, "B1")};
  return conv_infer(pa, pin).front();
}

std::vector<TypeShape> pwdw_infer(const Attrs& a, Infos in) {
  const TypeShape t = pointwise_out(a, in);
  const ValueInfo din[] = {ValueInfo{t.dtype, t.shape}, need(in, 3, kPwDw, "W2"),
                           need(in, 4, kPwDw, "B2")};
  return conv_infer(a, din);
}

void pwdw_ref(const Attrs& a, Refs in, Refs out) {
  const ValueInfo vin[] = {{in[0].dtype, in[0].shape}, {in[1].dtype, in[1].shape},
                           {in[2].dtype, in[2].shape}, {in[3].dtype, in[3].shape},
                           {in[4].dtype, in[4].shape}};
  const TypeShape ts = pointwise_out(a, vin);
  std::vector<float> t(size_t(shape_numel(ts.shape)));
  const TensorRef tr{DType::f32, ts.shape, t.data()};
  const TensorRef pin[] = {in[0], in[1], in[2]};
  conv_ref(pointwise_attrs(a), pin, {&tr, 1});
  const TensorRef din[] = {tr, in[3], in[4]};
  conv_ref(a, din, out);
}

// --- ConvTranspose -----------------------------------------------------------

std::vector<TypeShape> conv_transpose_infer(const Attrs& a, Infos in) {
  const std::string op = "ConvTranspose";
  const auto [x, w] = need_f32_pair(in, op, "X", "W");
  WindowGeometry g = conv_transpose_geometry(a, x.shape, w.shape);
  check_bias(op, opt_input(in, 2), g.c_out);
  activation_from_attrs(a);
  return {{DType::f32, window_out_shape(g)}};
}

// Scatter form: every input pixel adds x * w into the outputs it reaches.
void conv_transpose_ref(const Attrs& a, Refs in, Refs out) {
  const TensorRef& x = in[0];
  const TensorRef& w = in[1];
  const TensorRef* b = opt_input(in, 2);
  WindowGeometry g = conv_transpose_geometry(a, x.shape, w.shape);
  check_out("ConvTranspose", out[0], window_out_shape(g));
  Activation act = activation_from_attrs(a);
  Win3 v = win3(g);
  const float* xp = x.as<const float>();
  const float* wp = w.as<const float>();
  const int64_t cg = g.c_in / g.group, mg = g.c_out / g.group;
  const int64_t in_sz = v.in[0] * v.in[1] * v.in[2];
  const int64_t out_sz = v.out[0] * v.out[1] * v.out[2];
  const int64_t k_sz = v.k[0] * v.k[1] * v.k[2];
  std::vector<double> acc(size_t(g.n * g.c_out * out_sz), 0.0);
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t c = 0; c < g.c_in; ++c) {
      const int64_t grp = c / cg;
      const float* xc = xp + (n * g.c_in + c) * in_sz;
      for (int64_t mm = 0; mm < mg; ++mm) {
        const int64_t m = grp * mg + mm;
        const float* wc = wp + (c * mg + mm) * k_sz;
        double* yc = acc.data() + (n * g.c_out + m) * out_sz;
        for (int64_t i0 = 0; i0 < v.in[0]; ++i0)
          for (int64_t i1 = 0; i1 < v.in[1]; ++i1)
            for (int64_t i2 = 0; i2 < v.in[2]; ++i2) {
              double xv = xc[(i0 * v.in[1] + i1) * v.in[2] + i2];
              for (int64_t k0 = 0; k0 < v.k[0]; ++k0) {
                int64_t o0 = i0 * v.s[0] - v.pb[0] + k0 * v.d[0];
                if (o0 < 0 || o0 >= v.out[0]) continue;
                for (int64_t k1 = 0; k1 < v.k[1]; ++k1) {
                  int64_t o1 = i1 * v.s[1] - v.pb[1] + k1 * v.d[1];
                  if (o1 < 0 || o1 >= v.out[1]) continue;
                  for (int64_t k2 = 0; k2 < v.k[2]; ++k2) {
                    int64_t o2 = i2 * v.s[2] - v.pb[2] + k2 * v.d[2];
                    if (o2 < 0 || o2 >= v.out[2]) continue;
                    yc[(o0 * v.out[1] + o1) * v.out[2] + o2] +=
                        xv * double(wc[(k0 * v.k[1] + k1) * v.k[2] + k2]);
                  }
                }
              }
            }
      }
    }
  float* yp = out[0].as<float>();
  for (size_t i = 0; i < acc.size(); ++i) {
    int64_t m = int64_t(i) / out_sz % g.c_out;
    double bias = b ? double(b->as<const float>()[m]) : 0.0;
    yp[i] = act(float(acc[i] + bias));
  }
}

// --- BatchNormalization ------------------------------------------------------

const char* const kBnNames[] = {"X", "scale", "B", "input_mean", "input_var"};

std::vector<TypeShape> batchnorm_infer(const Attrs& a, Infos in) {
  const std::string op = "BatchNormalization";
  const int64_t training = a.i("training_mode", 0);
  if (training != 0 && training != 1)
    fail(ErrorKind::invalid_argument,
         op + ": training_mode must be 0 or 1, got " + std::to_string(training));
  if (a.i("spatial", 1) != 1)
    fail(ErrorKind::unsupported, op + ": spatial=0 is not supported");
  for (size_t i = 0; i < 5; ++i)
    require_f32(op, kBnNames[i], need(in, i, op, kBnNames[i]));
  activation_from_attrs(a);  // a fused activation must be one shoal knows
  const Shape& x = in[0].shape;
  if (x.size() < 2)
    fail(ErrorKind::invalid_argument, op + ": input X has shape " +
                                          shape_str(x) +
                                          "; expected rank >= 2 ([N,C,...])");
  for (size_t i = 1; i < 5; ++i)
    if (in[i].shape != Shape{x[1]})
      fail(ErrorKind::invalid_argument,
           op + ": input " + kBnNames[i] + " has shape " +
               shape_str(in[i].shape) + ", expected [" + std::to_string(x[1]) +
               "] (the channels of X " + shape_str(x) + ")");
  if (training) return {{DType::f32, x}, {DType::f32, {x[1]}}, {DType::f32, {x[1]}}};
  return {{DType::f32, x}};
}

// training_mode=1 (opset 14+): Y normalized with the statistics of X over
// every axis but the channels (the population variance), and the running
// statistics updated with them: input * momentum + current * (1 - momentum).
void batchnorm_training_ref(const Attrs& a, Refs in, Refs out) {
  const Shape& xs = in[0].shape;
  check_out("BatchNormalization", out[0], xs);
  for (size_t i = 1; i < out.size(); ++i)
    if (out[i].data) check_out("BatchNormalization", out[i], {xs[1]});
  const double eps = a.f("epsilon", 1e-5f), momentum = a.f("momentum", 0.9f);
  const int64_t n = xs[0], c = xs[1];
  int64_t inner = 1;
  for (size_t i = 2; i < xs.size(); ++i) inner *= xs[i];
  const double count = double(n) * double(inner);
  const float* x = in[0].as<const float>();
  const Activation act = activation_from_attrs(a);  // fused by the compiler
  float* y = out[0].as<float>();
  for (int64_t ch = 0; ch < c; ++ch) {
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < inner; ++k) sum += x[(i * c + ch) * inner + k];
    const double mean = sum / count;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < inner; ++k) {
        const double d = x[(i * c + ch) * inner + k] - mean;
        sq += d * d;
      }
    const double var = sq / count;
    const double mul = double(in[1].as<const float>()[ch]) / std::sqrt(var + eps);
    const double bias = in[2].as<const float>()[ch];
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < inner; ++k) {
        const int64_t idx = (i * c + ch) * inner + k;
        y[idx] = act(float((double(x[idx]) - mean) * mul + bias));
      }
    const double current[2] = {mean, var};
    for (size_t o = 1; o < 3 && o < out.size(); ++o)
      if (out[o].data)
        out[o].as<float>()[ch] = float(double(in[2 + o].as<const float>()[ch]) * momentum +
                                       current[o - 1] * (1 - momentum));
  }
}

void batchnorm_ref(const Attrs& a, Refs in, Refs out) {
  if (a.i("training_mode", 0) != 0) return batchnorm_training_ref(a, in, out);
  const Shape& xs = in[0].shape;
  check_out("BatchNormalization", out[0], xs);
  const double eps = a.f("epsilon", 1e-5f);
  const int64_t n = xs[0], c = xs[1];
  int64_t inner = 1;
  for (size_t i = 2; i < xs.size(); ++i) inner *= xs[i];
  const float* x = in[0].as<const float>();
  const float* scale = in[1].as<const float>();
  const float* bias = in[2].as<const float>();
  const float* mean = in[3].as<const float>();
  const float* var = in[4].as<const float>();
  float* y = out[0].as<float>();
  const Activation act = activation_from_attrs(a);  // fused by the compiler
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch) {
      double mul = double(scale[ch]) / std::sqrt(double(var[ch]) + eps);
      for (int64_t k = 0; k < inner; ++k) {
        int64_t idx = (i * c + ch) * inner + k;
        y[idx] = act(float((double(x[idx]) - mean[ch]) * mul + bias[ch]));
      }
    }
}

}  // namespace

void add_conv_ops(std::vector<OpSpec>& t) {
  t.push_back(make_spec("Conv", 1, 2, 5,
                        "N-D convolution (1-3 spatial dims): pads/auto_pad, "
                        "strides, dilations, group; fused bias, residual "
                        "(input 3), activation and channel scale of the input "
                        "(input 4, [N or 1, C, 1...]: conv(x * s))",
                        conv_infer, conv_ref));
  t.push_back(make_spec("shoal.PointwiseDepthwise", 1, 5, 5,
                        "fused 1x1 Conv (inputs 1, 2; activation pw_activation) and the "
                        "depthwise Conv that alone reads it (inputs 3, 4; the node's "
                        "geometry and activation) (internal)",
                        pwdw_infer, pwdw_ref));
  t.push_back(make_spec("ConvTranspose", 1, 2, 3,
                        "transposed convolution: pads/auto_pad, strides, "
                        "dilations, group, output_padding, output_shape",
                        conv_transpose_infer, conv_transpose_ref));
  OpSpec bn = make_spec("BatchNormalization", 6, 5, 5,
                        "batch normalization over channel axis 1; fused activation; "
                        "training_mode=1 (opset 14+: batch statistics, running_mean/var "
                        "outputs; reference kernel, statistics within each sample)",
                        batchnorm_infer, batchnorm_ref);
  bn.num_outputs = 3;  // Y, and in training mode running_mean, running_var
  t.push_back(std::move(bn));
}

}  // namespace shoal::ref::nn

namespace shoal::ref {

void batchnorm_affine(const float* scale, const float* bias, const float* mean, const float* var,
                      double eps, int64_t c, float* s, float* shift) {
  for (int64_t k = 0; k < c; ++k) {
    const double m = double(scale[k]) / std::sqrt(double(var[k]) + eps);
    s[k] = float(m);
    shift[k] = float(double(bias[k]) - double(mean[k]) * m);
  }
}

}  // namespace shoal::ref
