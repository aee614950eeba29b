// Gemm and MatMul (numpy semantics), both with a fused activation.
#include <algorithm>

#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {

// --- MatMul ------------------------------------------------------------------

MatMulDims matmul_dims(const Shape& sa0, const Shape& sb0, const std::string& op) {
  if (sa0.empty() || sb0.empty())
    fail(ErrorKind::invalid_argument, op + ": inputs A " + shape_str(sa0) +
                                          " and B " + shape_str(sb0) +
                                          " must have rank >= 1");
  Shape sa = sa0, sb = sb0;
  if (sa.size() == 1) sa.insert(sa.begin(), 1);  // [K] -> [1,K]
  if (sb.size() == 1) sb.push_back(1);           // [K] -> [K,1]
  MatMulDims d;
  d.m = sa[sa.size() - 2];
  d.k = sa[sa.size() - 1];
  d.n = sb[sb.size() - 1];
  if (sb[sb.size() - 2] != d.k)
    fail(ErrorKind::invalid_argument,
         op + ": inner dimensions differ: A " + shape_str(sa0) +
             " has K=" + std::to_string(d.k) + ", B " + shape_str(sb0) +
             " has K=" + std::to_string(sb[sb.size() - 2]));
  size_t r = std::max(sa.size(), sb.size()) - 2;
  d.a_batch.assign(r, 1);
  d.b_batch.assign(r, 1);
  std::copy(sa.begin(), sa.end() - 2, d.a_batch.end() - long(sa.size() - 2));
  std::copy(sb.begin(), sb.end() - 2, d.b_batch.end() - long(sb.size() - 2));
  d.batch.resize(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t x = d.a_batch[i], y = d.b_batch[i];
    if (x != y && x != 1 && y != 1)
      fail(ErrorKind::invalid_argument,
           op + ": batch dims of A " + shape_str(sa0) + " and B " +
               shape_str(sb0) + " cannot be broadcast together");
    d.batch[i] = x == 1 ? y : x;
  }
  d.out = d.batch;
  if (sa0.size() > 1) d.out.push_back(d.m);
  if (sb0.size() > 1) d.out.push_back(d.n);
  return d;
}

// Linear index into a tensor of batch shape `in` for batch position `pos`
// of the broadcast batch shape (dims of size 1 broadcast).
int64_t batch_offset(const Shape& in, const Shape& pos) {
  int64_t off = 0;
  for (size_t i = 0; i < in.size(); ++i)
    off = off * in[i] + (in[i] == 1 ? 0 : pos[i]);
  return off;
}

namespace {

// --- Gemm --------------------------------------------------------------------

struct GemmDims {
  int64_t m, k, n;
};

GemmDims gemm_dims(const Attrs& a, const Shape& sa, const Shape& sb) {
  const std::string op = "Gemm";
  if (sa.size() != 2 || sb.size() != 2)
    fail(ErrorKind::invalid_argument, op + ": inputs A " + shape_str(sa) +
                                          " and B " + shape_str(sb) +
                                          " must both be 2-D");
  bool ta = a.i("transA", 0) != 0, tb = a.i("transB", 0) != 0;
  GemmDims d;
  d.m = ta ? sa[1] : sa[0];
  d.k = ta ? sa[0] : sa[1];
  int64_t kb = tb ? sb[1] : sb[0];
  d.n = tb ? sb[0] : sb[1];
  if (d.k != kb)
    fail(ErrorKind::invalid_argument,
         op + ": inner dimensions differ: A " + shape_str(sa) +
             (ta ? " (transposed)" : "") + " has K=" + std::to_string(d.k) +
             ", B " + shape_str(sb) + (tb ? " (transposed)" : "") +
             " has K=" + std::to_string(kb));
  return d;
}

// C must broadcast (unidirectionally) to [M, N].
void check_c(const Shape& c, const GemmDims& d) {
  bool ok = c.size() <= 2;
  const int64_t want[2] = {d.m, d.n};
  for (size_t i = 0; ok && i < c.size(); ++i) {
    int64_t w = want[2 - c.size() + i];
    ok = c[i] == 1 || c[i] == w;
  }
  if (!ok)
    fail(ErrorKind::invalid_argument, "Gemm: C has shape " + shape_str(c) +
                                          ", which does not broadcast to [" +
                                          std::to_string(d.m) + "," +
                                          std::to_string(d.n) + "]");
}

std::vector<TypeShape> gemm_infer(const Attrs& a, Infos in) {
  const std::string op = "Gemm";
  const auto [va, vb] = need_f32_pair(in, op, "A", "B");
  GemmDims d = gemm_dims(a, va.shape, vb.shape);
  if (const ValueInfo* c = opt_input(in, 2)) {
    require_f32(op, "C", *c);
    check_c(c->shape, d);
  }
  activation_from_attrs(a);
  return {{DType::f32, {d.m, d.n}}};
}

void gemm_ref(const Attrs& a, Refs in, Refs out) {
  GemmDims d = gemm_dims(a, in[0].shape, in[1].shape);
  check_out("Gemm", out[0], {d.m, d.n});
  const bool ta = a.i("transA", 0) != 0, tb = a.i("transB", 0) != 0;
  const double alpha = a.f("alpha", 1.0f), beta = a.f("beta", 1.0f);
  Activation act = activation_from_attrs(a);
  const float* pa = in[0].as<const float>();
  const float* pb = in[1].as<const float>();
  const TensorRef* c = opt_input(in, 2);
  // C's strides over [M, N], 0 along broadcast dims.
  int64_t csm = 0, csn = 0;
  if (c) {
    Shape cs = c->shape;
    while (cs.size() < 2) cs.insert(cs.begin(), 1);
    csm = cs[0] == 1 ? 0 : cs[1];
    csn = cs[1] == 1 ? 0 : 1;
  }
  float* y = out[0].as<float>();
  for (int64_t i = 0; i < d.m; ++i)
    for (int64_t j = 0; j < d.n; ++j) {
      double acc = 0;
      for (int64_t k = 0; k < d.k; ++k) {
        double av = ta ? pa[k * d.m + i] : pa[i * d.k + k];
        double bv = tb ? pb[j * d.k + k] : pb[k * d.n + j];
        acc += av * bv;
      }
      double v = alpha * acc;
      if (c) v += beta * double(c->as<const float>()[i * csm + j * csn]);
      y[i * d.n + j] = act(float(v));
    }
}

std::vector<TypeShape> matmul_infer(const Attrs& a, Infos in) {
  const std::string op = "MatMul";
  const auto [va, vb] = need_f32_pair(in, op, "A", "B");
  MatMulDims d = matmul_dims(va.shape, vb.shape);
  activation_from_attrs(a);
  return {{DType::f32, d.out}};
}

void matmul_ref(const Attrs& a, Refs in, Refs out) {
  MatMulDims d = matmul_dims(in[0].shape, in[1].shape);
  check_out("MatMul", out[0], d.out);
  Activation act = activation_from_attrs(a);
  const float* pa = in[0].as<const float>();
  const float* pb = in[1].as<const float>();
  float* y = out[0].as<float>();
  const TensorRef* bias_in = opt_input(in, 2);
  if (bias_in && bias_in->numel() != d.n)
    fail(ErrorKind::invalid_argument, "MatMul: bias has " + std::to_string(bias_in->numel()) +
                                          " values, expected N = " + std::to_string(d.n));
  const float* bias = bias_in ? bias_in->as<const float>() : nullptr;
  const int64_t nb = shape_numel(d.batch);
  Shape pos(d.batch.size(), 0);
  for (int64_t bi = 0; bi < nb; ++bi) {
    const float* a0 = pa + batch_offset(d.a_batch, pos) * d.m * d.k;
    const float* b0 = pb + batch_offset(d.b_batch, pos) * d.k * d.n;
    float* y0 = y + bi * d.m * d.n;
    for (int64_t i = 0; i < d.m; ++i)
      for (int64_t j = 0; j < d.n; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < d.k; ++k)
          acc += double(a0[i * d.k + k]) * double(b0[k * d.n + j]);
        if (bias) acc += double(bias[j]);
        y0[i * d.n + j] = act(float(acc));
      }
    for (size_t r = pos.size(); r-- > 0;) {  // next batch position
      if (++pos[r] < d.batch[r]) break;
      pos[r] = 0;
    }
  }
}

}  // namespace

void add_matmul_ops(std::vector<OpSpec>& t) {
  t.push_back(make_spec("Gemm", 7, 2, 3,
                        "Y = act(alpha * A' * B' + beta * C): transA, transB, "
                        "C broadcast to [M,N], fused activation",
                        gemm_infer, gemm_ref));
  t.push_back(make_spec("MatMul", 1, 2, 3,
                        "numpy matmul: 1-D operands, batch broadcasting; fused bias "
                        "(input 2, N values) and activation",
                        matmul_infer, matmul_ref));
}

}  // namespace shoal::ref::nn
