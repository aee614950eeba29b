// shoal's native CPU kernels against the op table's reference kernels: each
// test builds a one-instruction program by hand (operands in plain or
// channels-last layout), runs the native kernel and the reference kernel
// (which converts channels-last operands itself) and compares. The loop
// tables of every ISA this CPU runs are checked against scalar formulas,
// NaN and extreme inputs included.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/native/loops.hpp"
#include "backends/cpu/native/native.hpp"
#include "backends/cpu/reference_kernel.hpp"
#include "one_instruction.hpp"
#include "reference/geometry.hpp"

namespace shoal::cpu {
namespace {

using program::Layout;
using program::Storage;
using program::TensorDesc;

/// A one-instruction program with its tensors' bytes.
class OneOp {
 public:
  int input(const Shape& s, Layout layout = Layout::plain, float scale = 1.0f) {
    std::mt19937 gen(seed_++);
    std::uniform_real_distribution<float> dist(-scale, scale);
    std::vector<float> v(size_t(shape_numel(s)));
    for (float& x : v) x = dist(gen);
    return add(s, Storage::activation, layout, DType::f32, bytes_of(v));
  }
  int weight(const Shape& s, const std::vector<float>& v) {
    return add(s, Storage::weight, Layout::plain, DType::f32, bytes_of(v));
  }
  /// Sets float element i (in memory order) of tensor id.
  void set(int id, size_t i, float v) { std::memcpy(raw_[size_t(id)].data() + i * 4, &v, 4); }
  int ints(const std::vector<int64_t>& v) {
    std::vector<uint8_t> b(v.size() * 8);
    std::memcpy(b.data(), v.data(), b.size());
    return add({int64_t(v.size())}, Storage::weight, Layout::plain, DType::i64, b);
  }
  int scalar_int(int64_t v) {
    std::vector<uint8_t> b(8);
    std::memcpy(b.data(), &v, 8);
    return add({}, Storage::weight, Layout::plain, DType::i64, b);
  }
  int output(const Shape& s, Layout layout = Layout::plain) {
    return add(s, Storage::activation, layout, DType::f32,
               std::vector<uint8_t>(size_t(shape_numel(s)) * 4, 0xff));
  }
  /// Runs the native kernel (which must exist) and the reference kernel;
  /// expects every output equal within `tol` (relative to 1 + |ref|).
  void compare(const std::string& op, std::vector<int32_t> ins, std::vector<int32_t> outs,
               Attrs attrs = {}, int threads = 1, double tol = 2e-6) {
    prog_.instructions = {
        test_util::one_instruction(op, std::move(ins), std::move(outs), std::move(attrs))};
    finish_weights();
    const program::Instruction& in = prog_.instructions[0];
    onednn::OpContext oc{in, prog_, ctx_, threads};
    auto fast = native::make_native_kernel(oc);
    ASSERT_TRUE(fast) << op << ": no native kernel";
    EXPECT_EQ(fast->impl().rfind("native:", 0), 0u);
    auto ref = make_reference_kernel(in, prog_, prog_.weights);
    auto got = run(*fast, threads), want = run(*ref, 1);
    for (size_t o = 0; o < got.size(); ++o) {
      ASSERT_EQ(got[o].size(), want[o].size());
      for (size_t k = 0; k < got[o].size(); ++k) {
        const float g = got[o][k], w = want[o][k];
        if (std::isnan(w)) {
          EXPECT_TRUE(std::isnan(g)) << op << " output " << o << " element " << k;
          continue;
        }
        ASSERT_NEAR(g, w, tol * (1 + std::fabs(w))) << op << " output " << o << " element " << k;
      }
    }
  }

 private:
  static std::vector<uint8_t> bytes_of(const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
  }
  int add(const Shape& s, Storage st, Layout layout, DType dt, std::vector<uint8_t> bytes) {
    TensorDesc t;
    t.name = "t" + std::to_string(prog_.tensors.size());
    t.shape = s;
    t.storage = st;
    t.layout = layout;
    t.dtype = dt;
    t.bytes = bytes.size();
    prog_.tensors.push_back(t);
    raw_.push_back(std::move(bytes));
    return int(prog_.tensors.size()) - 1;
  }
  void finish_weights() {
    auto& w = prog_.owned_weights;
    w.clear();
    for (size_t id = 0; id < prog_.tensors.size(); ++id) {
      TensorDesc& t = prog_.tensors[id];
      if (t.storage != Storage::weight) continue;
      w.resize((w.size() + 63) / 64 * 64);
      t.offset = w.size();
      w.insert(w.end(), raw_[id].begin(), raw_[id].end());
    }
    prog_.weights = w.data();
    prog_.weights_bytes = w.size();
  }
  std::vector<std::vector<float>> run(device::Kernel& k, int threads) {
    const program::Instruction& ins = prog_.instructions[0];
    std::vector<std::vector<uint8_t>> bufs = raw_;
    std::vector<void*> in, out;
    for (int32_t id : ins.inputs) {
      const TensorDesc& t = prog_.tensors[size_t(id)];
      in.push_back(t.storage == Storage::weight ? const_cast<uint8_t*>(prog_.weights) + t.offset
                                                : static_cast<void*>(bufs[size_t(id)].data()));
    }
    for (int32_t id : ins.outputs) out.push_back(bufs[size_t(id)].data());
    device::ExecContext ec;
    ec.threads = threads;
    k.execute(ec, in, out);
    std::vector<std::vector<float>> res;
    for (int32_t id : ins.outputs) {
      // Compared in plain order whatever the output's layout.
      const TensorDesc& t = prog_.tensors[size_t(id)];
      std::vector<float> v(size_t(shape_numel(t.shape)));
      std::memcpy(v.data(), bufs[size_t(id)].data(), v.size() * 4);
      if (t.layout == Layout::channels_last) v = to_plain(t.shape, v);
      res.push_back(v);
    }
    return res;
  }
  static std::vector<float> to_plain(const Shape& s, const std::vector<float>& v) {
    const int64_t n = s[0], c = s[1], sp = shape_numel(s) / (n * c);
    std::vector<float> p(v.size());
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t i = 0; i < sp; ++i)
          p[size_t((b * c + ch) * sp + i)] = v[size_t((b * sp + i) * c + ch)];
    return p;
  }

  program::ProgramData prog_;
  std::vector<std::vector<uint8_t>> raw_;
  OneDnnContext ctx_;
  uint32_t seed_ = 7;
};

constexpr Layout P = Layout::plain, L = Layout::channels_last;

TEST(NativeKernels, UnaryOpsInBothLayouts) {
  for (const char* op : {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu",
                         "shoal.Silu", "Gelu", "Erf", "Exp", "Neg", "Abs", "Floor", "Ceil"})
    for (Layout lx : {P, L})
      for (Layout ly : {P, L}) {
        OneOp t;
        const Shape s{2, 5, 7, 9};
        int x = t.input(s, lx, 6.0f), y = t.output(s, ly);
        t.compare(op, {x}, {y});
      }
  OneOp t;
  int x = t.input({3, 40000}, P, 2.0f), y = t.output({3, 40000});
  t.compare("Sigmoid", {x}, {y}, {}, 2);  // split over a team
  OneOp c;
  int cx = c.input({4, 9}, P, 3.0f), lo = c.weight({}, {-0.5f}), hi = c.weight({}, {1.5f});
  c.compare("Clip", {cx, lo, hi}, {c.output({4, 9})});
}

TEST(NativeKernels, BinaryBroadcastingAcrossLayouts) {
  struct Case {
    Shape a, b;
    Layout la, lb, ly;
  };
  const Case cases[] = {
      {{2, 6, 5, 7}, {1, 6, 1, 1}, L, L, L},  // squeeze-excitation scale
      {{2, 6, 5, 7}, {1, 6, 1, 1}, P, P, P}, {{2, 6, 5, 7}, {2, 6, 1, 1}, L, P, L},
      {{2, 6, 5, 7}, {6, 1, 1}, L, P, P},    {{2, 6, 5, 7}, {7}, L, P, L},
      {{1}, {2, 6, 5, 7}, P, L, L},  // the broadcast operand first
      {{2, 6, 5, 7}, {2, 6, 5, 7}, L, P, P}, {{3, 1, 4}, {5, 1}, P, P, P},  // both broadcast
  };
  for (const Case& k : cases)
    for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "PRelu"}) {
      Shape ys = k.a.size() >= k.b.size() ? k.a : k.b;
      if (k.a == Shape{3, 1, 4}) ys = {3, 5, 4};
      if (std::string(op) == "PRelu" && ys != k.a) continue;  // slope broadcasts to X
      OneOp t;
      const bool pow = std::string(op) == "Pow";
      int a = t.input(k.a, k.la, pow ? 1.0f : 3.0f), b = t.input(k.b, k.lb, 2.0f);
      if (pow) {  // positive bases
        OneOp p;
        a = p.weight(k.a, std::vector<float>(size_t(shape_numel(k.a)), 1.7f));
        b = p.input(k.b, k.lb, 2.0f);
        p.compare(op, {a, b}, {p.output(ys, ys.size() == 4 ? k.ly : P)}, {}, 1, 1e-5);
        continue;
      }
      t.compare(op, {a, b}, {t.output(ys, ys.size() == 4 ? k.ly : P)});
    }
  OneOp t;
  int a = t.input({1, 64, 48, 48}, L), b = t.input({1, 64, 1, 1}, L);
  t.compare("Mul", {a, b}, {t.output({1, 64, 48, 48}, L)}, {}, 2);
}

TEST(NativeKernels, BatchNormalizationInEveryLayoutPair) {
  const std::vector<float> g{0.5f, 2.0f, -1.0f, 1.5f, 0.7f, 1.1f},
      b{0.1f, -0.2f, 0.3f, 0.0f, 1.0f, -1.0f}, m{0.2f, -0.4f, 1.0f, 0.0f, 0.5f, 0.3f},
      v{1.0f, 0.25f, 2.0f, 0.5f, 0.1f, 3.0f};
  for (Layout lx : {P, L})
    for (Layout ly : {P, L})
      for (const char* act : {"", "Relu", "Sigmoid"}) {
        OneOp t;
        const Shape s{2, 6, 5, 7};
        int x = t.input(s, lx, 3.0f);
        Attrs a;
        a.set("epsilon", 1e-3f);
        if (*act) a.set("activation", std::string(act));
        t.compare("BatchNormalization",
                  {x, t.weight({6}, g), t.weight({6}, b), t.weight({6}, m), t.weight({6}, v)},
                  {t.output(s, ly)}, a, 1, 1e-5);
      }
  OneOp t;  // over a team, and a 3-D input
  int x = t.input({4, 6, 300}, P);
  t.compare("BatchNormalization",
            {x, t.weight({6}, g), t.weight({6}, b), t.weight({6}, m), t.weight({6}, v)},
            {t.output({4, 6, 300})}, {}, 2, 1e-5);
}

TEST(NativeKernels, ResizeEveryModeInEveryLayoutPair) {
  struct Case {
    const char* mode;
    const char* coord;
    Shape out;                  // by sizes, or
    std::vector<float> scales;  // by scales when not empty
  };
  const Case cases[] = {
      {"nearest", "asymmetric", {}, {1, 1, 2, 2}},
      {"nearest", "half_pixel", {2, 6, 5, 17}, {}},
      {"linear", "half_pixel", {2, 6, 14, 18}, {}},
      {"linear", "pytorch_half_pixel", {}, {1, 1, 0.5f, 0.6f}},
      {"linear", "align_corners", {2, 6, 13, 4}, {}},
      {"cubic", "half_pixel", {2, 6, 12, 15}, {}},
      {"cubic", "align_corners", {}, {1, 1, 1.5f, 0.5f}},
      {"linear", "tf_crop_and_resize", {2, 6, 9, 10}, {}},
  };
  for (const Case& k : cases)
    for (Layout lx : {P, L})
      for (Layout ly : {P, L}) {
        OneOp t;
        const Shape s{2, 6, 7, 9};
        int x = t.input(s, lx, 3.0f);
        Shape ys = k.out;
        if (!k.scales.empty())
          for (size_t d = 0; d < 4; ++d) ys.push_back(int64_t(float(s[d]) * k.scales[d]));
        const bool crop = std::string(k.coord) == "tf_crop_and_resize";
        int roi = crop ? t.weight({8}, {0, 0, 0.2f, -0.1f, 1, 1, 0.9f, 1.2f}) : t.weight({0}, {});
        int scales = t.weight({int64_t(k.scales.size())}, k.scales);
        std::vector<int32_t> ins = {x, roi, scales};
        if (k.scales.empty()) ins.push_back(t.ints(k.out));
        Attrs a;
        a.set("mode", std::string(k.mode));
        a.set("coordinate_transformation_mode", std::string(k.coord));
        if (crop) a.set("extrapolation_value", 7.5f);
        SCOPED_TRACE(std::string(k.mode) + " " + k.coord + " lx " + std::to_string(int(lx)) +
                     " ly " + std::to_string(int(ly)));
        t.compare("Resize", ins, {t.output(ys, ly)}, a, lx == L ? 2 : 1, 1e-5);
      }
}

TEST(NativeKernels, ConcatWithAffineInEveryLayoutPair) {
  for (Layout la : {P, L})
    for (Layout ly : {P, L})
      for (const char* act : {"", "Relu", "Clip"}) {
        OneOp t;
        int a = t.input({2, 3, 5, 4}, la, 2.0f), b = t.input({2, 5, 5, 4}, L, 2.0f);
        Attrs at;
        at.set("axis", int64_t(1));
        at.set("affine_scale", std::vector<float>{0.5f, 2, -1, 1.5f, 0.7f, 1.1f, 3, 0.2f});
        at.set("affine_shift", std::vector<float>{0.1f, -0.2f, 0.3f, 0, 1, -1, 0.4f, 0.5f});
        if (*act) at.set("activation", std::string(act));
        if (std::string(act) == "Clip") {
          at.set("activation_alpha", -0.5f);
          at.set("activation_beta", 1.5f);
        }
        t.compare("Concat", {a, b}, {t.output({2, 8, 5, 4}, ly)}, at, ly == L ? 2 : 1, 1e-6);
      }
}

Attrs a23() {
  Attrs a;
  a.set("axes", std::vector<int64_t>{2, 3});
  return a;
}

TEST(NativeKernels, ReductionsAndGlobalPools) {
  for (Layout lx : {P, L}) {
    for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"}) {
      OneOp t;
      int x = t.input({2, 24, 9, 11}, lx);
      t.compare(op, {x}, {t.output({2, 24, 1, 1}, lx)}, {}, 1, 1e-5);
      OneOp u;
      int x2 = u.input({1, 96, 56, 56}, lx);
      u.compare(op, {x2}, {u.output({1, 96, 1, 1}, lx)}, {}, 2, 1e-5);
    }
    Attrs a;
    a.set("axes", std::vector<int64_t>{2, 3});
    OneOp t;
    int x = t.input({2, 24, 9, 11}, lx);
    t.compare("ReduceMean", {x}, {t.output({2, 24, 1, 1}, lx)}, a, 1, 1e-5);
  }
  Attrs last;
  last.set("axes", std::vector<int64_t>{-1});
  for (const char* op : {"ReduceMean", "ReduceSum", "ReduceMax"}) {
    OneOp t;
    int x = t.input({3, 5, 37});
    t.compare(op, {x}, {t.output({3, 5, 1})}, last, 1, 1e-5);
  }
  Attrs mid;
  mid.set("axes", std::vector<int64_t>{1});
  mid.set("keepdims", int64_t(0));
  OneOp t;
  int x = t.input({3, 5, 37});
  t.compare("ReduceSum", {x}, {t.output({3, 37})}, mid, 1, 1e-5);
  // Rows reduced into one (accumulate_rows): 64-column blocks and a tail.
  for (const char* op : {"ReduceMax", "ReduceMean"}) {
    OneOp m;
    int mx = m.input({2, 7, 150});
    m.compare(op, {mx}, {m.output({2, 150})}, mid, 1, 1e-5);
    OneOp g;
    int gx = g.input({1, 130, 20, 30}, L);
    g.compare(op, {gx}, {g.output({1, 130, 1, 1}, L)}, a23(), 2, 1e-5);
  }
  OneOp u;  // axes as an input (opset 18)
  int ux = u.input({4, 6, 8});
  u.compare("ReduceMax", {ux, u.ints({0, 2})}, {u.output({1, 6, 1})}, {}, 1, 1e-5);
}

// MaxPool over channels-last tensors: strides, pads, ceil_mode, dilation,
// channel counts around the 16-lane vectors and the 64-column blocks, a
// team, and NaN (which wins its windows, as in the reference kernel).
TEST(NativeKernels, MaxPoolChannelsLast) {
  struct Case {
    Shape x;
    std::vector<int64_t> k, s, pads, dil;
    int64_t ceil;
  };
  const Case cases[] = {{{2, 24, 11, 12}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0},
                        {{1, 64, 13, 13}, {3, 3}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 1},
                        {{1, 130, 9, 10}, {2, 3}, {1, 2}, {0, 1, 1, 0}, {2, 1}, 0},
                        {{3, 5, 7, 6}, {3, 3}, {1, 1}, {1, 1, 1, 1}, {1, 1}, 0}};
  for (const Case& c : cases)
    for (int threads : {1, 2}) {
      Attrs a;
      a.set("kernel_shape", c.k);
      a.set("strides", c.s);
      a.set("pads", c.pads);
      a.set("dilations", c.dil);
      a.set("ceil_mode", c.ceil);
      const ref::WindowGeometry g = ref::pool_geometry(a, c.x);
      OneOp t;
      int x = t.input(c.x, L);
      t.set(x, 7, std::numeric_limits<float>::quiet_NaN());
      t.set(x, size_t(shape_numel(c.x)) - 3, std::numeric_limits<float>::quiet_NaN());
      t.compare("MaxPool", {x}, {t.output({c.x[0], c.x[1], g.out[0], g.out[1]}, L)}, a, threads, 0);
    }
}

TEST(NativeKernels, LayerNormAndSoftmax) {
  Attrs a;
  a.set("axis", int64_t(-1));
  a.set("epsilon", 1e-6f);
  std::vector<float> g(96), b(96);
  for (size_t i = 0; i < 96; ++i) {
    g[i] = 0.5f + float(i) / 96;
    b[i] = float(i % 7) - 3;
  }
  OneOp t;
  int x = t.input({1, 14, 14, 96}, P, 4.0f);
  t.compare("LayerNormalization", {x, t.weight({96}, g), t.weight({96}, b)},
            {t.output({1, 14, 14, 96})}, a, 2, 1e-5);
  OneOp u;
  int ux = u.input({3, 7, 96}, P, 4.0f);
  u.compare("LayerNormalization", {ux, u.weight({96}, g)}, {u.output({3, 7, 96})}, a, 1, 1e-5);
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    OneOp s;
    int sx = s.input({4, 3, 1000}, P, 10.0f);
    s.compare(op, {sx}, {s.output({4, 3, 1000})}, {}, 1, 1e-5);
  }
}

TEST(NativeKernels, Copies) {
  for (Layout lx : {P, L})
    for (Layout ly : {P, L}) {
      Attrs perm;
      perm.set("perm", std::vector<int64_t>{0, 2, 3, 1});
      OneOp t;
      int x = t.input({2, 6, 5, 7}, lx);
      t.compare("Transpose", {x}, {t.output({2, 5, 7, 6}, ly)}, perm);
      Attrs ax;
      ax.set("axis", int64_t(1));
      OneOp c;
      int a = c.input({2, 3, 5, 7}, lx), b = c.input({2, 4, 5, 7}, ly);
      c.compare("Concat", {a, b}, {c.output({2, 7, 5, 7}, ly)}, ax);
      OneOp s;
      int sx = s.input({2, 7, 5, 7}, lx);
      s.compare("Split", {sx, s.ints({3, 4})},
                {s.output({2, 3, 5, 7}, ly), s.output({2, 4, 5, 7}, lx)}, ax);
      OneOp sl;  // every other channel, from the end, and a window of rows
      int slx = sl.input({2, 8, 6, 5}, lx);
      sl.compare("Slice",
                 {slx, sl.ints({-1, 1}), sl.ints({-9, 5}), sl.ints({1, 2}), sl.ints({-2, 1})},
                 {sl.output({2, 4, 4, 5}, ly)});
    }
  for (Layout lx : {P, L}) {  // Gather: a scalar index (ViT's class token), a 2-D index
    Attrs a1;
    a1.set("axis", int64_t(1));
    OneOp g;
    int gx = g.input({2, 7, 5, 3}, lx);
    g.compare("Gather", {gx, g.scalar_int(-7)}, {g.output({2, 5, 3})}, a1);
    Attrs a3;
    a3.set("axis", int64_t(3));
    OneOp h;
    int hx = h.input({2, 7, 5, 6}, lx);
    h.compare("Gather", {hx, h.ints({5, 0, 0, 2})}, {h.output({2, 7, 5, 4})}, a3);
  }
  // shoal.ConcatGather: a channel shuffle's halves (the interleave, as
  // ShuffleNet's), three inputs with repeats and negative indices, in both
  // layouts (channels-last: rows gathered; plain: one copy per index), on
  // one thread and a team; along the last dim of a plain tensor.
  for (Layout l : {P, L})
    for (int threads : {1, 2}) {
      std::vector<int64_t> first, second;
      for (int64_t c = 0; c < 58; ++c) (c < 29 ? first : second).push_back((c % 2) * 58 + c / 2);
      Attrs a1;
      a1.set("axis", int64_t(1));
      for (const auto& half : {first, second}) {
        OneOp g;
        int ga = g.input({2, 58, 9, 10}, l), gb = g.input({2, 58, 9, 10}, l);
        g.compare("shoal.ConcatGather", {ga, gb, g.ints(half)}, {g.output({2, 29, 9, 10}, l)}, a1,
                  threads);
      }
      OneOp h;
      int ha = h.input({1, 5, 7, 3}, l), hb = h.input({1, 20, 7, 3}, l),
          hc = h.input({1, 3, 7, 3}, l);
      h.compare("shoal.ConcatGather", {ha, hb, hc, h.ints({27, 0, -1, 5, 5, 24, 3, 12, 19, 26})},
                {h.output({1, 10, 7, 3}, l)}, a1, threads);
    }
  Attrs last;
  last.set("axis", int64_t(-1));
  OneOp cg;
  int ca = cg.input({3, 4, 37}), cb = cg.input({3, 4, 40});
  std::vector<int64_t> perm;
  for (int64_t i = 76; i-- > 0;) perm.push_back((i * 7) % 77);
  cg.compare("shoal.ConcatGather", {ca, cb, cg.ints(perm)}, {cg.output({3, 4, 76})}, last);
  Attrs p5;
  p5.set("perm", std::vector<int64_t>{0, 2, 1, 3, 4});
  OneOp t;
  int x = t.input({1, 2, 58, 28, 28});
  t.compare("Transpose", {x}, {t.output({1, 58, 2, 28, 28})}, p5, 2);
}

/// Pad in every mode, with pads on several dims, crops (negative pads) and
/// a constant, in every layout pair and on a team; Expand broadcasting a
/// per-channel vector and a lower-rank tensor.
TEST(NativeKernels, PadEveryModeAndExpand) {
  struct Case {
    std::vector<int64_t> pads;  // begins, then ends, of [2, 3, 5, 6]
    Shape out;
  };
  const Case cases[] = {
      {{0, 0, 1, 1, 0, 0, 1, 1}, {2, 3, 7, 8}},    // a ring, as a Conv's padding
      {{0, 1, 2, 0, 0, 2, 0, 3}, {2, 6, 7, 9}},    // channels and spatial, uneven
      {{0, 0, -1, 2, 0, 0, 1, -2}, {2, 3, 5, 6}},  // crops and pads mixed
      {{1, 0, 0, 0, 0, 0, 0, 0}, {3, 3, 5, 6}},    // the batch dim
  };
  for (const std::string mode : {"constant", "edge", "reflect", "wrap"})
    for (const Case& c : cases)
      for (Layout lx : {P, L})
        for (Layout ly : {P, L})
          for (int threads : {1, 2}) {
            Attrs a;
            a.set("mode", mode);
            OneOp t;
            int x = t.input({2, 3, 5, 6}, lx);
            t.compare("Pad", {x, t.ints(c.pads), t.weight({}, {1.5f})}, {t.output(c.out, ly)}, a,
                      threads);
          }
  for (Layout lx : {P, L}) {
    OneOp e;  // [1, 4, 1, 1] -> [2, 4, 3, 5]
    int x = e.input({1, 4, 1, 1}, lx);
    e.compare("Expand", {x, e.ints({2, 4, 3, 5})}, {e.output({2, 4, 3, 5}, lx)});
  }
  OneOp e;  // a lower rank and a size-1 dim: [3, 1] -> [2, 3, 7]
  int x = e.input({3, 1});
  e.compare("Expand", {x, e.ints({2, 1, 7})}, {e.output({2, 3, 7})}, {}, 2);
}

/// Every ISA's loops against scalar formulas, NaN and extremes included.
TEST(NativeKernels, LoopTablesOfEveryIsa) {
  std::vector<float> x;
  for (float v = -100.0f; v <= 100.0f; v += 0.37f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-6f, -1e-6f, 0.03f, 0.49f, 0.51f, 88.0f, 89.0f, -87.5f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN()})
    x.push_back(v);
  using native::Unary;
  struct Want {
    Unary kind;
    double (*f)(double);
  };
  const Want wants[] = {
      {Unary::exp, [](double v) { return std::exp(v); }},
      {Unary::sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }},
      {Unary::tanh, [](double v) { return std::tanh(v); }},
      {Unary::erf, [](double v) { return std::erf(v); }},
      {Unary::gelu, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }},
      {Unary::silu, [](double v) { return v / (1 + std::exp(-v)); }},
      {Unary::relu, [](double v) { return std::isnan(v) ? v
                                          : v < 0       ? 0.0
                                                        : v; }},
  };
  int tables = 0;
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const native::Loops* l = native::loops_named(isa);
    if (!l) continue;
    ++tables;
    for (const Want& w : wants) {
      std::vector<float> y(x.size());
      l->unary({w.kind, 0, 0}, x.data(), 1, y.data(), int64_t(y.size()));
      for (size_t i = 0; i < x.size(); ++i) {
        const double want = w.f(x[i]);
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(y[i])) << isa << " op " << int(w.kind) << " x=" << x[i];
        } else if (std::isinf(want) || std::fabs(want) > 1e37) {
          EXPECT_TRUE(std::isinf(y[i]) || std::fabs(y[i] - want) <= 1e-5 * std::fabs(want))
              << isa << " op " << int(w.kind) << " x=" << x[i] << " got " << y[i];
        } else {
          EXPECT_NEAR(y[i], want, 3e-7 + 3e-6 * std::fabs(want))
              << isa << " op " << int(w.kind) << " x=" << x[i];
        }
      }
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> r = {1, 5, nan, 2};
    EXPECT_TRUE(std::isnan(l->fold(native::Reduce::max, r.data(), 1, 4, -INFINITY))) << isa;
    std::vector<float> big(1000, 1.0f);
    EXPECT_FLOAT_EQ(l->fold(native::Reduce::sum, big.data(), 1, 1000, 0.0f), 1000.0f) << isa;
    // affine: per-element (ss 1) and one channel (ss 0), with a fused Relu.
    const std::vector<float> ax = {-2, 3, nan, 0.5f}, as = {2, -1, 3, 4}, ab = {1, 1, 1, -3};
    std::vector<float> ay(4);
    l->affine({Unary::relu, 0, 0}, ax.data(), 1, as.data(), ab.data(), 1, ay.data(), 4);
    EXPECT_EQ(ay[0], 0.0f) << isa;
    EXPECT_EQ(ay[1], 0.0f) << isa;
    EXPECT_TRUE(std::isnan(ay[2])) << isa;
    EXPECT_EQ(ay[3], 0.0f) << isa;
    l->affine({Unary::copy, 0, 0}, ax.data(), 1, as.data(), ab.data(), 0, ay.data(), 4);
    EXPECT_EQ(ay[0], -3.0f) << isa;
    EXPECT_EQ(ay[1], 7.0f) << isa;
    EXPECT_EQ(ay[3], 2.0f) << isa;
  }
  EXPECT_GE(tables, 1);
  EXPECT_STRNE(native::loops().isa, "");
}

// scale_blocks (a channel-scaled Conv's packed weights): blocks of every
// size, whole vectors (16, 32, 64) and not, in every ISA table.
TEST(NativeKernels, ScaleBlocksScalesEachBlockByItsChannel) {
  const std::vector<float> s = {0.5f, -2.0f, 3.0f, 1.0f};
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const native::Loops* l = native::loops_named(isa);
    if (!l) continue;
    for (int64_t block : {1, 3, 16, 32, 64}) {
      const int64_t blocks = 7;
      std::vector<float> w(size_t(block * blocks)), y(w.size(), -7.0f);
      std::vector<int64_t> idx(static_cast<size_t>(blocks));
      for (size_t i = 0; i < w.size(); ++i) w[i] = float(i % 11) - 4.5f;
      for (size_t j = 0; j < idx.size(); ++j) idx[j] = int64_t((j * 3) % s.size());
      l->scale_blocks(w.data(), s.data(), idx.data(), block, blocks, y.data());
      for (size_t i = 0; i < w.size(); ++i)
        ASSERT_EQ(y[i], w[i] * s[size_t(idx[i / size_t(block)])])
            << isa << " block " << block << " at " << i;
    }
  }
}

// gather (Gather along the innermost dim), permute16 (shoal.
// ConcatGather's rows) and max_taps (MaxPool windows) in every ISA table: lengths around the
// 16-lane vectors, repeats, windows and gathered blocks.
TEST(NativeKernels, GatherPicksEveryIndex) {
  std::vector<float> x(100);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.5f - 7.0f;
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const native::Loops* l = native::loops_named(isa);
    if (!l) continue;
    for (int64_t n : {1, 15, 16, 17, 58, 100}) {
      std::vector<int32_t> idx(static_cast<size_t>(n));
      for (size_t i = 0; i < idx.size(); ++i) idx[i] = int32_t((i * 37 + 11) % x.size());
      std::vector<float> y(idx.size() + 3, -1.0f);
      l->gather(x.data(), idx.data(), y.data(), n);
      for (size_t i = 0; i < idx.size(); ++i)
        ASSERT_EQ(y[i], x[size_t(idx[i])]) << isa << " n " << n << " at " << i;
      for (size_t i = idx.size(); i < y.size(); ++i) ASSERT_EQ(y[i], -1.0f) << isa;
    }
    // permute16: an interleave of two windows, then a gathered block, then
    // a partial block (the tail of a row).
    native::Permute16 b[3];
    b[0].lo_a = 3;
    b[0].lo_b = 40;
    for (int32_t i = 0; i < 16; ++i) b[0].sel[i] = i % 2 ? 16 + i / 2 : i / 2;
    for (int32_t i = 0; i < 16; ++i) b[1].sel[i] = 83 - 5 * i;
    b[2].lo_a = 60;
    b[2].lo_b = 60;
    for (int32_t i = 0; i < 16; ++i) b[2].sel[i] = 15 - i;
    std::vector<float> y(43, -1.0f);
    l->permute16(x.data(), b, y.data(), 40);
    for (int i = 0; i < 16; ++i) {
      ASSERT_EQ(y[size_t(i)], x[size_t(i % 2 ? 40 + i / 2 : 3 + i / 2)]) << isa << " at " << i;
      ASSERT_EQ(y[size_t(16 + i)], x[size_t(83 - 5 * i)]) << isa << " at " << 16 + i;
    }
    for (int i = 0; i < 8; ++i) ASSERT_EQ(y[size_t(32 + i)], x[size_t(75 - i)]) << isa;
    for (size_t i = 40; i < y.size(); ++i) ASSERT_EQ(y[i], -1.0f) << isa;
    // max_taps: three taps over 70 columns (a 64-column block and a tail),
    // one NaN, and no taps at all (-inf).
    std::vector<float> src(300);
    for (size_t i = 0; i < src.size(); ++i) src[i] = float((i * 53) % 97) - 40.0f;
    src[100 + 5] = std::numeric_limits<float>::quiet_NaN();
    const int64_t off[3] = {0, 100, 210};
    std::vector<float> m(72, 0.0f);
    l->max_taps(src.data(), off, 3, m.data(), 70);
    for (size_t i = 0; i < 70; ++i) {
      if (i == 5) {
        ASSERT_TRUE(std::isnan(m[i])) << isa;
        continue;
      }
      ASSERT_EQ(m[i], std::max({src[i], src[100 + i], src[210 + i]})) << isa << " at " << i;
    }
    ASSERT_EQ(m[70], 0.0f) << isa;
    l->max_taps(src.data(), off, 0, m.data(), 20);
    ASSERT_EQ(m[19], -INFINITY) << isa;
  }
}

// The int8 loops that divide by the output scale (shoal.QLinearAdd, the
// table ops' scale_table): every byte pair / byte, over scales that make
// exact ties (halves) and random ones, must round as the scalar division
// does, in every ISA table (the AVX-512 ones are intrinsics).
TEST(NativeKernels, QuantizedLoopsRoundAsTheDivisionDoes) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> scale(0.001f, 0.5f);
  auto quant = [](float v, float ys, int32_t zp, bool u8) {
    float q = std::nearbyint(v / ys) + float(zp);
    q = std::isnan(q) ? 0.0f : std::min(u8 ? 255.0f : 127.0f, std::max(u8 ? 0.0f : -128.0f, q));
    return int32_t(q);
  };
  auto byte = [](const void* p, size_t i, bool u8) {
    return u8 ? int32_t(static_cast<const uint8_t*>(p)[i])
              : int32_t(static_cast<const int8_t*>(p)[i]);
  };
  std::vector<uint8_t> a(65536), b(65536), y(65536);
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = uint8_t(i & 255);
    b[i] = uint8_t(i >> 8);
  }
  int tables = 0;
  for (const char* isa : {"generic", "avx2", "avx512"}) {
    const native::Loops* l = native::loops_named(isa);
    if (!l) continue;
    ++tables;
    for (int c = 0; c < 12; ++c) {
      native::QAddParams p{};
      p.a_scale = c < 2 ? 0.5f : scale(rng);
      p.b_scale = c < 2 ? 0.25f : scale(rng);
      p.y_scale = c == 0 ? 1.0f : c == 1 ? 0.75f : scale(rng);
      p.a_u8 = c % 2 == 0;
      p.b_u8 = c % 3 == 0;
      p.y_u8 = c % 4 < 2;
      p.a_zp = p.a_u8 ? c * 7 : -c;
      p.b_zp = p.b_u8 ? 100 : 3;
      p.y_zp = p.y_u8 ? c : -c;
      p.lo = c % 5 == 0 ? 0.0f : -INFINITY;
      p.hi = INFINITY;
      l->qadd(p, a.data(), b.data(), y.data(), int64_t(y.size()));
      int bad = 0;
      for (size_t i = 0; i < y.size() && bad < 5; ++i) {
        float pa = float(byte(a.data(), i, p.a_u8) - p.a_zp) * p.a_scale;
        float pb = float(byte(b.data(), i, p.b_u8) - p.b_zp) * p.b_scale;
        float v = pa + pb;
        v = std::max(v, p.lo);
        const int32_t want = quant(v, p.y_scale, p.y_zp, p.y_u8);
        if (byte(y.data(), i, p.y_u8) != want) {
          ++bad;
          ADD_FAILURE() << isa << " qadd case " << c << " element " << i << ": "
                        << byte(y.data(), i, p.y_u8) << " != " << want;
        }
      }
      // scale_table: y = quantize(s[i] * t[x[i]]), rows of 256 bytes; the
      // table looked up, and computed from its affine form (the same floats).
      std::vector<float> t(256), srow(256);
      const native::Affine8 aff{c < 2 ? 0.5f : scale(rng), c < 2 ? 128 : 100, false};
      for (int i = 0; i < 256; ++i) {
        t[size_t(i)] = float(i - aff.zp) * aff.scale;
        srow[size_t(i)] = c < 2 ? 0.5f : scale(rng) * 4.0f;
      }
      // accumulate_table: column sums in row order (64, 16 and masked
      // columns at a time), exactly the scalar double sums.
      {
        std::vector<float> tt(256);
        for (int i = 0; i < 256; ++i) tt[size_t(i)] = scale(rng) * float(i * 37 % 101 - 50);
        const int64_t rows = 7, n = 211;
        std::vector<double> acc(size_t(n), 0.5), want(acc);
        l->accumulate_table(tt.data(), nullptr, b.data(), rows, n, acc.data());
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = 0; i < n; ++i) want[size_t(i)] += double(tt[b[size_t(r * n + i)]]);
        for (int64_t i = 0; i < n; ++i)
          if (acc[size_t(i)] != want[size_t(i)]) {
            ADD_FAILURE() << isa << " accumulate_table case " << c << " column " << i;
            break;
          }
      }
      const native::QOut q{c < 2 ? 0.25f : scale(rng), p.y_zp, p.y_u8};
      for (const native::Affine8* a : {static_cast<const native::Affine8*>(nullptr), &aff}) {
        l->scale_table(q, srow.data(), t.data(), a, b.data(), y.data(), 256, 256);
        for (size_t i = 0; i < 65536 && bad < 5; ++i) {
          const int32_t want = quant(srow[i % 256] * t[b[i]], q.scale, q.zp, q.u8);
          if (byte(y.data(), i, q.u8) != want) {
            ++bad;
            ADD_FAILURE() << isa << " scale_table case " << c << (a ? " affine" : "") << " element "
                          << i << ": " << byte(y.data(), i, q.u8) << " != " << want;
          }
        }
      }
    }
  }
  EXPECT_GE(tables, 1);
}

}  // namespace
}  // namespace shoal::cpu
