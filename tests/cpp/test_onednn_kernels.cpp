// oneDNN CPU kernels against naive loops written here: each test builds a
// one-instruction program by hand, creates the kernel and runs it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/cpu/onednn_kernels.hpp"
#include "env_guard.hpp"
#include "one_instruction.hpp"
#include "ops/op_table.hpp"
#include "reference/geometry.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

using program::ProgramData;
using program::Storage;
using program::TensorDesc;
using Vec = std::vector<float>;
using Ints = std::vector<int64_t>;

std::vector<float> random_data(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(size_t(std::max<int64_t>(n, 0)));
  for (float& x : v) x = dist(gen);
  return v;
}

/// The row-band rule Net builds its kernels with (OneDnnContext::row_bands,
/// which SHOAL_ROW_BANDS sets through the API); ForceRowBands sets it for a scope.
RowBands g_row_bands = RowBands::automatic;
struct ForceRowBands {
  explicit ForceRowBands(RowBands b) { g_row_bands = b; }
  ~ForceRowBands() { g_row_bands = RowBands::automatic; }
};

/// A one-instruction program built by hand, with its tensors' data.
class Net {
 public:
  int input(const Shape& s) { return input(s, random_data(shape_numel(s), seed_++)); }
  int input(const Shape& s, Vec v) { return add(s, Storage::activation, std::move(v)); }
  int weight(const Shape& s) { return weight(s, random_data(shape_numel(s), seed_++)); }
  int weight(const Shape& s, Vec v) { return add(s, Storage::weight, std::move(v)); }
  int output(const Shape& s) {
    return add(s, Storage::activation, Vec(size_t(shape_numel(s)), 1e30f));
  }
  const Vec& data(int id) const { return data_[id]; }
  void set_data(int id, Vec v) { data_[id] = std::move(v); }
  TensorDesc& desc(int id) { return prog_.tensors[id]; }

  std::unique_ptr<device::Kernel> build(const std::string& op, std::vector<int32_t> ins,
                                        std::vector<int32_t> outs, Attrs attrs = {},
                                        int threads = 1) {
    prog_.instructions = {
        test_util::one_instruction(op, std::move(ins), std::move(outs), std::move(attrs))};
    prog_.weights = prog_.owned_weights.data();
    prog_.weights_bytes = prog_.owned_weights.size();
    ctx_.row_bands = g_row_bands;
    return make_onednn_kernel(prog_.instructions[0], prog_, ctx_, threads);
  }

  /// Runs the kernel; `alias` makes input `alias` share output 0's buffer
  /// (which first receives a copy of that input).
  void run(device::Kernel& k, int alias = -1) {
    const program::Instruction& ins = prog_.instructions[0];
    std::vector<void*> in, out;
    for (int32_t id : ins.inputs) in.push_back(id < 0 ? nullptr : ptr(id));
    for (int32_t id : ins.outputs) out.push_back(ptr(id));
    if (alias >= 0) {
      data_[ins.outputs[0]] = data_[ins.inputs[alias]];
      out[0] = in[alias] = data_[ins.outputs[0]].data();
    }
    dnnl::stream stream(ctx_.engine);
    device::ExecContext ec;
    ec.backend_state = &stream;
    k.execute(ec, in, out);
  }

  OneDnnContext& ctx() { return ctx_; }
  void* ptr(int id) {
    const TensorDesc& t = prog_.tensors[id];
    if (t.storage == Storage::weight) return const_cast<uint8_t*>(prog_.weights) + t.offset;
    return data_[id].data();
  }

 private:
  int add(const Shape& s, Storage st, Vec v) {
    TensorDesc t;
    t.name = "t" + std::to_string(prog_.tensors.size());
    t.shape = s;
    t.storage = st;
    t.bytes = v.size() * sizeof(float);
    if (st == Storage::weight) {
      auto& w = prog_.owned_weights;
      w.resize((w.size() + 63) / 64 * 64);
      t.offset = w.size();
      w.resize(w.size() + t.bytes);
      std::memcpy(w.data() + t.offset, v.data(), t.bytes);
    } else {
      t.offset = arena_;
      arena_ += (t.bytes + 63) / 64 * 64;
    }
    prog_.tensors.push_back(t);
    data_.push_back(std::move(v));
    return int(prog_.tensors.size()) - 1;
  }
  ProgramData prog_;
  std::vector<Vec> data_;
  uint64_t arena_ = 0;
  uint32_t seed_ = 1;
  OneDnnContext ctx_;
};

void expect_near(const Vec& got, const Vec& want, double rel = 1e-4) {
  ASSERT_EQ(got.size(), want.size());
  double scale = 1.0;
  for (float w : want) scale = std::max(scale, double(std::fabs(w)));
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double d = std::fabs(double(got[i]) - want[i]);
    if (!(d <= worst)) worst = d, at = i;
  }
  EXPECT_LE(worst, rel * scale) << "at element " << at << ": got " << got[at] << ", want "
                                << want[at];
}

// --- naive references --------------------------------------------------------

/// Window parameters over exactly 3 spatial dims (missing ones are 1).
struct Win {
  int64_t group = 1;
  Ints in, out, k, s, d, pb, pe;
};

Win win3(const Shape& x, const Shape& y, const Ints& k, Ints s, Ints d, Ints pb, Ints pe) {
  size_t n = k.size();
  Win w;
  auto pad = [n](Ints v, int64_t def, size_t want) {
    if (v.empty()) v.assign(want, def);
    v.insert(v.begin(), 3 - n, def);
    return v;
  };
  w.in = pad(Ints(x.begin() + 2, x.end()), 1, n);
  w.out = pad(Ints(y.begin() + 2, y.end()), 1, n);
  w.k = pad(k, 1, n);
  w.s = pad(std::move(s), 1, n);
  w.d = pad(std::move(d), 1, n);
  w.pb = pad(std::move(pb), 0, n);
  w.pe = pad(std::move(pe), 0, n);
  return w;
}

Vec conv_naive(const Vec& x, const Shape& xs, const Vec& w, int64_t m, const Vec* bias,
               const Win& g) {
  if (xs[0] > 1) {  // sample by sample
    Shape one = xs;
    one[0] = 1;
    const size_t per = size_t(shape_numel(one));
    Vec y;
    for (int64_t i = 0; i < xs[0]; ++i) {
      const Vec xi(x.begin() + ptrdiff_t(size_t(i) * per),
                   x.begin() + ptrdiff_t(size_t(i + 1) * per));
      const Vec yi = conv_naive(xi, one, w, m, bias, g);
      y.insert(y.end(), yi.begin(), yi.end());
    }
    return y;
  }
  int64_t c = xs[1], cg = c / g.group, mg = m / g.group;
  const Ints &I = g.in, &O = g.out, &K = g.k;
  Vec y(size_t(m * O[0] * O[1] * O[2]));
  for (int64_t oc = 0; oc < m; ++oc) {
    int64_t grp = oc / mg;
    for (int64_t o0 = 0; o0 < O[0]; ++o0)
      for (int64_t o1 = 0; o1 < O[1]; ++o1)
        for (int64_t o2 = 0; o2 < O[2]; ++o2) {
          double acc = bias ? (*bias)[oc] : 0.0;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t k0 = 0; k0 < K[0]; ++k0)
              for (int64_t k1 = 0; k1 < K[1]; ++k1)
                for (int64_t k2 = 0; k2 < K[2]; ++k2) {
                  int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
                  int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
                  int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                  if (i0 < 0 || i0 >= I[0] || i1 < 0 || i1 >= I[1] || i2 < 0 || i2 >= I[2])
                    continue;
                  int64_t ci = grp * cg + ic;
                  acc += double(x[((ci * I[0] + i0) * I[1] + i1) * I[2] + i2]) *
                         w[(((oc * cg + ic) * K[0] + k0) * K[1] + k1) * K[2] + k2];
                }
          y[((oc * O[0] + o0) * O[1] + o1) * O[2] + o2] = float(acc);
        }
  }
  return y;
}

Vec deconv_naive(const Vec& x, const Shape& xs, const Vec& w, int64_t m, const Vec* bias,
                 const Win& g) {
  int64_t c = xs[1], cg = c / g.group, mg = m / g.group;
  const Ints &I = g.in, &O = g.out, &K = g.k;
  std::vector<double> acc(size_t(m * O[0] * O[1] * O[2]), 0.0);
  for (int64_t ci = 0; ci < c; ++ci) {
    int64_t grp = ci / cg;
    for (int64_t i0 = 0; i0 < I[0]; ++i0)
      for (int64_t i1 = 0; i1 < I[1]; ++i1)
        for (int64_t i2 = 0; i2 < I[2]; ++i2)
          for (int64_t om = 0; om < mg; ++om)
            for (int64_t k0 = 0; k0 < K[0]; ++k0)
              for (int64_t k1 = 0; k1 < K[1]; ++k1)
                for (int64_t k2 = 0; k2 < K[2]; ++k2) {
                  int64_t o0 = i0 * g.s[0] - g.pb[0] + k0 * g.d[0];
                  int64_t o1 = i1 * g.s[1] - g.pb[1] + k1 * g.d[1];
                  int64_t o2 = i2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                  if (o0 < 0 || o0 >= O[0] || o1 < 0 || o1 >= O[1] || o2 < 0 || o2 >= O[2])
                    continue;
                  int64_t oc = grp * mg + om;
                  acc[((oc * O[0] + o0) * O[1] + o1) * O[2] + o2] +=
                      double(x[((ci * I[0] + i0) * I[1] + i1) * I[2] + i2]) *
                      w[(((ci * mg + om) * K[0] + k0) * K[1] + k1) * K[2] + k2];
                }
  }
  Vec y(acc.size());
  int64_t per = O[0] * O[1] * O[2];
  for (size_t i = 0; i < y.size(); ++i) y[i] = float(acc[i] + (bias ? (*bias)[i / per] : 0.0));
  return y;
}

enum class PoolKind { max, avg_include, avg_exclude };

Vec pool_naive(const Vec& x, int64_t c, const Win& g, PoolKind kind) {
  const Ints &I = g.in, &O = g.out, &K = g.k;
  Vec y(size_t(c * O[0] * O[1] * O[2]));
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t o0 = 0; o0 < O[0]; ++o0)
      for (int64_t o1 = 0; o1 < O[1]; ++o1)
        for (int64_t o2 = 0; o2 < O[2]; ++o2) {
          double mx = -std::numeric_limits<double>::infinity(), sum = 0;
          int64_t valid = 0, padded = 0;
          for (int64_t k0 = 0; k0 < K[0]; ++k0)
            for (int64_t k1 = 0; k1 < K[1]; ++k1)
              for (int64_t k2 = 0; k2 < K[2]; ++k2) {
                int64_t i[3] = {o0 * g.s[0] - g.pb[0] + k0 * g.d[0],
                                o1 * g.s[1] - g.pb[1] + k1 * g.d[1],
                                o2 * g.s[2] - g.pb[2] + k2 * g.d[2]};
                bool in = true, in_pad = true;
                for (int j = 0; j < 3; ++j) {
                  in &= i[j] >= 0 && i[j] < I[j];
                  in_pad &= i[j] >= -g.pb[j] && i[j] < I[j] + g.pe[j];
                }
                padded += in_pad;
                if (!in) continue;
                float v = x[((ch * I[0] + i[0]) * I[1] + i[1]) * I[2] + i[2]];
                mx = std::max(mx, double(v));
                sum += v;
                ++valid;
              }
          double r = kind == PoolKind::max           ? mx
                     : kind == PoolKind::avg_exclude ? sum / valid
                                                     : sum / padded;
          y[((ch * O[0] + o0) * O[1] + o1) * O[2] + o2] = float(r);
        }
  return y;
}

/// C[b] = A[b] (MxK) * B[b] (KxN), row-major, batches consecutive.
Vec matmul_naive(const Vec& a, const Vec& b, int64_t batch, int64_t m, int64_t k, int64_t n) {
  Vec c(size_t(batch * m * n));
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t l = 0; l < k; ++l)
          acc += double(a[(bi * m + i) * k + l]) * b[(bi * k + l) * n + j];
        c[(bi * m + i) * n + j] = float(acc);
      }
  return c;
}

Vec transpose2(const Vec& v, int64_t rows, int64_t cols) {
  Vec t(v.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = v[i * cols + j];
  return t;
}

Vec activate(const Vec& v, const ref::Activation& act) {
  Vec r(v);
  for (float& x : r) x = act(x);
  return r;
}

Attrs fused(const std::string& act, float alpha = 0, float beta = 0) {
  Attrs a;
  a.set("activation", act);
  if (alpha != 0) a.set("activation_alpha", alpha);
  if (beta != 0) a.set("activation_beta", beta);
  return a;
}

// --- Conv
// ----------------------------------------------------------------------

struct ConvCase {
  ConvCase(Shape x_, int64_t m_, Ints k_, Ints s_, Ints d_, Ints pads_, int64_t group_ = 1,
           bool bias_ = true)
      : x(std::move(x_)),
        m(m_),
        k(std::move(k_)),
        s(std::move(s_)),
        d(std::move(d_)),
        pads(std::move(pads_)),
        group(group_),
        bias(bias_) {}
  Shape x;
  int64_t m;
  Ints k, s, d, pads;
  int64_t group = 1;
  bool bias = true;
  std::string auto_pad;
};

/// [N, C, spatial...] values in channels-last order [N, spatial..., C], or
/// (back) the other way.
Vec channels_last_order(const Vec& v, const Shape& s, bool back = false) {
  const int64_t n = s[0], c = s[1], sp = shape_numel(s) / std::max<int64_t>(n * c, 1);
  Vec out(v.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < sp; ++p) {
        const size_t plain = size_t((i * c + ch) * sp + p), last = size_t((i * sp + p) * c + ch);
        (back ? out[plain] : out[last]) = back ? v[last] : v[plain];
      }
  return out;
}

/// Makes operand `id` (if present) channels-last: its layout, and its values
/// reordered (an output's are overwritten by the kernel anyway).
void to_channels_last(Net& net, int id) {
  if (id < 0) return;
  net.desc(id).layout = program::Layout::channels_last;
  net.set_data(id, channels_last_order(net.data(id), net.desc(id).shape));
}

/// The operands `ids` as the reference kernels take them (absent for -1),
/// over the net's plain values.
std::vector<TensorRef> reference_inputs(Net& net, const std::vector<int32_t>& ids) {
  std::vector<TensorRef> refs;
  for (int32_t id : ids)
    refs.push_back(id < 0 ? TensorRef{}
                          : TensorRef{DType::f32, net.desc(id).shape,
                                      const_cast<float*>(net.data(id).data())});
  return refs;
}

/// Runs one Conv case through the kernel (made for a cluster of `threads`)
/// and the naive loop; returns the kernel's impl().
std::string check_conv(const ConvCase& cc, const Attrs& extra = {}, bool residual = false,
                       bool alias_residual = false, int threads = 1, bool channels_last = false) {
  Attrs a = extra;
  if (!cc.s.empty()) a.set("strides", cc.s);
  if (!cc.d.empty()) a.set("dilations", cc.d);
  if (!cc.pads.empty()) a.set("pads", cc.pads);
  if (cc.group != 1) a.set("group", cc.group);
  if (!cc.auto_pad.empty()) a.set("auto_pad", cc.auto_pad);
  Shape ws = {cc.m, cc.x[1] / cc.group};
  ws.insert(ws.end(), cc.k.begin(), cc.k.end());
  ref::WindowGeometry g = ref::conv_geometry(a, cc.x, ws);
  Shape ys = {cc.x[0], cc.m};
  ys.insert(ys.end(), g.out.begin(), g.out.end());

  Net net;
  int x = net.input(cc.x), w = net.weight(ws);
  int b = cc.bias ? net.weight({cc.m}) : -1;
  int r = residual ? net.input(ys) : -1;
  int y = net.output(ys);
  std::vector<int32_t> ins = {x, w, b};
  if (residual) ins.push_back(r);
  // The naive loop reads the plain values; a channels-last kernel gets them
  // reordered, and its output is reordered back.
  const Vec xv = net.data(x), rv = residual ? net.data(r) : Vec{};
  if (channels_last)
    for (int t : {x, y, r}) to_channels_last(net, t);
  auto k = net.build("Conv", ins, {y}, a, threads);
  EXPECT_NE(k, nullptr);
  if (!k) return "";
  EXPECT_EQ(k->impl().rfind("onednn:", 0), 0u) << k->impl();
  net.run(*k, alias_residual ? 3 : -1);

  Win wn = win3(cc.x, ys, cc.k, g.stride, g.dilation, g.pad_begin, g.pad_end);
  wn.group = cc.group;
  Vec want = conv_naive(xv, cc.x, net.data(w), cc.m, cc.bias ? &net.data(b) : nullptr, wn);
  if (residual)
    for (size_t i = 0; i < want.size(); ++i) want[i] += rv[i];
  want = activate(want, ref::activation_from_attrs(a));
  expect_near(channels_last ? channels_last_order(net.data(y), ys, true) : net.data(y), want);
  return k->impl();
}

TEST(OneDnnConv, Basic3x3Pad1) { check_conv({{1, 3, 7, 9}, 8, {3, 3}, {}, {}, {1, 1, 1, 1}}); }

TEST(OneDnnConv, Stride2OddSizesAsymmetricPads) {
  check_conv({{1, 5, 13, 11}, 7, {3, 5}, {2, 2}, {}, {0, 1, 2, 1}});
}

TEST(OneDnnConv, Dilation) {
  check_conv({{1, 4, 12, 10}, 6, {3, 3}, {1, 1}, {2, 3}, {2, 3, 2, 3}});
}

TEST(OneDnnConv, Groups) { check_conv({{1, 8, 9, 9}, 6, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 2}); }

TEST(OneDnnConv, Depthwise) {
  check_conv({{1, 16, 10, 10}, 16, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 16});
  check_conv({{1, 16, 11, 11}, 16, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, 16});
}

TEST(OneDnnConv, DepthwiseMultiplier) {
  check_conv({{1, 8, 9, 7}, 16, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 8});
}

TEST(OneDnnConv, PointwiseNoBias) { check_conv({{1, 32, 7, 7}, 24, {1, 1}, {}, {}, {}, 1, false}); }

TEST(OneDnnConv, BlockedChannels) {
  check_conv({{1, 32, 14, 14}, 64, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}});
}

TEST(OneDnnConv, AutoPadSameUpper) {
  ConvCase c{{1, 6, 10, 9}, 8, {3, 3}, {2, 2}, {}, {}};
  c.auto_pad = "SAME_UPPER";
  check_conv(c);
  c.auto_pad = "SAME_LOWER";
  c.k = {4, 4};
  check_conv(c);
}

TEST(OneDnnConv, Conv1D) { check_conv({{1, 5, 17}, 6, {3}, {2}, {}, {1, 1}}); }

TEST(OneDnnConv, Conv3D) {
  check_conv({{1, 3, 5, 6, 7}, 4, {3, 3, 3}, {1, 2, 1}, {}, {1, 1, 1, 1, 1, 1}});
}

TEST(OneDnnConv, FusedReluResidual) {
  check_conv({{1, 16, 8, 8}, 16, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}}, fused("Relu"), true);
  check_conv({{1, 3, 7, 5}, 5, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}}, fused("Relu"), true);
}

TEST(OneDnnConv, FusedResidualInPlace) {
  // The runtime may give the output the residual's buffer.
  check_conv({{1, 16, 8, 8}, 32, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}}, fused("Relu"), true, true);
  check_conv({{1, 3, 7, 5}, 5, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}}, {}, true, true);
  // Grouped: oneDNN keeps the plain layout, the output is the sum's source.
  check_conv({{1, 6, 7, 5}, 4, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 2}, fused("Relu"), true, true);
}

TEST(OneDnnConv, FusedActivations) {
  ConvCase c{{1, 8, 6, 6}, 16, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}};
  check_conv(c, fused("LeakyRelu", 0.1f));
  check_conv(c, fused("Clip", 0.0f, 6.0f));
  check_conv(c, fused("Clip", -0.25f, 0.5f));
  check_conv(c, fused("Sigmoid"));
  check_conv(c, fused("Tanh"));
  check_conv(c, fused("HardSigmoid", 0.2f, 0.5f));
  check_conv(c, fused("HardSwish"));
  check_conv(c, fused("Elu", 0.7f));
  check_conv(c, fused("LeakyRelu", 0.2f), true);
}

bool banded(const std::string& impl) { return impl.find("row bands") != std::string::npos; }

TEST(OneDnnConv, SiluAsNativeEpilogue) {
  // SiLU: the primitive computes without it and a native pass over the output
  // applies it (plain and channels-last, stacks of samples, a residual, a
  // team, pointwise and depthwise).
  for (bool channels_last : {false, true})
    for (int threads : {1, 2})
      for (int64_t n : {1, 3}) {
        SCOPED_TRACE("channels_last " + std::to_string(channels_last) + " threads " +
                     std::to_string(threads) + " n " + std::to_string(n));
        for (const ConvCase& c :
             {ConvCase{{n, 16, 9, 7}, 24, {1, 1}, {}, {}, {}},
              ConvCase{{n, 16, 10, 10}, 16, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, 16},
              ConvCase{{n, 5, 13, 11}, 7, {3, 5}, {2, 2}, {}, {0, 1, 2, 1}}})
          for (bool residual : {false, true}) {
            const std::string impl =
                check_conv(c, fused("shoal.Silu"), residual, false, threads, channels_last);
            EXPECT_NE(impl.find("+native shoal.Silu"), std::string::npos) << impl;
          }
      }
  // Row bands of a team: each band applies it to its rows.
  ForceRowBands all(RowBands::all);
  const std::string impl = check_conv({{1, 16, 12, 10}, 24, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}},
                                      fused("shoal.Silu"), true, false, 2, true);
  EXPECT_TRUE(banded(impl)) << impl;
  EXPECT_NE(impl.find("+native shoal.Silu"), std::string::npos) << impl;
}

// --- Row bands: a team's convolution, one band of output rows per thread --

TEST(OneDnnConvRowBands, EveryGeometryGivesTheLayersResults) {
  // Forced on every convolution: strides, dilations, asymmetric and
  // same-upper pads, groups, 1-D and 3-D, a fused residual
  // (also written in place), on teams of 2 and 3 threads.
  ForceRowBands all(RowBands::all);
  for (int t : {2, 3}) {
    SCOPED_TRACE("threads " + std::to_string(t));
    ConvCase same{{1, 6, 10, 9}, 8, {3, 3}, {2, 2}, {}, {}};
    same.auto_pad = "SAME_UPPER";
    for (const ConvCase& c :
         {ConvCase{{1, 3, 7, 9}, 8, {3, 3}, {}, {}, {1, 1, 1, 1}},
          ConvCase{{1, 5, 13, 11}, 7, {3, 5}, {2, 2}, {}, {0, 1, 2, 1}},
          ConvCase{{1, 4, 12, 10}, 6, {3, 3}, {1, 1}, {2, 3}, {2, 3, 2, 3}},
          ConvCase{{1, 8, 9, 9}, 6, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}, 2},
          ConvCase{{1, 16, 11, 11}, 16, {3, 3}, {2, 2}, {}, {1, 1, 1, 1}, 16},
          ConvCase{{1, 32, 7, 7}, 24, {1, 1}, {}, {}, {}, 1, false},
          ConvCase{{1, 5, 17}, 6, {3}, {2}, {}, {1, 1}},
          ConvCase{{1, 3, 5, 6, 7}, 4, {3, 3, 3}, {1, 2, 1}, {}, {1, 1, 1, 1, 1, 1}},
          ConvCase{{1, 32, 14, 14}, 64, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}}, same}) {
      EXPECT_TRUE(banded(check_conv(c, {}, false, false, t)));
    }
    ConvCase res{{1, 16, 8, 8}, 32, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}};
    EXPECT_TRUE(banded(check_conv(res, fused("Relu"), true, false, t)));
    EXPECT_TRUE(banded(check_conv(res, fused("Relu"), true, true, t)));
    // Channels-last operands of one sample: each band reads and writes its
    // rows in place (the residual too, when it is the output's buffer).
    for (bool alias : {false, true}) {
      EXPECT_TRUE(banded(check_conv(res, fused("Relu"), true, alias, t, true)));
      EXPECT_TRUE(
          banded(check_conv({{1, 32, 14, 14}, 64, {1, 1}, {}, {}, {}}, {}, true, alias, t, true)));
    }
    EXPECT_TRUE(banded(check_conv({{1, 5, 13, 11}, 7, {3, 5}, {2, 2}, {}, {0, 1, 2, 1}}, {}, false,
                                  false, t, true)));
  }
}

TEST(OneDnnConvRowBands, TooFewRowsStayWhole) {
  ForceRowBands all(RowBands::all);
  // One output row: nothing to share.
  EXPECT_FALSE(banded(check_conv({{1, 4, 3, 9}, 8, {3, 3}, {}, {}, {}}, {}, false, false, 2)));
}

TEST(OneDnnConvRowBands, DefaultRule) {
  // By default a team bands Winograd layers whose weights are no larger than
  // their input and pointwise layers with a residual on 14+ rows; a
  // one-thread cluster never bands.
  Attrs wino;
  wino.set(kWinogradAttr, int64_t(1));
  const ConvCase big_maps{{1, 32, 28, 28}, 64, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}};
  const ConvCase small_maps{{1, 64, 7, 7}, 64, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}};
  const std::string w2 = check_conv(big_maps, wino, true, false, 2);
  if (w2.find("wino") == std::string::npos) {
    // oneDNN's f32 Winograd is AVX-512 only: elsewhere the marked layer runs
    // direct, and a direct 3x3 layer is not banded.
    EXPECT_FALSE(__builtin_cpu_supports("avx512f")) << "no Winograd kernel on an AVX-512 CPU";
    EXPECT_FALSE(banded(w2)) << w2;
    return;
  }
  EXPECT_TRUE(banded(w2)) << w2;
  EXPECT_FALSE(banded(check_conv(big_maps, wino, false, false, 1)));
  EXPECT_FALSE(banded(check_conv(small_maps, wino, false, false, 2)));
  EXPECT_FALSE(banded(check_conv(big_maps, {}, false, false, 2)));  // direct
  // Pointwise with a residual on 14+ rows: banded; without, or on 7 rows, not.
  const ConvCase pointwise{{1, 64, 14, 14}, 128, {1, 1}, {}, {}, {}};
  EXPECT_TRUE(banded(check_conv(pointwise, {}, true, false, 2)));
  EXPECT_TRUE(banded(check_conv(pointwise, fused("Relu"), true, true, 2)));
  EXPECT_TRUE(banded(check_conv(pointwise, fused("Relu"), true, true, 2, true)));
  EXPECT_FALSE(banded(check_conv(pointwise, {}, false, false, 2)));
  EXPECT_FALSE(banded(check_conv({{1, 64, 7, 7}, 128, {1, 1}, {}, {}, {}}, {}, true, false, 2)));
  ForceRowBands none(RowBands::none);
  EXPECT_FALSE(banded(check_conv(big_maps, wino, false, false, 2)));
}

TEST(OneDnnConv, WinogradF43WhereWeightsAreSmall) {
  // ResNet's 56x56 64-channel layer: oneDNN would pick F(2,3) for one
  // sample; the kernel walks to F(4,3) (faster there, and the variant stacks
  // and row bands use). Values as the naive loop's.
  Attrs wino;
  wino.set(kWinogradAttr, int64_t(1));
  const std::string impl =
      check_conv({{1, 64, 56, 56}, 64, {3, 3}, {1, 1}, {}, {1, 1, 1, 1}}, wino);
  if (impl.find("wino") == std::string::npos) {  // AVX-512 only: direct elsewhere
    EXPECT_FALSE(__builtin_cpu_supports("avx512f"))
        << "no Winograd kernel on an AVX-512 CPU: " << impl;
    return;
  }
  EXPECT_NE(impl.find("wino_4x3"), std::string::npos) << impl;
}

// --- ConvTranspose
// --------------------------------------------------------------

void check_deconv(const Shape& xs, int64_t m, const Ints& k, Attrs a, int64_t group = 1,
                  bool bias = true) {
  if (group != 1) a.set("group", group);
  Shape ws = {xs[1], m / group};
  ws.insert(ws.end(), k.begin(), k.end());
  ref::WindowGeometry g = ref::conv_transpose_geometry(a, xs, ws);
  Shape ys = {xs[0], m};
  ys.insert(ys.end(), g.out.begin(), g.out.end());
  Net net;
  int x = net.input(xs), w = net.weight(ws);
  int b = bias ? net.weight({m}) : -1;
  int y = net.output(ys);
  auto kern = net.build("ConvTranspose", {x, w, b}, {y}, a);
  ASSERT_NE(kern, nullptr);
  net.run(*kern);
  Win wn = win3(xs, ys, k, g.stride, g.dilation, g.pad_begin, g.pad_end);
  wn.group = group;
  expect_near(net.data(y),
              deconv_naive(net.data(x), xs, net.data(w), m, bias ? &net.data(b) : nullptr, wn));
}

TEST(OneDnnConvTranspose, Stride2Pads) {
  Attrs a;
  a.set("strides", Ints{2, 2});
  a.set("pads", Ints{1, 1, 1, 1});
  check_deconv({1, 8, 5, 6}, 4, {3, 3}, a);
}

TEST(OneDnnConvTranspose, OutputPaddingGroupsDilation) {
  Attrs a;
  a.set("strides", Ints{2, 3});
  a.set("output_padding", Ints{1, 2});
  a.set("pads", Ints{0, 1, 1, 0});
  check_deconv({1, 6, 4, 5}, 4, {3, 4}, a, 2, false);
  Attrs b;
  b.set("dilations", Ints{2, 2});
  check_deconv({1, 3, 5, 5}, 5, {3, 3}, b);
}

TEST(OneDnnConvTranspose, OutputShape) {
  Attrs a;
  a.set("strides", Ints{2, 2});
  a.set("output_shape", Ints{10, 9});
  check_deconv({1, 4, 5, 5}, 3, {3, 3}, a);
}

// --- pools
// ------------------------------------------------------------------------

void check_pool(const std::string& op, const Shape& xs, const Attrs& a, PoolKind kind) {
  ref::WindowGeometry g = ref::pool_geometry(a, xs);
  Shape ys = {xs[0], xs[1]};
  ys.insert(ys.end(), g.out.begin(), g.out.end());
  Net net;
  int x = net.input(xs), y = net.output(ys);
  auto k = net.build(op, {x}, {y}, a);
  ASSERT_NE(k, nullptr);
  net.run(*k);
  Win wn = win3(xs, ys, g.kernel, g.stride, g.dilation, g.pad_begin, g.pad_end);
  expect_near(net.data(y), pool_naive(net.data(x), xs[1], wn, kind));
}

Attrs pool_attrs(Ints k, Ints s, Ints pads, int64_t ceil = 0) {
  Attrs a;
  a.set("kernel_shape", k);
  if (!s.empty()) a.set("strides", s);
  if (!pads.empty()) a.set("pads", pads);
  if (ceil) a.set("ceil_mode", ceil);
  return a;
}

TEST(OneDnnPool, MaxStride2Pad1) {
  check_pool("MaxPool", {1, 5, 11, 12}, pool_attrs({3, 3}, {2, 2}, {1, 1, 1, 1}), PoolKind::max);
}

TEST(OneDnnPool, MaxCeilModeAndDilation) {
  check_pool("MaxPool", {1, 3, 10, 11}, pool_attrs({3, 2}, {2, 2}, {0, 0, 0, 0}, 1), PoolKind::max);
  Attrs a = pool_attrs({2, 3}, {1, 2}, {1, 0, 1, 1});
  a.set("dilations", Ints{2, 2});
  check_pool("MaxPool", {1, 4, 9, 10}, a, PoolKind::max);
}

TEST(OneDnnPool, AverageIncludeExclude) {
  Attrs a = pool_attrs({3, 3}, {2, 2}, {1, 1, 1, 1});
  check_pool("AveragePool", {1, 4, 9, 8}, a, PoolKind::avg_exclude);
  a.set("count_include_pad", int64_t(1));
  check_pool("AveragePool", {1, 4, 9, 8}, a, PoolKind::avg_include);
}

TEST(OneDnnPool, AverageCeilMode) {
  check_pool("AveragePool", {1, 3, 10, 7}, pool_attrs({3, 3}, {2, 2}, {0, 0, 0, 0}, 1),
             PoolKind::avg_exclude);
  // Counting padding with ceil_mode windows past the pads: not oneDNN's.
  Attrs a = pool_attrs({3, 3}, {2, 2}, {0, 0, 0, 0}, 1);
  a.set("count_include_pad", int64_t(1));
  Net net;
  int x = net.input({1, 3, 10, 7}), y = net.output({1, 3, 5, 3});
  EXPECT_EQ(net.build("AveragePool", {x}, {y}, a), nullptr);
}

TEST(OneDnnPool, Pool1DAnd3D) {
  check_pool("MaxPool", {1, 3, 15}, pool_attrs({3}, {2}, {1, 1}), PoolKind::max);
  check_pool("AveragePool", {1, 2, 5, 6, 7}, pool_attrs({2, 2, 3}, {2, 2, 2}, {}),
             PoolKind::avg_exclude);
}

TEST(OneDnnPool, Global) {
  Shape xs = {1, 7, 5, 9};
  Net net;
  int x = net.input(xs), ya = net.output({1, 7, 1, 1}), ym = net.output({1, 7, 1, 1});
  auto ka = net.build("GlobalAveragePool", {x}, {ya});
  ASSERT_NE(ka, nullptr);
  net.run(*ka);
  auto km = net.build("GlobalMaxPool", {x}, {ym});
  ASSERT_NE(km, nullptr);
  net.run(*km);
  Vec avg(7), mx(7, -1e30f);
  for (int c = 0; c < 7; ++c) {
    double s = 0;
    for (int i = 0; i < 45; ++i) {
      s += net.data(x)[c * 45 + i];
      mx[c] = std::max(mx[c], net.data(x)[c * 45 + i]);
    }
    avg[c] = float(s / 45);
  }
  expect_near(net.data(ya), avg);
  expect_near(net.data(ym), mx);
}

// --- Gemm / MatMul
// ------------------------------------------------------------

struct GemmCase {
  GemmCase(int64_t m_, int64_t k_, int64_t n_, bool ta_ = false, bool tb_ = false, float alpha_ = 1,
           float beta_ = 1)
      : m(m_), k(k_), n(n_), ta(ta_), tb(tb_), alpha(alpha_), beta(beta_) {}
  int64_t m, k, n;
  bool ta = false, tb = false;
  float alpha = 1, beta = 1;
  Shape c;  // empty vector + has_c=false: no C
  bool has_c = true;
  bool b_const = true;
  Attrs extra;
  bool residual = false;
};

void check_gemm(const GemmCase& gc) {
  Attrs a = gc.extra;
  if (gc.ta) a.set("transA", int64_t(1));
  if (gc.tb) a.set("transB", int64_t(1));
  if (gc.alpha != 1) a.set("alpha", gc.alpha);
  if (gc.beta != 1) a.set("beta", gc.beta);
  Net net;
  int A = net.input(gc.ta ? Shape{gc.k, gc.m} : Shape{gc.m, gc.k});
  Shape bs = gc.tb ? Shape{gc.n, gc.k} : Shape{gc.k, gc.n};
  int B = gc.b_const ? net.weight(bs) : net.input(bs);
  int C = gc.has_c ? net.weight(gc.c) : -1;
  int R = gc.residual ? net.input({gc.m, gc.n}) : -1;
  int Y = net.output({gc.m, gc.n});
  std::vector<int32_t> ins = {A, B, C};
  if (gc.residual) ins.push_back(R);
  auto k = net.build("Gemm", ins, {Y}, a);
  ASSERT_NE(k, nullptr);
  net.run(*k);
  Vec av = gc.ta ? transpose2(net.data(A), gc.k, gc.m) : net.data(A);
  Vec bv = gc.tb ? transpose2(net.data(B), gc.n, gc.k) : net.data(B);
  Vec want = matmul_naive(av, bv, 1, gc.m, gc.k, gc.n);
  for (int64_t i = 0; i < gc.m; ++i)
    for (int64_t j = 0; j < gc.n; ++j) {
      float& v = want[i * gc.n + j];
      v *= gc.alpha;
      if (gc.has_c) {
        Shape c2(2 - gc.c.size(), 1);
        c2.insert(c2.end(), gc.c.begin(), gc.c.end());
        v += gc.beta * net.data(C)[(c2[0] == 1 ? 0 : i) * c2[1] + (c2[1] == 1 ? 0 : j)];
      }
      if (gc.residual) v += net.data(R)[i * gc.n + j];
    }
  expect_near(net.data(Y), activate(want, ref::activation_from_attrs(a)));
}

TEST(OneDnnGemm, Transposes) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      GemmCase g{5, 37, 19, ta, tb};
      g.c = {19};
      check_gemm(g);
    }
}

TEST(OneDnnGemm, AlphaBetaAndBiasShapes) {
  for (Shape c : {Shape{}, Shape{1}, Shape{13}, Shape{1, 13}, Shape{6, 1}, Shape{6, 13}}) {
    GemmCase g{6, 20, 13, false, true, 0.5f, 2.0f};
    g.c = c;
    check_gemm(g);
  }
  GemmCase nc{3, 64, 100};
  nc.has_c = false;
  check_gemm(nc);
}

TEST(OneDnnGemm, ActivationInput) {
  GemmCase g{4, 16, 8, false, true};
  g.c = {8};
  g.b_const = false;
  check_gemm(g);
  Net net;  // alpha folds into a constant B only
  Attrs a;
  a.set("alpha", 2.0f);
  int A = net.input({4, 16}), B = net.input({16, 8}), Y = net.output({4, 8});
  EXPECT_EQ(net.build("Gemm", {A, B}, {Y}, a), nullptr);
}

TEST(OneDnnGemm, FusedReluResidual) {
  GemmCase g{1, 128, 64, false, true};
  g.c = {64};
  g.extra = fused("Relu");
  g.residual = true;
  check_gemm(g);
  g.extra = fused("Clip", -0.5f, 0.5f);
  check_gemm(g);
}

void check_matmul(const Shape& as, const Shape& bs, bool b_const) {
  Net net;
  int A = net.input(as);
  int B = b_const ? net.weight(bs) : net.input(bs);
  Shape ys(as.begin(), as.end() - 1);
  ys.push_back(bs.back());
  int Y = net.output(ys);
  auto k = net.build("MatMul", {A, B}, {Y});
  ASSERT_NE(k, nullptr);
  net.run(*k);
  int64_t m = as[as.size() - 2], kk = as.back(), n = bs.back();
  Vec want;
  if (bs.size() == 2)
    want = matmul_naive(net.data(A), net.data(B), 1, shape_numel(as) / kk, kk, n);
  else
    want = matmul_naive(net.data(A), net.data(B), shape_numel(as) / (m * kk), m, kk, n);
  expect_near(net.data(Y), want);
}

TEST(OneDnnMatMul, Shapes) {
  check_matmul({7, 33}, {33, 9}, true);
  check_matmul({7, 33}, {33, 9}, false);
  check_matmul({2, 5, 16}, {2, 16, 3}, false);
  check_matmul({2, 3, 5, 8}, {2, 3, 8, 4}, true);
  check_matmul({1, 6, 20}, {20, 10}, true);  // batch folds into M
}

TEST(OneDnnMatMul, BroadcastBatchNotHandled) {
  Net net;
  int A = net.input({2, 5, 4}), B = net.input({1, 4, 3}), Y = net.output({2, 5, 3});
  EXPECT_EQ(net.build("MatMul", {A, B}, {Y}), nullptr);
}

// --- BatchNormalization
// -----------------------------------------------------------

void check_bn(const Shape& xs) {
  int64_t c = xs[1];
  Vec var = random_data(c, 99);
  for (float& v : var) v = std::fabs(v) + 0.1f;
  Net net;
  int x = net.input(xs), s = net.weight({c}), b = net.weight({c}), mean = net.weight({c}),
      v = net.weight({c}, var), y = net.output(xs);
  Attrs a;
  a.set("epsilon", 1e-3f);
  auto k = net.build("BatchNormalization", {x, s, b, mean, v}, {y}, a);
  ASSERT_NE(k, nullptr);
  net.run(*k);
  int64_t inner = shape_numel(xs) / (xs[0] * c);
  Vec want(net.data(x));
  for (size_t i = 0; i < want.size(); ++i) {
    int64_t ch = (int64_t(i) / inner) % c;
    want[i] =
        float((want[i] - net.data(mean)[ch]) / std::sqrt(double(var[ch]) + 1e-3) * net.data(s)[ch] +
              net.data(b)[ch]);
  }
  expect_near(net.data(y), want);
}

TEST(OneDnnBatchNorm, Shapes) {
  check_bn({1, 19, 7, 5});
  check_bn({1, 32, 4, 4});
  check_bn({1, 10});
  check_bn({1, 6, 11});
}

// --- activations
// ---------------------------------------------------------------------

void check_act(const std::string& op, const Attrs& a, const ref::Activation& act,
               std::vector<int32_t> extra = {}, Net* pnet = nullptr) {
  Net own;
  Net& net = pnet ? *pnet : own;
  Shape xs = {1, 3, 17, 5};
  Vec xv = random_data(shape_numel(xs), 7);
  for (float& v : xv) v *= 5;  // reach the clipping ranges
  int x = net.input(xs, xv), y = net.output(xs);
  std::vector<int32_t> ins = {x};
  ins.insert(ins.end(), extra.begin(), extra.end());
  auto k = net.build(op, ins, {y}, a);
  ASSERT_NE(k, nullptr) << op;
  net.run(*k);
  expect_near(net.data(y), activate(xv, act));
}

TEST(OneDnnEltwise, Activations) {
  using ref::activation_of;
  check_act("Relu", {}, activation_of("Relu", 0, 0));
  check_act("Sigmoid", {}, activation_of("Sigmoid", 0, 0));
  check_act("Tanh", {}, activation_of("Tanh", 0, 0));
  check_act("HardSwish", {}, activation_of("HardSwish", 0, 0));
  check_act("LeakyRelu", {}, activation_of("LeakyRelu", 0.01f, 0));
  check_act("Elu", {}, activation_of("Elu", 1.0f, 0));
  check_act("HardSigmoid", {}, activation_of("HardSigmoid", 0.2f, 0.5f));
  Attrs a;
  a.set("alpha", 0.3f);
  check_act("LeakyRelu", a, activation_of("LeakyRelu", 0.3f, 0));
  check_act("Elu", a, activation_of("Elu", 0.3f, 0));
  a.set("beta", 0.4f);
  check_act("HardSigmoid", a, activation_of("HardSigmoid", 0.3f, 0.4f));
}

TEST(OneDnnEltwise, Clip) {
  using ref::activation_of;
  {
    Net net;
    int lo = net.weight({}, {-0.5f}), hi = net.weight({}, {2.0f});
    check_act("Clip", {}, activation_of("Clip", -0.5f, 2.0f), {lo, hi}, &net);
  }
  {
    Net net;  // max only
    int hi = net.weight({}, {1.5f});
    check_act("Clip", {}, activation_of("Clip", -3.4e38f, 1.5f), {-1, hi}, &net);
  }
  Attrs a;  // opset 6: attributes
  a.set("min", 0.0f);
  a.set("max", 6.0f);
  check_act("Clip", a, activation_of("Clip", 0, 6));
  {
    Net net;  // min computed at run time: not for oneDNN
    int lo = net.input({}), x = net.input({4}), y = net.output({4});
    EXPECT_EQ(net.build("Clip", {x, lo}, {y}), nullptr);
  }
}

// --- binary
// ---------------------------------------------------------------------------

float binop(const std::string& op, float a, float b) {
  if (op == "Add") return a + b;
  if (op == "Sub") return a - b;
  if (op == "Mul") return a * b;
  return a / b;
}

/// Broadcast offset of `idx` (an index into ys) into a tensor of shape s.
int64_t bcast_offset(int64_t idx, const Shape& ys, const Shape& s) {
  int64_t off = 0, stride = 1;
  for (size_t i = 0; i < ys.size(); ++i) {
    size_t d = ys.size() - 1 - i;
    int64_t coord = idx % ys[d];
    idx /= ys[d];
    if (i < s.size()) {
      int64_t sd = s[s.size() - 1 - i];
      off += (sd == 1 ? 0 : coord) * stride;
      stride *= sd;
    }
  }
  return off;
}

void check_binary(const std::string& op, const Shape& as, const Shape& bs, const Shape& ys,
                  bool b_const = false) {
  Net net;
  Vec bv = random_data(shape_numel(bs), 5);
  for (float& v : bv) v = v >= 0 ? v + 0.5f : v - 0.5f;  // safe divisors
  int A = net.input(as), B = b_const ? net.weight(bs, bv) : net.input(bs, bv);
  int Y = net.output(ys);
  auto k = net.build(op, {A, B}, {Y});
  ASSERT_NE(k, nullptr) << op << " " << shape_str(as) << " " << shape_str(bs);
  net.run(*k);
  Vec want(size_t(shape_numel(ys)));
  for (int64_t i = 0; i < int64_t(want.size()); ++i)
    want[i] = binop(op, net.data(A)[bcast_offset(i, ys, as)], net.data(B)[bcast_offset(i, ys, bs)]);
  expect_near(net.data(Y), want);
}

TEST(OneDnnBinary, Broadcasts) {
  for (std::string op : {"Add", "Sub", "Mul", "Div"}) {
    check_binary(op, {1, 5, 7, 3}, {1, 5, 7, 3}, {1, 5, 7, 3});
    check_binary(op, {1, 5, 7, 3}, {5, 1, 1}, {1, 5, 7, 3}, true);
    check_binary(op, {1, 5, 7, 3}, {}, {1, 5, 7, 3}, true);
    check_binary(op, {2, 9}, {9}, {2, 9});
  }
  check_binary("Add", {3, 1}, {2, 3, 4}, {2, 3, 4});  // swapped operands
  check_binary("Mul", {}, {4, 5}, {4, 5}, true);
  check_binary("Add", {}, {}, {});
}

TEST(OneDnnBinary, UnsupportedBroadcasts) {
  Net net;
  int a = net.input({3, 1}), b = net.input({1, 4}), y = net.output({3, 4});
  EXPECT_EQ(net.build("Add", {a, b}, {y}), nullptr);  // bidirectional
  int c = net.input({4}), d = net.input({3, 4}), z = net.output({3, 4});
  EXPECT_EQ(net.build("Sub", {c, d}, {z}), nullptr);  // src0 broadcast
}

// --- Softmax
// ---------------------------------------------------------------------

Vec softmax_naive(const Vec& x, int64_t outer, int64_t n, int64_t inner, bool log) {
  Vec y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double mx = -1e300, sum = 0;
      for (int64_t j = 0; j < n; ++j) mx = std::max(mx, double(x[(o * n + j) * inner + i]));
      for (int64_t j = 0; j < n; ++j) sum += std::exp(x[(o * n + j) * inner + i] - mx);
      for (int64_t j = 0; j < n; ++j) {
        double v = x[(o * n + j) * inner + i] - mx;
        y[(o * n + j) * inner + i] = float(log ? v - std::log(sum) : std::exp(v) / sum);
      }
    }
  return y;
}

void check_softmax(const std::string& op, const Shape& xs, int64_t axis, bool coerce) {
  Attrs a;
  a.set("axis", axis);
  if (coerce) a.set("coerce_2d", int64_t(1));
  Net net;
  int x = net.input(xs), y = net.output(xs);
  auto k = net.build(op, {x}, {y}, a);
  ASSERT_NE(k, nullptr);
  net.run(*k);
  int64_t ax = axis < 0 ? axis + int64_t(xs.size()) : axis;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < ax; ++i) outer *= xs[i];
  for (int64_t i = ax + 1; i < int64_t(xs.size()); ++i) inner *= xs[i];
  int64_t n = xs[ax];
  if (coerce) n *= inner, inner = 1;
  expect_near(net.data(y), softmax_naive(net.data(x), outer, n, inner, op == "LogSoftmax"));
}

TEST(OneDnnSoftmax, Axes) {
  for (std::string op : {"Softmax", "LogSoftmax"}) {
    check_softmax(op, {1, 1000}, -1, false);
    check_softmax(op, {1, 5, 7, 3}, 1, false);
    check_softmax(op, {2, 5, 7}, -1, false);
    check_softmax(op, {1, 5, 7, 3}, 1, true);
    check_softmax(op, {2, 3, 4}, 2, true);
  }
}

// --- Concat
// ------------------------------------------------------------------------

void check_concat(const std::vector<Shape>& shapes, int64_t axis, int const_input = -1) {
  Net net;
  std::vector<int32_t> ins;
  Shape ys = shapes[0];
  size_t ax = size_t(axis < 0 ? axis + int64_t(ys.size()) : axis);
  ys[ax] = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    ins.push_back(int(i) == const_input ? net.weight(shapes[i]) : net.input(shapes[i]));
    ys[ax] += shapes[i][ax];
  }
  int y = net.output(ys);
  Attrs a;
  a.set("axis", axis);
  auto k = net.build("Concat", ins, {y}, a);
  ASSERT_NE(k, nullptr);
  net.run(*k);
  int64_t outer = 1;
  for (size_t i = 0; i < ax; ++i) outer *= ys[i];
  Vec want;
  for (int64_t o = 0; o < outer; ++o)
    for (size_t i = 0; i < shapes.size(); ++i) {
      int64_t chunk = shape_numel(shapes[i]) / outer;
      const Vec& d = net.data(ins[i]);
      want.insert(want.end(), d.begin() + o * chunk, d.begin() + (o + 1) * chunk);
    }
  expect_near(net.data(y), want);
}

TEST(OneDnnConcat, Axes) {
  check_concat({{1, 3, 4, 5}, {1, 6, 4, 5}}, 1);
  check_concat({{1, 3, 4, 5}, {1, 3, 4, 2}, {1, 3, 4, 1}}, -1, 1);
  check_concat({{2, 7}, {5, 7}}, 0);
}

// --- context, dispatch, errors
// -----------------------------------------------------

TEST(OneDnnContext, PackedWeightsSharedAcrossKernels) {
  Net net;
  int x = net.input({1, 32, 8, 8}), w = net.weight({64, 32, 3, 3}), y = net.output({1, 64, 8, 8});
  Attrs a;
  a.set("pads", Ints{1, 1, 1, 1});
  auto k1 = net.build("Conv", {x, w, -1}, {y}, a);
  ASSERT_NE(k1, nullptr);
  size_t bytes = net.ctx().packed_bytes();
  auto k2 = net.build("Conv", {x, w, -1}, {y}, a);  // a second cluster
  ASSERT_NE(k2, nullptr);
  EXPECT_EQ(net.ctx().packed_bytes(), bytes);
  net.run(*k2);
  Vec first = net.data(y);
  net.run(*k1);
  expect_near(net.data(y), first, 0);
  int calls = 0;
  auto make = [&] {
    ++calls;
    return dnnl::memory(
        dnnl::memory::desc({4}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::a),
        net.ctx().engine);
  };
  auto m1 = net.ctx().packed_weight("k", make);
  auto m2 = net.ctx().packed_weight("k", make);
  EXPECT_EQ(m1, m2);
  EXPECT_EQ(calls, 1);
}

TEST(OneDnnContext, ConcurrentClusters) {
  // Two clusters: one kernel each, shared packed weights, one thread and one
  // stream each, running at the same time.
  Net net;
  int x = net.input({1, 16, 12, 12}), w = net.weight({32, 16, 3, 3}), b = net.weight({32}),
      y = net.output({1, 32, 12, 12});
  Attrs a = fused("Relu");
  a.set("pads", Ints{1, 1, 1, 1});
  std::unique_ptr<device::Kernel> k[2] = {net.build("Conv", {x, w, b}, {y}, a),
                                          net.build("Conv", {x, w, b}, {y}, a)};
  ASSERT_NE(k[0], nullptr);
  ASSERT_NE(k[1], nullptr);
  net.run(*k[0]);
  const Vec want = net.data(y);
  Vec got[2] = {Vec(want.size()), Vec(want.size())};
  std::vector<std::thread> threads;
  for (int c = 0; c < 2; ++c)
    threads.emplace_back([&, c] {
      dnnl::stream stream(net.ctx().engine);
      device::ExecContext ec;
      ec.cluster = c;
      ec.backend_state = &stream;
      std::vector<void*> in = {net.ptr(x), net.ptr(w), net.ptr(b)};
      std::vector<void*> out = {got[c].data()};
      for (int it = 0; it < 20; ++it) k[c]->execute(ec, in, out);
    });
  for (auto& t : threads) t.join();
  expect_near(got[0], want, 0);
  expect_near(got[1], want, 0);
}

TEST(OneDnnDispatch, DeclinesWhatItCannotDo) {
  Net net;
  int x = net.input({1, 4}), y = net.output({1, 4});
  EXPECT_EQ(net.build("Identity", {x}, {y}), nullptr);
  EXPECT_EQ(net.build("Reshape", {x}, {y}), nullptr);
  net.desc(x).dtype = DType::f64;
  EXPECT_EQ(net.build("Relu", {x}, {y}), nullptr);
  net.desc(x).dtype = DType::f32;
  net.desc(x).layout = program::Layout::packed;
  EXPECT_EQ(net.build("Relu", {x}, {y}), nullptr);
  // Conv whose weight is computed at run time.
  int cx = net.input({1, 2, 5, 5}), cw = net.input({3, 2, 3, 3}), cy = net.output({1, 3, 3, 3});
  EXPECT_EQ(net.build("Conv", {cx, cw}, {cy}), nullptr);
}

TEST(OneDnnDispatch, BadProgramsThrow) {
  Net net;
  int x = net.input({1, 2, 5, 5}), w = net.weight({3, 2, 3, 3});
  int y = net.output({1, 3, 4, 4});  // wrong: the geometry gives 3x3
  EXPECT_THROW(net.build("Conv", {x, w}, {y}), Error);
  int y2 = net.output({1, 3, 3, 3});
  net.desc(w).offset = 1 << 20;  // outside the weight section
  EXPECT_THROW(net.build("Conv", {x, w}, {y2}), Error);
}

TEST(OneDnnDispatch, ExecuteWithoutStreamThrows) {
  Net net;
  int x = net.input({4}), y = net.output({4});
  auto k = net.build("Relu", {x}, {y});
  ASSERT_NE(k, nullptr);
  device::ExecContext ec;
  std::vector<void*> in = {const_cast<float*>(net.data(x).data())};
  std::vector<void*> out = {const_cast<float*>(net.data(y).data())};
  EXPECT_THROW(k->execute(ec, in, out), Error);
}

// --- against the operator table's reference kernels
// --------------------------------

struct RefCase {
  std::string op;
  std::vector<std::optional<Shape>> inputs;  // nullopt: absent
  std::vector<bool> weights;                 // which inputs are constants
  Attrs attrs;
};

/// Runs the oneDNN kernel and the op table's reference kernel on the same
/// operands, with the output shape from the op table's shape inference.
void check_vs_reference(const RefCase& c) {
  SCOPED_TRACE(c.op);
  const ops::OpSpec* spec = ops::find_op(c.op);
  ASSERT_NE(spec, nullptr);
  Net net;
  std::vector<int32_t> ids;
  std::vector<HostTensor> consts;
  consts.reserve(c.inputs.size());
  std::vector<ops::ValueInfo> infos;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    ops::ValueInfo v;
    if (!c.inputs[i]) {
      v.present = false;
      ids.push_back(-1);
      infos.push_back(v);
      continue;
    }
    const Shape& s = *c.inputs[i];
    bool w = i < c.weights.size() && c.weights[i];
    ids.push_back(w ? net.weight(s) : net.input(s));
    v.dtype = DType::f32;
    v.shape = s;
    if (w) {
      consts.emplace_back(DType::f32, s);
      std::memcpy(consts.back().data(), net.data(ids.back()).data(), consts.back().bytes());
      v.constant = &consts.back();
    }
    infos.push_back(v);
  }
  std::vector<ops::TypeShape> outs = spec->infer(c.attrs, infos);
  ASSERT_EQ(outs.size(), c.op == "MaxPool" ? 2u : 1u);  // MaxPool: Y and the optional Indices
  outs.resize(1);                                       // the kernels compute Y
  int y = net.output(outs[0].shape);
  auto k = net.build(c.op, ids, {y}, c.attrs);
  ASSERT_NE(k, nullptr);
  net.run(*k);

  const std::vector<TensorRef> rin = reference_inputs(net, ids);
  Vec want(size_t(shape_numel(outs[0].shape)));
  std::vector<TensorRef> rout = {{DType::f32, outs[0].shape, want.data()}};
  spec->reference(c.attrs, rin, rout);
  expect_near(net.data(y), want);
}

TEST(OneDnnVsReference, Ops) {
  Attrs conv = fused("Relu");
  conv.set("strides", Ints{2, 1});
  conv.set("pads", Ints{1, 0, 2, 1});
  conv.set("group", int64_t(2));
  Shape y1 = {1, 8, 5, 7};  // conv output: (9+3-3)/2+1, (7+1-2)+1
  check_vs_reference({"Conv",
                      {Shape{1, 6, 9, 7}, Shape{8, 3, 3, 2}, Shape{8}, y1},
                      {false, true, true, false},
                      conv});
  Attrs same;
  same.set("auto_pad", std::string("SAME_LOWER"));
  same.set("dilations", Ints{2, 2});
  same.set("strides", Ints{2, 2});
  same.set("activation", std::string("HardSigmoid"));
  check_vs_reference({"Conv", {Shape{1, 4, 10, 11}, Shape{5, 4, 3, 3}}, {false, true}, same});
  Attrs dw = fused("Clip", 0.0f, 6.0f);
  dw.set("group", int64_t(16));
  dw.set("pads", Ints{1, 1, 1, 1});
  check_vs_reference(
      {"Conv", {Shape{1, 16, 7, 7}, Shape{16, 1, 3, 3}, Shape{16}}, {false, true, true}, dw});
  Attrs tr;
  tr.set("strides", Ints{2, 2});
  tr.set("output_padding", Ints{1, 0});
  tr.set("pads", Ints{1, 1, 0, 1});
  tr.set("group", int64_t(2));
  check_vs_reference(
      {"ConvTranspose", {Shape{1, 4, 5, 6}, Shape{4, 3, 3, 3}, Shape{6}}, {false, true, true}, tr});
  for (int64_t include : {0, 1})
    for (int64_t ceil : {0, 1}) {
      // (counting padding with ceil_mode: declined, see AverageCeilMode)
      if (include && ceil) continue;
      Attrs p = pool_attrs({3, 3}, {2, 2}, {1, 1, 1, 1}, ceil);
      p.set("count_include_pad", include);
      check_vs_reference({"AveragePool", {Shape{1, 3, 10, 9}}, {}, p});
      if (include == 0) check_vs_reference({"MaxPool", {Shape{1, 3, 10, 9}}, {}, p});
    }
  check_vs_reference({"GlobalAveragePool", {Shape{1, 5, 4, 3}}, {}, {}});
  Attrs g;
  g.set("transB", int64_t(1));
  g.set("alpha", 0.5f);
  g.set("beta", 2.0f);
  g.set("activation", std::string("Tanh"));
  check_vs_reference({"Gemm", {Shape{3, 20}, Shape{7, 20}, Shape{3, 1}}, {false, true, true}, g});
  check_vs_reference({"MatMul", {Shape{2, 3, 8}, Shape{8, 5}}, {false, true}, fused("Elu")});
  check_vs_reference({"MatMul", {Shape{2, 3, 8}, Shape{2, 8, 5}}, {}, {}});
  for (std::string op : {"Relu", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "LeakyRelu", "Elu"})
    check_vs_reference({op, {Shape{2, 3, 4}}, {}, {}});
  check_vs_reference({"Clip", {Shape{2, 9}, Shape{}, Shape{}}, {false, true, true}, {}});
  for (std::string op : {"Add", "Sub", "Mul", "Div"})
    check_vs_reference({op, {Shape{1, 4, 3, 2}, Shape{4, 1, 1}}, {}, {}});
  Attrs sm;
  sm.set("axis", int64_t(1));
  sm.set("coerce_2d", int64_t(1));
  check_vs_reference({"Softmax", {Shape{1, 3, 4, 5}}, {}, sm});
  check_vs_reference({"LogSoftmax", {Shape{1, 3, 4, 5}}, {}, sm});
  Attrs cat;
  cat.set("axis", int64_t(-2));
  check_vs_reference({"Concat", {Shape{1, 2, 3}, Shape{1, 4, 3}}, {false, true}, cat});
}

// --- shoal.PointwiseDepthwise: the 1x1 and depthwise pair, in bands of rows --

/// Runs the fused pair on the kernel (plain or channels-last operands, a
/// cluster of `threads`) and on the reference kernel; returns the impl().
std::string check_pwdw(int64_t n, int64_t c, int64_t m, int64_t h, int64_t k, int64_t s,
                       const std::string& pw_act, const std::string& dw_act, int threads,
                       bool channels_last) {
  Attrs a = dw_act.empty() ? Attrs{} : fused(dw_act);
  if (!pw_act.empty()) {
    a.set("pw_activation", pw_act);
    if (pw_act == "Clip") {
      a.set("pw_activation_alpha", 0.0f);
      a.set("pw_activation_beta", 6.0f);
    }
  }
  a.set("group", m);
  a.set("kernel_shape", Ints{k, k});
  a.set("strides", Ints{s, s});
  a.set("pads", Ints{k / 2, k / 2, k / 2, k / 2});
  const Shape xs = {n, c, h, h + 3};
  const Shape w1 = {m, c, 1, 1}, w2 = {m, 1, k, k};
  Net net;
  int x = net.input(xs);
  std::vector<int32_t> ids = {x, net.weight(w1), net.weight({m}), net.weight(w2), net.weight({m})};
  std::vector<ops::ValueInfo> infos;
  for (int32_t id : ids) infos.push_back({DType::f32, net.desc(id).shape});
  const ops::OpSpec* spec = ops::find_op("shoal.PointwiseDepthwise");
  EXPECT_NE(spec, nullptr);
  if (!spec) return "";
  const Shape ys = spec->infer(a, infos).at(0).shape;
  int y = net.output(ys);
  Vec want(size_t(shape_numel(ys)));
  std::vector<TensorRef> rout = {{DType::f32, ys, want.data()}};
  spec->reference(a, reference_inputs(net, ids), rout);
  if (channels_last)
    for (int t : {x, y}) to_channels_last(net, t);
  auto kernel = net.build("shoal.PointwiseDepthwise", ids, {y}, a, threads);
  EXPECT_NE(kernel, nullptr);
  if (!kernel) return "";
  net.run(*kernel);
  expect_near(channels_last ? channels_last_order(net.data(y), ys, true) : net.data(y), want);
  return kernel->impl();
}

TEST(OneDnnPointwiseDepthwise, MatchesTheReference) {
  // One channels-last sample on one thread runs in bands (several for these
  // sizes: a band holds about 768 KiB of expanded rows); stacks, plain
  // layouts and teams run the pair whole. Strides 1 and 2, kernels 3 and 5,
  // ReLU6, SiLU (native) and none around the expansion.
  auto bands = [](const std::string& impl) { return impl.find(" bands") != std::string::npos; };
  for (bool cl : {true, false})
    for (int64_t s : {1, 2})
      for (int64_t k : {3, 5}) {
        SCOPED_TRACE("channels_last " + std::to_string(cl) + " stride " + std::to_string(s) +
                     " kernel " + std::to_string(k));
        const std::string one = check_pwdw(1, 8, 96, 45, k, s, "Clip", "Clip", 1, cl);
        EXPECT_EQ(bands(one), cl) << one;
        check_pwdw(1, 8, 96, 45, k, s, "shoal.Silu", "shoal.Silu", 1, cl);
        check_pwdw(2, 8, 32, 13, k, s, "", "Relu", 1, cl);
        EXPECT_FALSE(bands(check_pwdw(1, 8, 96, 45, k, s, "Clip", "", 2, cl)));
      }
}

// --- Conv with a channel scale (input 4): the weights scaled per sample ------

/// Runs Conv(x * s) (+ residual, activation) on the kernel and on the
/// reference kernel; `scale_batch` is s's dim 0 (n, or 1: one scale for all
/// samples). Returns the impl().
std::string check_scaled_conv(int64_t n, int64_t c, int64_t m, int64_t k, int64_t stride,
                              const std::string& act, bool residual, int64_t scale_batch,
                              int threads, bool channels_last) {
  Attrs a = act.empty() ? Attrs{} : fused(act);
  a.set("kernel_shape", Ints{k, k});
  a.set("strides", Ints{stride, stride});
  a.set("pads", Ints{k / 2, k / 2, k / 2, k / 2});
  const Shape xs = {n, c, 19, 23};
  Net net;
  const int x = net.input(xs);
  Vec sv = random_data(scale_batch * c, 77);
  for (float& v : sv) v = 1.0f / (1.0f + std::exp(-4.0f * v));  // a sigmoid's range
  const int sc = net.input({scale_batch, c, 1, 1}, sv);
  const int w = net.weight({m, c, k, k}), b = net.weight({m});
  const ops::OpSpec* spec = ops::find_op("Conv");
  EXPECT_NE(spec, nullptr);
  if (!spec) return "";
  std::vector<ops::ValueInfo> infos = {
      {DType::f32, xs}, {DType::f32, {m, c, k, k}}, {DType::f32, {m}}};
  const Shape ys = spec->infer(a, infos).at(0).shape;
  const int r = residual ? net.input(ys) : -1;
  const std::vector<int32_t> ids = {x, w, b, r, sc};
  const int y = net.output(ys);
  const std::vector<TensorRef> rin = reference_inputs(net, ids);
  Vec want(size_t(shape_numel(ys)));
  std::vector<TensorRef> rout = {{DType::f32, ys, want.data()}};
  spec->reference(a, rin, rout);
  // The same through an explicit Mul: the reference's channel scale is
  // x * s then the convolution.
  Vec scaled = net.data(x);
  const int64_t sp = 19 * 23;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t p = 0; p < sp; ++p)
        scaled[size_t((i * c + ch) * sp + p)] *= sv[size_t((scale_batch == 1 ? 0 : i * c) + ch)];
  Vec unfused(want.size());
  std::vector<TensorRef> rin2 = {{DType::f32, xs, scaled.data()}, rin[1], rin[2], rin[3]};
  std::vector<TensorRef> rout2 = {{DType::f32, ys, unfused.data()}};
  spec->reference(a, rin2, rout2);
  EXPECT_EQ(unfused, want);
  if (channels_last)
    for (int t : {x, y, r}) to_channels_last(net, t);
  auto kernel = net.build("Conv", ids, {y}, a, threads);
  EXPECT_NE(kernel, nullptr);
  if (!kernel) return "";
  net.run(*kernel);
  expect_near(channels_last ? channels_last_order(net.data(y), ys, true) : net.data(y), want);
  net.run(*kernel);  // again: the scaled weights are rewritten, never compounded
  expect_near(channels_last ? channels_last_order(net.data(y), ys, true) : net.data(y), want);
  return kernel->impl();
}

TEST(OneDnnConv, ChannelScaleScalesTheWeights) {
  // 1x1 and 3x3 (channel counts that oneDNN pads to its blocks), strides 1
  // and 2, stacks with a scale per sample or one for all, a residual, SiLU
  // (native epilogue) and Clip, teams, both layouts.
  for (bool cl : {true, false})
    for (int64_t k : {1, 3}) {
      SCOPED_TRACE("channels_last " + std::to_string(cl) + " kernel " + std::to_string(k));
      const std::string impl = check_scaled_conv(1, 24, 40, k, 1, "", false, 1, 1, cl);
      EXPECT_NE(impl.find("+scaled weights"), std::string::npos) << impl;
      check_scaled_conv(3, 24, 40, k, 2, "shoal.Silu", false, 3, 1, cl);
      check_scaled_conv(2, 20, 16, k, 1, "Clip", true, 1, 1, cl);
      check_scaled_conv(2, 32, 24, k, 1, "", true, 2, 2, cl);
    }
}

}  // namespace
}  // namespace shoal::cpu
