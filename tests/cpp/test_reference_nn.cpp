// Tests of the neural-network operators of the op table (src/reference/nn*.cpp)
// and of the window geometry (src/reference/geometry.cpp): hand-checkable
// values, shape inference on odd sizes, error kinds and messages, and a few
// cases cross-checked against PyTorch (expected values baked in below).
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/attrs.hpp"
#include "core/tensor.hpp"
#include "ops/op_table.hpp"
#include "reference/geometry.hpp"
#include "shoal/error.hpp"

namespace {

using shoal::Attrs;
using shoal::AttrValue;
using shoal::DType;
using shoal::Error;
using shoal::ErrorKind;
using shoal::HostTensor;
using shoal::Shape;
using shoal::TensorRef;
using shoal::ops::OpSpec;
using shoal::ops::TypeShape;
using shoal::ops::ValueInfo;

// --- helpers -----------------------------------------------------------------

AttrValue I(int64_t v) { return v; }
AttrValue Is(std::vector<int64_t> v) { return v; }
AttrValue F(float v) { return v; }
AttrValue Fs(std::vector<float> v) { return v; }
AttrValue S(const char* v) { return std::string(v); }

Attrs A(std::initializer_list<std::pair<const char*, AttrValue>> kv = {}) {
  Attrs a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

HostTensor f32(Shape s, std::vector<float> v = {}) {
  HostTensor t(DType::f32, s);
  if (!v.empty()) {
    EXPECT_EQ(int64_t(v.size()), t.numel())
        << "test data for " << shoal::shape_str(s);
    if (t.bytes() > 0)
      std::memcpy(t.data(), v.data(),
                  std::min(t.bytes(), v.size() * sizeof(float)));
  }
  return t;
}

HostTensor i64(Shape s, std::vector<int64_t> v) {
  HostTensor t(DType::i64, s);
  EXPECT_EQ(int64_t(v.size()), t.numel());
  if (t.bytes() > 0)
    std::memcpy(t.data(), v.data(),
                std::min(t.bytes(), v.size() * sizeof(int64_t)));
  return t;
}

// 1, 2, ..., n
std::vector<float> iota(int64_t n, float start = 1) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = start + float(i);
  return v;
}

// Deterministic, exactly representable test data; the PyTorch script that
// produced the baked expectations uses the same sequences.
std::vector<float> seq(int64_t n, int mul, int add, int mod, int off,
                       float div) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[size_t(i)] = float(int((i * mul + add) % mod) - off) / div;
  return v;
}
HostTensor X(Shape s) {
  return f32(s, seq(shoal::shape_numel(s), 37, 11, 101, 50, 16));
}
HostTensor W(Shape s) {
  return f32(s, seq(shoal::shape_numel(s), 53, 7, 61, 30, 32));
}

const OpSpec& op_spec(const std::string& name) {
  const OpSpec* s = shoal::ops::find_op(name);
  if (!s) throw std::runtime_error("op " + name + " is not in the table");
  return *s;
}

// Infers with all inputs known constants (nullptr = absent), then runs the
// reference kernel on the first `outputs` outputs, allocated from the
// inferred shapes (MaxPool also infers its optional Indices).
std::vector<HostTensor> run_outputs(const std::string& name, const Attrs& a,
                                    std::vector<const HostTensor*> in, size_t outputs) {
  const OpSpec& spec = op_spec(name);
  std::vector<ValueInfo> infos;
  std::vector<TensorRef> refs;
  for (const HostTensor* t : in) {
    ValueInfo v;
    TensorRef r;
    if (t) {
      v.dtype = t->dtype();
      v.shape = t->shape();
      v.constant = t;
      r = t->ref();
    } else {
      v.present = false;
    }
    infos.push_back(v);
    refs.push_back(r);
  }
  std::vector<TypeShape> ts = spec.infer(a, infos);
  EXPECT_EQ(ts.size(), name == "MaxPool" ? 2u : 1u);
  std::vector<HostTensor> out;
  std::vector<TensorRef> outs;
  for (size_t i = 0; i < outputs; ++i) out.emplace_back(ts.at(i).dtype, ts.at(i).shape);
  for (HostTensor& t : out) outs.push_back(t.ref());
  spec.reference(a, refs, outs);
  return out;
}

HostTensor run(const std::string& name, const Attrs& a, std::vector<const HostTensor*> in) {
  return std::move(run_outputs(name, a, std::move(in), 1).at(0));
}

ValueInfo vi(Shape s, DType t = DType::f32) {
  ValueInfo v;
  v.dtype = t;
  v.shape = std::move(s);
  return v;
}
ValueInfo absent() {
  ValueInfo v;
  v.present = false;
  return v;
}

Shape infer(const std::string& name, const Attrs& a,
            std::vector<ValueInfo> in) {
  std::vector<TypeShape> ts = op_spec(name).infer(a, in);
  EXPECT_EQ(ts.size(), name == "MaxPool" ? 2u : 1u);
  EXPECT_EQ(ts.at(0).dtype, DType::f32);
  return ts.at(0).shape;
}

void expect_values(const HostTensor& t, const std::vector<float>& want,
                   double tol = 1e-5) {
  ASSERT_EQ(t.numel(), int64_t(want.size()))
      << "shape " << shoal::shape_str(t.shape());
  const float* p = t.as<float>();
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::isinf(want[i])) {
      EXPECT_EQ(p[i], want[i]) << "element " << i;
    } else {
      EXPECT_NEAR(p[i], want[i],
                  tol * std::max(1.0, std::fabs(double(want[i]))))
          << "element " << i;
    }
  }
}

// Runs f, which must throw shoal::Error of `kind` whose message names `what`.
template <class Fn>
void expect_error(Fn f, ErrorKind kind, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning '" << what
                  << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos)
        << "message '" << e.what() << "' does not mention '" << what << "'";
  }
}

// Expected values computed with PyTorch 1.13 (float64) from the X()/W()
// sequences above.
// [1, 4, 2, 5]
// ConvTorch: 40 values
const std::vector<float> kConvTorch = {
    1.3671875f,   -0.2265625f,  4.3828125f,   -0.984375f,   1.99414062f,
    -5.4375f,     5.20703125f,  -4.29296875f, -1.078125f,   5.45507812f,
    0.642578125f, 0.609375f,    -4.83007812f, 2.5f,         -5.25976562f,
    1.46875f,     -4.71875f,    0.833984375f, -3.77148438f, -7.04101562f,
    2.70507812f,  -0.17578125f, 3.90234375f,  3.08007812f,  -0.20703125f,
    0.92578125f,  1.97265625f,  8.04101562f,  -1.16796875f, 5.75976562f,
    -5.68359375f, 0.62109375f,  2.38085938f,  -6.59375f,    4.4140625f,
    -3.0625f,     2.00195312f,  -9.00585938f, 2.43945312f,  1.66992188f,
};
// [1, 2, 4, 11]
// ConvTransposeTorch: 88 values
const std::vector<float> kConvTransposeTorch = {
    -1.55078125f, 0.125f,       -0.94140625f,  0.0390625f,    0.125f,
    0.0703125f,   1.62890625f,  0.125f,        1.08203125f,   0.125f,
    0.125f,       0.970703125f, 0.125f,        -1.421875f,    -0.2578125f,
    0.125f,       0.6015625f,   -1.48632812f,  0.125f,        2.625f,
    0.125f,       0.125f,       -1.12109375f,  0.125f,        -0.66796875f,
    0.46875f,     0.125f,       0.34375f,      2.05859375f,   0.125f,
    1.35546875f,  0.125f,       0.125f,        -0.21484375f,  0.125f,
    0.23828125f,  0.21875f,     0.125f,        0.09375f,      0.65234375f,
    0.125f,       -0.05078125f, 0.125f,        0.125f,        0.46484375f,
    -0.5f,        -1.50195312f, -1.4140625f,   -0.5f,         0.44921875f,
    1.8359375f,   -0.5f,        -2.92578125f,  -0.5f,         -0.5f,
    -1.02929688f, -0.5f,        -0.591796875f, -0.37890625f,  -0.5f,
    -1.09765625f, -1.50390625f, -0.5f,         -0.22265625f,  -0.5f,
    -0.5f,        -0.04296875f, -0.5f,         -0.974609375f, -1.921875f,
    -0.5f,        0.9765625f,   1.328125f,     -0.5f,         -2.3984375f,
    -0.5f,        -0.5f,        -0.833984375f, -0.5f,         -0.693359375f,
    0.5390625f,   -0.5f,        0.1015625f,    -1.8359375f,   -0.5f,
    -1.2734375f,  -0.5f,        -0.5f,
};
// [1, 1, 3, 4]
// AvgPoolInclTorch: 12 values
const std::vector<float> kAvgPoolInclTorch = {
    -0.21875f,    -0.229166667f, -0.302083333f, 0.677083333f,
    0.239583333f, -0.260416667f, 0.15625f,      -0.479166667f,
    0.1875f,      -0.46875f,     0.510416667f,  -0.614583333f,
};
// AvgPoolExclTorch: 12 values
const std::vector<float> kAvgPoolExclTorch = {
    -0.65625f,    -0.34375f,     -0.453125f, 1.015625f,
    0.479166667f, -0.260416667f, 0.15625f,   -0.479166667f,
    0.5625f,      -0.703125f,    0.765625f,  -0.921875f,
};
// [1, 2, 4, 4]
// MaxPoolTorch: 32 values
const std::vector<float> kMaxPoolTorch = {
    1.125f,   1.75f,   1.75f,   2.375f,  1.9375f, 2.5625f, 2.5625f, 2.375f,
    2.75f,    2.5625f, 2.5625f, 1.6875f, 2.75f,   1.0625f, 1.6875f, 1.6875f,
    -0.4375f, 1.875f,  2.5f,    2.5f,    0.375f,  2.6875f, 2.5f,    2.5f,
    1.1875f,  2.6875f, 1.8125f, 0.125f,  1.1875f, 1.1875f, 1.8125f, 0.125f,
};
// ResizeLinearHalfPixelTorch: 35 values
const std::vector<float> kResizeLinearHalfPixelTorch = {
    -2.4375f,      -1.61160714f,  -0.290178571f, 1.03125f,      1.90178571f,
    -0.383928571f, -1.8125f,      -1.2625f,      -0.436607143f, 0.884821429f,
    0.94375f,      0.732142857f,  -0.110714286f, -0.6375f,      0.5f,
    1.32589286f,   2.64732143f,   0.8125f,       -1.02232143f,  0.299107143f,
    1.125f,        -1.525f,       -0.699107143f, 0.622321429f,  0.68125f,
    0.469642857f,  -0.373214286f, -0.9f,         -2.875f,       -2.04910714f,
    -0.727678571f, 0.59375f,      1.46428571f,   -0.821428571f, -2.25f,
};
// ResizeLinearAlignCornersTorch: 35 values
const std::vector<float> kResizeLinearAlignCornersTorch = {
    -2.4375f,  -1.28125f, -0.125f,  1.03125f,  2.1875f,  0.1875f,    -1.8125f,
    -0.96875f, 0.1875f,   1.34375f, 0.921875f, 0.5f,     0.078125f,  -0.34375f,
    0.5f,      1.65625f,  2.8125f,  0.8125f,   -1.1875f, -0.03125f,  1.125f,
    -1.1875f,  -0.03125f, 1.125f,   0.703125f, 0.28125f, -0.140625f, -0.5625f,
    -2.875f,   -1.71875f, -0.5625f, 0.59375f,  1.75f,    -0.25f,     -2.25f,
};
// ResizeNearestTorch: 35 values
const std::vector<float> kResizeNearestTorch = {
    -2.4375f, -2.4375f, -0.125f,  -0.125f,  2.1875f,  2.1875f,  -1.8125f,
    -2.4375f, -2.4375f, -0.125f,  -0.125f,  2.1875f,  2.1875f,  -1.8125f,
    0.5f,     0.5f,     2.8125f,  2.8125f,  -1.1875f, -1.1875f, 1.125f,
    0.5f,     0.5f,     2.8125f,  2.8125f,  -1.1875f, -1.1875f, 1.125f,
    -2.875f,  -2.875f,  -0.5625f, -0.5625f, 1.75f,    1.75f,    -2.25f,
};

// --- geometry ----------------------------------------------------------------

TEST(RefNNGeometry, ConvExplicitPadsStridesDilations) {
  auto g = shoal::ref::conv_geometry(A({{"pads", Is({1, 0, 2, 1})},
                                        {"strides", Is({2, 3})},
                                        {"dilations", Is({1, 2})},
                                        {"group", I(2)}}),
                                     {2, 6, 7, 9}, {4, 3, 3, 3});
  EXPECT_EQ(g.n, 2);
  EXPECT_EQ(g.c_in, 6);
  EXPECT_EQ(g.c_out, 4);
  EXPECT_EQ(g.group, 2);
  EXPECT_EQ(g.kernel, (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{2, 1}));
  // H: (7+3-3)/2+1 = 4; W: dilated kernel 5, (9+1-5)/3+1 = 2
  EXPECT_EQ(g.out, (std::vector<int64_t>{4, 2}));
}

TEST(RefNNGeometry, ConvAutoPad) {
  auto same = [](const char* mode, int64_t in, int64_t k, int64_t s) {
    return shoal::ref::conv_geometry(
        A({{"auto_pad", S(mode)}, {"strides", Is({s})}}), {1, 1, in},
        {1, 1, k});
  };
  auto g = same("SAME_UPPER", 6, 3, 2);  // out 3, total pad 1 -> at the end
  EXPECT_EQ(g.out, (std::vector<int64_t>{3}));
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{0}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{1}));
  g = same("SAME_LOWER", 6, 3, 2);
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{1}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{0}));
  g = same("SAME_UPPER", 5, 3, 2);  // out 3, total 2
  EXPECT_EQ(g.out, (std::vector<int64_t>{3}));
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{1}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{1}));
  g = same("SAME_UPPER", 7, 1, 3);  // 1x1 kernel: no pad, out ceil(7/3)
  EXPECT_EQ(g.out, (std::vector<int64_t>{3}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{0}));
  g = same("VALID", 7, 3, 2);
  EXPECT_EQ(g.out, (std::vector<int64_t>{3}));
  // Dilation enters SAME padding: kernel 3 dilated 2 spans 5 -> total 4.
  g = shoal::ref::conv_geometry(
      A({{"auto_pad", S("SAME_UPPER")}, {"dilations", Is({2})}}), {1, 1, 8},
      {1, 1, 3});
  EXPECT_EQ(g.out, (std::vector<int64_t>{8}));
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{2}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{2}));
}

TEST(RefNNGeometry, ConvErrors) {
  using shoal::ref::conv_geometry;
  expect_error(
      [] {
        conv_geometry(A(), {1, 1, 4, 4}, {1, 1, 5, 5});
      },
      ErrorKind::invalid_argument, "kernel 5x5 larger than padded input 4x4");
  expect_error(
      [] {
        conv_geometry(A({{"dilations", Is({2, 2})}}), {1, 1, 4, 4},
                      {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "spanning 5x5");
  expect_error(
      [] {
        conv_geometry(A({{"strides", Is({1, 0})}}), {1, 1, 4, 4}, {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "strides");
  expect_error(
      [] {
        conv_geometry(A({{"strides", Is({-1, 1})}}), {1, 1, 4, 4},
                      {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "strides");
  expect_error(
      [] {
        conv_geometry(A({{"dilations", Is({0, 1})}}), {1, 1, 4, 4},
                      {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "dilations");
  expect_error(
      [] {
        conv_geometry(A({{"strides", Is({1})}}), {1, 1, 4, 4}, {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "expected 2");
  expect_error(
      [] {
        conv_geometry(A(), {1, 3, 4, 4}, {8, 2, 3, 3});
      },
      ErrorKind::invalid_argument, "channel mismatch");
  expect_error(
      [] {
        conv_geometry(A({{"group", I(2)}}), {1, 3, 4, 4}, {4, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "not divisible by group 2");
  expect_error(
      [] {
        conv_geometry(A({{"group", I(2)}}), {1, 4, 4, 4}, {3, 2, 3, 3});
      },
      ErrorKind::invalid_argument, "output channels 3");
  expect_error(
      [] {
        conv_geometry(A({{"group", I(0)}}), {1, 4, 4, 4}, {4, 4, 3, 3});
      },
      ErrorKind::invalid_argument, "group");
  expect_error(
      [] {
        conv_geometry(A(), {4, 4}, {4, 4});
      },
      ErrorKind::invalid_argument, "rank >= 3");
  expect_error(
      [] {
        conv_geometry(A(), {1, 1, 4, 4}, {1, 1, 3});
      },
      ErrorKind::invalid_argument, "ranks must match");
  expect_error(
      [] {
        conv_geometry(A({{"pads", Is({0, -1, 0, 0})}}), {1, 1, 4, 4},
                      {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "negative pad");
  expect_error(
      [] {
        conv_geometry(A({{"pads", Is({1, 1})}}), {1, 1, 4, 4}, {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "'pads'");
  expect_error(
      [] {
        conv_geometry(A({{"auto_pad", S("SAME")}}), {1, 1, 4, 4}, {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "auto_pad");
  expect_error(
      [] {
        conv_geometry(A({{"kernel_shape", Is({2, 2})}}), {1, 1, 4, 4},
                      {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "kernel_shape");
  expect_error(
      [] {
        conv_geometry(A(), {1, 1, 2, 2, 2, 2}, {1, 1, 1, 1, 1, 1});
      },
      ErrorKind::unsupported, "at most 3");
}

TEST(RefNNGeometry, ConvTranspose) {
  using shoal::ref::conv_transpose_geometry;
  // out = s*(in-1) + output_padding + (k-1)*d+1 - pads
  auto g = conv_transpose_geometry(A({{"strides", Is({2, 3})},
                                      {"pads", Is({1, 0, 1, 0})},
                                      {"output_padding", Is({1, 2})}}),
                                   {1, 4, 5, 3}, {4, 2, 3, 2});
  EXPECT_EQ(g.c_out, 2);
  EXPECT_EQ(g.out, (std::vector<int64_t>{2 * 4 + 1 + 3 - 2, 3 * 2 + 2 + 2}));
  g = conv_transpose_geometry(A({{"group", I(2)}}), {1, 4, 5, 3}, {4, 3, 3, 3});
  EXPECT_EQ(g.c_out, 6);
  EXPECT_EQ(g.out, (std::vector<int64_t>{7, 5}));
  // output_shape: total padding 2*(5-1)+3-9 = 2 split evenly; odd goes to the
  // begin unless SAME_UPPER.
  g = conv_transpose_geometry(
      A({{"strides", Is({2})}, {"output_shape", Is({9})}}), {1, 1, 5},
      {1, 1, 3});
  EXPECT_EQ(g.out, (std::vector<int64_t>{9}));
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{1}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{1}));
  g = conv_transpose_geometry(
      A({{"strides", Is({2})}, {"output_shape", Is({1, 1, 10})}}), {1, 1, 5},
      {1, 1, 3});
  EXPECT_EQ(g.out, (std::vector<int64_t>{10}));
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{1}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{0}));
  g = conv_transpose_geometry(A({{"strides", Is({2})},
                                 {"output_shape", Is({10})},
                                 {"auto_pad", S("SAME_UPPER")}}),
                              {1, 1, 5}, {1, 1, 3});
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{0}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{1}));
  // SAME_*: out = in * stride.
  g = conv_transpose_geometry(
      A({{"strides", Is({2})}, {"auto_pad", S("SAME_LOWER")}}), {1, 1, 5},
      {1, 1, 4});
  EXPECT_EQ(g.out, (std::vector<int64_t>{10}));
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{1}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{1}));

  expect_error(
      [] {
        conv_transpose_geometry(A(), {1, 3, 4, 4}, {4, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "channel mismatch");
  expect_error(
      [] {
        conv_transpose_geometry(A({{"strides", Is({0, 1})}}), {1, 1, 4, 4},
                                {1, 1, 3, 3});
      },
      ErrorKind::invalid_argument, "strides");
  expect_error(
      [] {
        conv_transpose_geometry(A({{"pads", Is({3, 3, 3, 3})}}), {1, 1, 2, 2},
                                {1, 1, 2, 2});
      },
      ErrorKind::invalid_argument, "exceed");
  expect_error(
      [] {
        conv_transpose_geometry(A({{"output_padding", Is({-1, 0})}}),
                                {1, 1, 2, 2}, {1, 1, 2, 2});
      },
      ErrorKind::invalid_argument, "output_padding");
}

TEST(RefNNGeometry, PoolCeilMode) {
  auto pool = [](int64_t in, int64_t k, int64_t s, int64_t pad, int64_t ceil) {
    return shoal::ref::pool_geometry(A({{"kernel_shape", Is({k})},
                                        {"strides", Is({s})},
                                        {"pads", Is({pad, pad})},
                                        {"ceil_mode", I(ceil)}}),
                                     {1, 3, in})
        .out.at(0);
  };
  EXPECT_EQ(pool(5, 2, 2, 0, 0), 2);
  EXPECT_EQ(pool(5, 2, 2, 0, 1), 3);
  EXPECT_EQ(pool(112, 3, 2, 1, 0), 56);
  EXPECT_EQ(pool(112, 3, 2, 1, 1), 57);
  // A last window starting in the end padding is dropped (PyTorch, ONNX).
  EXPECT_EQ(pool(5, 2, 2, 1, 1), 3);
  EXPECT_EQ(pool(6, 1, 2, 0, 1), 3);
  auto g = shoal::ref::pool_geometry(A({{"kernel_shape", Is({3, 3})},
                                        {"strides", Is({2, 2})},
                                        {"auto_pad", S("SAME_UPPER")}}),
                                     {1, 2, 7, 8});
  EXPECT_EQ(g.out, (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(g.c_out, 2);
  EXPECT_EQ(g.pad_begin, (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(g.pad_end, (std::vector<int64_t>{1, 1}));
}

TEST(RefNNGeometry, PoolErrors) {
  using shoal::ref::pool_geometry;
  expect_error(
      [] {
        pool_geometry(A(), {1, 1, 4, 4});
      },
      ErrorKind::invalid_argument, "kernel_shape");
  expect_error(
      [] {
        pool_geometry(A({{"kernel_shape", Is({5, 5})}}), {1, 1, 4, 4});
      },
      ErrorKind::invalid_argument, "larger than padded input 4x4");
  expect_error(
      [] {
        pool_geometry(
            A({{"kernel_shape", Is({2, 2})}, {"strides", Is({0, 1})}}),
            {1, 1, 4, 4});
      },
      ErrorKind::invalid_argument, "strides");
  expect_error(
      [] {
        pool_geometry(
            A({{"kernel_shape", Is({2, 2})}, {"pads", Is({2, 0, 0, 0})}}),
            {1, 1, 4, 4});
      },
      ErrorKind::invalid_argument, "smaller than kernel");
  expect_error(
      [] {
        pool_geometry(A({{"kernel_shape", Is({2})}}), {1, 1, 4, 4});
      },
      ErrorKind::invalid_argument, "kernel_shape");
  expect_error(
      [] {
        pool_geometry(A({{"kernel_shape", Is({2})}}), {1, 4});
      },
      ErrorKind::invalid_argument, "rank");
}

TEST(RefNNGeometry, Activations) {
  using shoal::ref::Act;
  using shoal::ref::activation_from_attrs;
  EXPECT_EQ(activation_from_attrs(A()).kind, Act::none);
  EXPECT_EQ(activation_from_attrs(A({{"activation", S("")}})).kind, Act::none);
  EXPECT_FLOAT_EQ(activation_from_attrs(A())(-3.0f), -3.0f);
  auto relu = activation_from_attrs(A({{"activation", S("Relu")}}));
  EXPECT_FLOAT_EQ(relu(-1), 0);
  EXPECT_FLOAT_EQ(relu(2), 2);
  auto leaky = activation_from_attrs(A({{"activation", S("LeakyRelu")}}));
  EXPECT_FLOAT_EQ(leaky(-2), -0.02f);  // default alpha 0.01
  leaky = activation_from_attrs(
      A({{"activation", S("LeakyRelu")}, {"activation_alpha", F(0.5f)}}));
  EXPECT_FLOAT_EQ(leaky(-2), -1.0f);
  auto clip = activation_from_attrs(A({{"activation", S("Clip")},
                                       {"activation_alpha", F(0)},
                                       {"activation_beta", F(6)}}));
  EXPECT_FLOAT_EQ(clip(-1), 0);
  EXPECT_FLOAT_EQ(clip(7), 6);
  EXPECT_FLOAT_EQ(clip(3), 3);
  auto clip_default = activation_from_attrs(A({{"activation", S("Clip")}}));
  EXPECT_FLOAT_EQ(clip_default(-1e30f), -1e30f);
  auto sig = activation_from_attrs(A({{"activation", S("Sigmoid")}}));
  EXPECT_NEAR(sig(0), 0.5f, 1e-7);
  EXPECT_NEAR(sig(2), 1 / (1 + std::exp(-2.0)), 1e-7);
  EXPECT_NEAR(activation_from_attrs(A({{"activation", S("Tanh")}}))(0.5f),
              std::tanh(0.5), 1e-7);
  auto hs = activation_from_attrs(A({{"activation", S("HardSigmoid")}}));
  EXPECT_FLOAT_EQ(hs(1), 0.7f);  // 0.2 * 1 + 0.5
  EXPECT_FLOAT_EQ(hs(10), 1);
  EXPECT_FLOAT_EQ(hs(-10), 0);
  auto hsw = activation_from_attrs(A({{"activation", S("HardSwish")}}));
  EXPECT_FLOAT_EQ(hsw(1), 1 * (1.0f / 6 + 0.5f));
  EXPECT_FLOAT_EQ(hsw(-4), 0);
  EXPECT_FLOAT_EQ(hsw(4), 4);
  auto elu = activation_from_attrs(A({{"activation", S("Elu")}}));
  EXPECT_NEAR(elu(-1), std::exp(-1.0) - 1, 1e-6);
  EXPECT_FLOAT_EQ(elu(2), 2);
  float al = 0, be = 0;
  shoal::ref::activation_defaults("HardSigmoid", al, be);
  EXPECT_FLOAT_EQ(al, 0.2f);
  EXPECT_FLOAT_EQ(be, 0.5f);
  EXPECT_TRUE(shoal::ref::is_fusable_activation("Clip"));
  EXPECT_FALSE(shoal::ref::is_fusable_activation("Softmax"));
  EXPECT_FLOAT_EQ(shoal::ref::activation_of("Clip", -1, 1)(5), 1);
  auto gelu = activation_from_attrs(A({{"activation", S("Gelu")}}));
  EXPECT_NEAR(gelu(1), 0.5 * (1 + std::erf(1 / std::sqrt(2.0))), 1e-6);
  auto silu = activation_from_attrs(A({{"activation", S("shoal.Silu")}}));
  EXPECT_NEAR(silu(-2), -2 / (1 + std::exp(2.0)), 1e-6);
  expect_error(
      [] {
        activation_from_attrs(A({{"activation", S("Softplus")}}));
      },
      ErrorKind::unsupported, "Softplus");
}

// --- Conv --------------------------------------------------------------------

TEST(RefNNConv, Plain4x4) {
  HostTensor x = f32({1, 1, 4, 4}, iota(16));
  HostTensor w = f32({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  expect_values(run("Conv", A(), {&x, &w}), {54, 63, 90, 99});
  // pads 1: same size; corners sum 2x2 blocks.
  HostTensor y = run("Conv", A({{"pads", Is({1, 1, 1, 1})}}), {&x, &w});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
  expect_values(
      y, {14, 24, 30, 22, 33, 54, 63, 45, 57, 90, 99, 69, 46, 72, 78, 54});
  // stride 2 with pads 1
  expect_values(
      run("Conv", A({{"pads", Is({1, 1, 1, 1})}, {"strides", Is({2, 2})}}),
          {&x, &w}),
      {14, 30, 57, 99});
  // asymmetric pads: one row on top only
  expect_values(run("Conv", A({{"pads", Is({1, 0, 0, 0})}}), {&x, &w}),
                {24, 30, 54, 63, 90, 99});
}

TEST(RefNNConv, DilationGroupDepthwise) {
  HostTensor x = f32({1, 1, 4, 4}, iota(16));
  HostTensor w2 = f32({1, 1, 2, 2}, {1, 1, 1, 1});
  // dilation 2: taps x[i,j] + x[i,j+2] + x[i+2,j] + x[i+2,j+2]
  expect_values(run("Conv", A({{"dilations", Is({2, 2})}}), {&x, &w2}),
                {24, 28, 40, 44});

  // group 2: channel 0 (ones) -> out 0 with weight 3, channel 1 (twos) -> out
  // 1, weight 5
  HostTensor xg = f32({1, 2, 2, 2}, {1, 1, 1, 1, 2, 2, 2, 2});
  HostTensor wg = f32({2, 1, 1, 1}, {3, 5});
  expect_values(run("Conv", A({{"group", I(2)}}), {&xg, &wg}),
                {3, 3, 3, 3, 10, 10, 10, 10});
  // the same weights without groups mix the channels
  HostTensor wm = f32({1, 2, 1, 1}, {3, 5});
  expect_values(run("Conv", A(), {&xg, &wm}), {13, 13, 13, 13});

  // depthwise 3x3 with pads 1: kernel c has only its centre = c + 1
  HostTensor xd = X({1, 3, 3, 4});
  std::vector<float> wv(27, 0);
  for (int c = 0; c < 3; ++c) wv[size_t(c * 9 + 4)] = float(c + 1);
  HostTensor wd = f32({3, 1, 3, 3}, wv);
  HostTensor y =
      run("Conv", A({{"group", I(3)}, {"pads", Is({1, 1, 1, 1})}}), {&xd, &wd});
  std::vector<float> want(36);
  for (int i = 0; i < 36; ++i)
    want[size_t(i)] = xd.as<float>()[i] * float(i / 12 + 1);
  expect_values(y, want);
}

TEST(RefNNConv, OneAndThreeSpatialDims) {
  HostTensor x1 = f32({1, 1, 5}, iota(5));
  HostTensor w1 = f32({1, 1, 2}, {1, -1});
  expect_values(run("Conv", A(), {&x1, &w1}), {-1, -1, -1, -1});
  HostTensor x3 = f32({1, 1, 2, 3, 3}, std::vector<float>(18, 1));
  HostTensor w3 = f32({2, 1, 2, 2, 2}, std::vector<float>(16, 0.5f));
  HostTensor y = run("Conv", A(), {&x3, &w3});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 1, 2, 2}));
  expect_values(y, std::vector<float>(8, 4));
}

TEST(RefNNConv, BiasResidualActivation) {
  HostTensor x = f32({1, 1, 2, 2}, {1, -2, 3, -4});
  HostTensor w = f32({2, 1, 1, 1}, {1, -1});
  HostTensor b = f32({2}, {0.5f, 1});
  expect_values(run("Conv", A(), {&x, &w, &b}),
                {1.5f, -1.5f, 3.5f, -3.5f, 0, 3, -2, 5});
  expect_values(run("Conv", A({{"activation", S("Relu")}}), {&x, &w, &b}),
                {1.5f, 0, 3.5f, 0, 0, 3, 0, 5});
  HostTensor r = f32({1, 2, 2, 2}, {1, 1, 1, 1, -10, 0, 0, 0});
  // y = act(conv + bias + residual)
  expect_values(run("Conv",
                    A({{"activation", S("Clip")},
                       {"activation_alpha", F(0)},
                       {"activation_beta", F(4)}}),
                    {&x, &w, &b, &r}),
                {2.5f, 0, 4, 0, 0, 3, 0, 4});
  // residual without bias
  expect_values(run("Conv", A(), {&x, &w, nullptr, &r}),
                {2, -1, 4, -3, -11, 2, -3, 4});
}

TEST(RefNNConv, MatchesPyTorch) {
  // x[1,4,5,6], w[4,2,3,3], group 2, pads (top 1, left 2, bottom 0, right 1),
  // strides (2,1), dilations (1,2), bias
  HostTensor x = X({1, 4, 5, 6});
  HostTensor w = W({4, 2, 3, 3});
  HostTensor b = f32({4}, {0.5f, -0.25f, 1.0f, 0.0f});
  HostTensor y = run("Conv",
                     A({{"group", I(2)},
                        {"pads", Is({1, 2, 0, 1})},
                        {"strides", Is({2, 1})},
                        {"dilations", Is({1, 2})}}),
                     {&x, &w, &b});
  EXPECT_EQ(y.shape(), (Shape{1, 4, 2, 5}));
  expect_values(y, kConvTorch);
}

TEST(RefNNConv, InferOddSizes) {
  EXPECT_EQ(
      infer("Conv", A({{"strides", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}),
            {vi({1, 3, 7, 9}), vi({8, 3, 3, 3})}),
      (Shape{1, 8, 4, 5}));
  EXPECT_EQ(
      infer("Conv", A({{"auto_pad", S("SAME_UPPER")}, {"strides", Is({2, 2})}}),
            {vi({1, 3, 7, 9}), vi({8, 3, 3, 3}), vi({8})}),
      (Shape{1, 8, 4, 5}));
  EXPECT_EQ(
      infer("Conv", A({{"group", I(3)}}), {vi({1, 3, 5, 5}), vi({3, 1, 5, 1})}),
      (Shape{1, 3, 1, 5}));
  EXPECT_EQ(infer("Conv", A(),
                  {vi({2, 1, 11}), vi({4, 1, 4}), absent(), vi({2, 4, 8})}),
            (Shape{2, 4, 8}));
}

TEST(RefNNConv, Errors) {
  expect_error(
      [] {
        infer("Conv", A(), {vi({1, 1, 3, 3}), vi({1, 1, 5, 5})});
      },
      ErrorKind::invalid_argument, "larger than padded input");
  expect_error(
      [] {
        infer("Conv", A({{"strides", Is({0, 0})}}),
              {vi({1, 1, 3, 3}), vi({1, 1, 1, 1})});
      },
      ErrorKind::invalid_argument, "strides");
  expect_error(
      [] {
        infer("Conv", A(), {vi({1, 3, 3, 3}), vi({1, 2, 1, 1})});
      },
      ErrorKind::invalid_argument, "channel mismatch");
  expect_error(
      [] {
        infer("Conv", A(), {vi({1, 1, 3, 3}), vi({2, 1, 1, 1}), vi({3})});
      },
      ErrorKind::invalid_argument, "bias B");
  expect_error(
      [] {
        infer("Conv", A(),
              {vi({1, 1, 3, 3}), vi({2, 1, 1, 1}), absent(), vi({1, 2, 3, 2})});
      },
      ErrorKind::invalid_argument, "residual");
  expect_error(
      [] {
        infer("Conv", A(), {vi({1, 1, 3, 3}, DType::i64), vi({1, 1, 1, 1})});
      },
      ErrorKind::unsupported, "int64");
  expect_error(
      [] {
        infer("Conv", A(), {vi({1, 1, 3, 3}), vi({1, 1, 1, 1}, DType::f64)});
      },
      ErrorKind::unsupported, "Conv");
  expect_error(
      [] {
        infer("Conv", A({{"activation", S("Softplus")}}),
              {vi({1, 1, 3, 3}), vi({1, 1, 1, 1})});
      },
      ErrorKind::unsupported, "Softplus");
  expect_error(
      [] {
        infer("Conv", A(), {vi({1, 1, 3, 3})});
      },
      ErrorKind::invalid_argument, "W");
}

// Not run by default: the reference conv must stay usable on real layers.
TEST(RefNNConv, DISABLED_Speed64x64x56x56) {
  HostTensor x = X({1, 64, 56, 56});
  HostTensor w = W({64, 64, 3, 3});
  auto t0 = std::chrono::steady_clock::now();
  HostTensor y = run("Conv", A({{"pads", Is({1, 1, 1, 1})}}), {&x, &w});
  double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  EXPECT_EQ(y.shape(), (Shape{1, 64, 56, 56}));
  std::printf("3x3 conv 64->64 on 56x56: %.3f s\n", s);
  EXPECT_LT(s, 3.0);
}

// --- ConvTranspose -----------------------------------------------------------

TEST(RefNNConvTranspose, HandValues) {
  HostTensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  HostTensor w = f32({1, 1, 2, 2}, {1, 1, 1, 1});
  expect_values(run("ConvTranspose", A(), {&x, &w}),
                {1, 3, 2, 4, 10, 6, 3, 7, 4});
  // stride 2: each input becomes a 2x2 block
  expect_values(run("ConvTranspose", A({{"strides", Is({2, 2})}}), {&x, &w}),
                {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4});
  // pads crop, output_padding adds (bias-only) rows/cols at the end
  HostTensor b = f32({1}, {0.5f});
  HostTensor y = run("ConvTranspose",
                     A({{"strides", Is({2, 2})},
                        {"pads", Is({1, 1, 0, 0})},
                        {"output_padding", Is({1, 0})}}),
                     {&x, &w, &b});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 3}));
  expect_values(y, {1.5f, 2.5f, 2.5f, 3.5f, 4.5f, 4.5f, 3.5f, 4.5f, 4.5f, 0.5f,
                    0.5f, 0.5f});
  // group 2, one output channel per group
  HostTensor xg = f32({1, 2, 1, 1}, {1, 2});
  HostTensor wg = f32({2, 1, 1, 2}, {1, 10, 100, 1000});
  expect_values(run("ConvTranspose", A({{"group", I(2)}}), {&xg, &wg}),
                {1, 10, 200, 2000});
}

TEST(RefNNConvTranspose, MatchesPyTorch) {
  // x[1,2,2,3], w[2,1,3,2], group 2, strides (2,3), pads (1,0,1,0),
  // output_padding (1,2), dilations (1,2), bias
  HostTensor x = X({1, 2, 2, 3});
  HostTensor w = W({2, 1, 3, 2});
  HostTensor b = f32({2}, {0.125f, -0.5f});
  HostTensor y = run("ConvTranspose",
                     A({{"group", I(2)},
                        {"strides", Is({2, 3})},
                        {"pads", Is({1, 0, 1, 0})},
                        {"output_padding", Is({1, 2})},
                        {"dilations", Is({1, 2})}}),
                     {&x, &w, &b});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 4, 11}));
  expect_values(y, kConvTransposeTorch);
}

TEST(RefNNConvTranspose, InferAndErrors) {
  EXPECT_EQ(infer("ConvTranspose",
                  A({{"strides", Is({2, 2})}, {"output_shape", Is({11, 7})}}),
                  {vi({1, 8, 5, 3}), vi({8, 4, 3, 3})}),
            (Shape{1, 4, 11, 7}));
  EXPECT_EQ(infer("ConvTranspose",
                  A({{"strides", Is({2, 2})}, {"auto_pad", S("SAME_UPPER")}}),
                  {vi({1, 8, 5, 3}), vi({8, 4, 3, 3}), vi({4})}),
            (Shape{1, 4, 10, 6}));
  EXPECT_EQ(
      infer("ConvTranspose", A({{"strides", Is({3})}, {"dilations", Is({2})}}),
            {vi({1, 2, 7}), vi({2, 5, 4})}),
      (Shape{1, 5, 25}));
  expect_error(
      [] {
        infer("ConvTranspose", A(), {vi({1, 3, 3, 3}), vi({2, 1, 1, 1})});
      },
      ErrorKind::invalid_argument, "channel mismatch");
  expect_error(
      [] {
        infer("ConvTranspose", A(),
              {vi({1, 2, 3, 3}), vi({2, 1, 1, 1}), vi({2})});
      },
      ErrorKind::invalid_argument, "bias B");
  expect_error(
      [] {
        infer("ConvTranspose", A(),
              {vi({1, 1, 3, 3}, DType::i8), vi({1, 1, 1, 1})});
      },
      ErrorKind::unsupported, "int8");
}

// --- BatchNormalization ------------------------------------------------------

TEST(RefNNBatchNorm, Values) {
  HostTensor x = f32({1, 2, 1, 2}, {1, 2, 3, 4});
  HostTensor scale = f32({2}, {2, 1}), b = f32({2}, {0, 1});
  HostTensor mean = f32({2}, {1, 3}), var = f32({2}, {4, 0.25f});
  expect_values(run("BatchNormalization", A({{"epsilon", F(0)}}),
                    {&x, &scale, &b, &mean, &var}),
                {0, 1, 1, 3});
  // default epsilon 1e-5
  HostTensor y = run("BatchNormalization", A(), {&x, &scale, &b, &mean, &var});
  EXPECT_NEAR(y.as<float>()[1], 2 * 1 / std::sqrt(4 + 1e-5), 1e-6);
  // rank 2 input
  HostTensor x2 = f32({2, 2}, {1, 3, 2, 4});
  expect_values(run("BatchNormalization", A({{"epsilon", F(0)}}),
                    {&x2, &scale, &b, &mean, &var}),
                {0, 1, 1, 3});
}

// training_mode=1: statistics of X over N and the spatial dims (channel 0:
// 1, 3, 5, 7: mean 4, population variance 5; channel 1: all 2), running
// statistics moved by 1 - momentum (0.9) towards them.
TEST(RefNNBatchNorm, TrainingMode) {
  HostTensor x = f32({2, 2, 1, 2}, {1, 3, 2, 2, 5, 7, 2, 2});
  HostTensor scale = f32({2}, {1, 2}), bias = f32({2}, {0, 1});
  HostTensor mean = f32({2}, {1, 1}), var = f32({2}, {1, 1});
  Attrs a = A({{"training_mode", I(1)}, {"epsilon", F(1)}});
  const OpSpec& spec = op_spec("BatchNormalization");
  std::vector<ValueInfo> infos;
  std::vector<TensorRef> refs;
  for (const HostTensor* t : {&x, &scale, &bias, &mean, &var}) {
    infos.push_back(vi(t->shape()));
    refs.push_back(t->ref());
  }
  std::vector<TypeShape> ts = spec.infer(a, infos);
  std::vector<HostTensor> out;
  for (const TypeShape& t : ts) out.emplace_back(t.dtype, t.shape);
  std::vector<TensorRef> outs;
  for (HostTensor& t : out) outs.push_back(t.ref());
  spec.reference(a, refs, outs);
  const float r = 1 / std::sqrt(6.0f);  // 1 / sqrt(var 5 + epsilon 1)
  expect_values(out[0], {-3 * r, -r, 1, 1, r, 3 * r, 1, 1});
  expect_values(out[1], {1.3f, 1.1f});  // 0.9 * 1 + 0.1 * (4, 2)
  expect_values(out[2], {1.4f, 0.9f});  // 0.9 * 1 + 0.1 * (5, 0)
  // Y alone: the running statistics are optional outputs
  std::vector<TensorRef> y_only = {outs[0]};
  std::fill(out[0].as<float>(), out[0].as<float>() + 8, 0.0f);
  spec.reference(a, refs, y_only);
  expect_values(out[0], {-3 * r, -r, 1, 1, r, 3 * r, 1, 1});
}

TEST(RefNNBatchNorm, InferAndErrors) {
  auto ins = [](Shape p) {
    return std::vector<ValueInfo>{vi({2, 3, 5, 7}), vi(p), vi(p), vi(p), vi(p)};
  };
  EXPECT_EQ(infer("BatchNormalization", A(), ins({3})), (Shape{2, 3, 5, 7}));
  expect_error([&] { infer("BatchNormalization", A(), ins({4})); },
               ErrorKind::invalid_argument, "scale");
  std::vector<TypeShape> ts =
      op_spec("BatchNormalization").infer(A({{"training_mode", I(1)}}), ins({3}));
  ASSERT_EQ(ts.size(), 3u);  // Y, running_mean, running_var
  EXPECT_EQ(ts[1].shape, (Shape{3}));
  EXPECT_EQ(ts[2].shape, (Shape{3}));
  expect_error(
      [&] {
        infer("BatchNormalization", A({{"training_mode", I(2)}}), ins({3}));
      },
      ErrorKind::invalid_argument, "training_mode must be 0 or 1, got 2");
  expect_error(
      [&] {
        auto v = ins({3});
        v[0].dtype = DType::f64;
        infer("BatchNormalization", A(), v);
      },
      ErrorKind::unsupported, "float64");
}

// --- pools -------------------------------------------------------------------

TEST(RefNNPool, MaxPool) {
  HostTensor x = f32({1, 1, 4, 4}, iota(16));
  expect_values(
      run("MaxPool", A({{"kernel_shape", Is({2, 2})}, {"strides", Is({2, 2})}}),
          {&x}),
      {6, 8, 14, 16});
  // pads never win, even over negative values
  HostTensor neg = f32({1, 1, 2, 2}, {-1, -2, -3, -4});
  expect_values(
      run("MaxPool",
          A({{"kernel_shape", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}),
          {&neg}),
      {-1, -1, -2, -1, -1, -2, -3, -3, -4});
  // ceil_mode: 5 -> 3 windows of 2, the last one partial
  HostTensor x5 = f32({1, 1, 1, 5}, {5, 1, 4, 2, 3});
  expect_values(run("MaxPool",
                    A({{"kernel_shape", Is({1, 2})},
                       {"strides", Is({1, 2})},
                       {"ceil_mode", I(1)}}),
                    {&x5}),
                {5, 4, 3});
  // dilation 2 in 1-D
  HostTensor x1 = f32({1, 1, 6}, {1, 9, 2, 8, 3, 7});
  expect_values(
      run("MaxPool", A({{"kernel_shape", Is({2})}, {"dilations", Is({2})}}),
          {&x1}),
      {2, 9, 3, 8});
}

// MaxPool's Indices: max positions in the input flattened over [N, C,
// spatial...], spatial row-major (storage_order 0) or column-major (1).
void expect_indices(const HostTensor& t, const std::vector<int64_t>& want) {
  ASSERT_EQ(t.dtype(), DType::i64);
  ASSERT_EQ(t.numel(), int64_t(want.size())) << shoal::shape_str(t.shape());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(t.as<int64_t>()[i], want[i]) << "element " << i;
}

TEST(RefNNPool, MaxPoolIndices) {
  HostTensor x = f32({1, 1, 4, 4}, iota(16));
  Attrs a = A({{"kernel_shape", Is({2, 2})}, {"strides", Is({2, 2})}});
  auto y = run_outputs("MaxPool", a, {&x}, 2);
  expect_values(y[0], {6, 8, 14, 16});
  expect_indices(y[1], {5, 7, 13, 15});
  a.set("storage_order", I(1));  // (h, w) -> h + w * H
  y = run_outputs("MaxPool", a, {&x}, 2);
  expect_values(y[0], {6, 8, 14, 16});
  expect_indices(y[1], {5, 13, 7, 15});
  // N and C count whole planes: each 2x2 plane's maximum is its last element
  HostTensor nc = f32({2, 2, 2, 2}, iota(16));
  y = run_outputs("MaxPool", A({{"kernel_shape", Is({2, 2})}}), {&nc}, 2);
  expect_indices(y[1], {3, 7, 11, 15});
  // padding never wins; ties go to the first element; a NaN wins
  HostTensor neg = f32({1, 1, 2, 2}, {-1, -2, -3, -4});
  y = run_outputs("MaxPool", A({{"kernel_shape", Is({2, 2})}, {"pads", Is({1, 1, 1, 1})}}), {&neg},
                  2);
  expect_indices(y[1], {0, 0, 1, 0, 0, 1, 2, 2, 3});
  HostTensor ties = f32({1, 1, 2, 2}, {1, 1, 1, 1});
  y = run_outputs("MaxPool", A({{"kernel_shape", Is({2, 2})}}), {&ties}, 2);
  expect_indices(y[1], {0});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  HostTensor with_nan = f32({1, 1, 2, 2}, {1, nan, 5, 2});
  y = run_outputs("MaxPool", A({{"kernel_shape", Is({2, 2})}}), {&with_nan}, 2);
  EXPECT_TRUE(std::isnan(y[0].as<float>()[0]));
  expect_indices(y[1], {1});
  // 1-D with dilation 2
  HostTensor x1 = f32({1, 1, 6}, {1, 9, 2, 8, 3, 7});
  y = run_outputs("MaxPool", A({{"kernel_shape", Is({2})}, {"dilations", Is({2})}}), {&x1}, 2);
  expect_values(y[0], {2, 9, 3, 8});
  expect_indices(y[1], {2, 1, 4, 3});
  // 3-D: the maximum at (d, h, w) = (0, 1, 2) of [2, 3, 4]
  std::vector<float> v(24, 0.0f);
  v[6] = 1;
  HostTensor x3 = f32({1, 1, 2, 3, 4}, v);
  Attrs a3 = A({{"kernel_shape", Is({2, 3, 4})}});
  expect_indices(run_outputs("MaxPool", a3, {&x3}, 2)[1], {6});  // (0 * 3 + 1) * 4 + 2
  a3.set("storage_order", I(1));
  expect_indices(run_outputs("MaxPool", a3, {&x3}, 2)[1], {14});  // 0 + 1 * 2 + 2 * 2 * 3
  // Indices are int64, Y's shape; storage_order is 0 or 1
  std::vector<TypeShape> ts = op_spec("MaxPool").infer(A({{"kernel_shape", Is({2, 2})}}),
                                                       std::vector<ValueInfo>{vi({1, 3, 5, 5})});
  ASSERT_EQ(ts.size(), 2u);
  EXPECT_EQ(ts[1].dtype, DType::i64);
  EXPECT_EQ(ts[1].shape, (Shape{1, 3, 4, 4}));
  expect_error(
      [] {
        infer("MaxPool", A({{"kernel_shape", Is({2, 2})}, {"storage_order", I(2)}}),
              {vi({1, 1, 3, 3})});
      },
      ErrorKind::invalid_argument, "MaxPool: storage_order must be 0 or 1, got 2");
}

TEST(RefNNPool, AveragePool) {
  HostTensor x = f32({1, 1, 4, 4}, iota(16));
  expect_values(
      run("AveragePool",
          A({{"kernel_shape", Is({2, 2})}, {"strides", Is({2, 2})}}), {&x}),
      {3.5f, 5.5f, 11.5f, 13.5f});
  HostTensor x3 = f32({1, 1, 1, 3}, {3, 6, 9});
  // pads 1 on W: windows [pad,3], [3,6], [6,9], [9,pad]
  Attrs a = A({{"kernel_shape", Is({1, 2})}, {"pads", Is({0, 1, 0, 1})}});
  expect_values(run("AveragePool", a, {&x3}), {3, 4.5f, 7.5f, 9});
  a.set("count_include_pad", I(1));
  expect_values(run("AveragePool", a, {&x3}), {1.5f, 4.5f, 7.5f, 4.5f});
}

TEST(RefNNPool, MatchesPyTorch) {
  HostTensor x = X({1, 1, 5, 7});
  Attrs a = A({{"kernel_shape", Is({3, 2})},
               {"strides", Is({2, 2})},
               {"pads", Is({1, 1, 1, 1})},
               {"ceil_mode", I(1)},
               {"count_include_pad", I(1)}});
  HostTensor y = run("AveragePool", a, {&x});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 4}));
  expect_values(y, kAvgPoolInclTorch);
  a.set("count_include_pad", I(0));
  expect_values(run("AveragePool", a, {&x}), kAvgPoolExclTorch);

  HostTensor xm = X({1, 2, 6, 7});
  y = run("MaxPool",
          A({{"kernel_shape", Is({2, 3})},
             {"strides", Is({2, 2})},
             {"pads", Is({1, 1, 1, 1})},
             {"dilations", Is({2, 1})},
             {"ceil_mode", I(1)}}),
          {&xm});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 4, 4}));
  expect_values(y, kMaxPoolTorch);
}

TEST(RefNNPool, InferAndErrors) {
  EXPECT_EQ(infer("MaxPool",
                  A({{"kernel_shape", Is({3, 3})},
                     {"strides", Is({2, 2})},
                     {"pads", Is({1, 1, 1, 1})}}),
                  {vi({1, 64, 113, 57})}),
            (Shape{1, 64, 57, 29}));
  EXPECT_EQ(infer("AveragePool",
                  A({{"kernel_shape", Is({3, 3})},
                     {"strides", Is({2, 2})},
                     {"ceil_mode", I(1)}}),
                  {vi({1, 8, 10, 11})}),
            (Shape{1, 8, 5, 5}));
  EXPECT_EQ(infer("MaxPool",
                  A({{"kernel_shape", Is({2, 2, 2})},
                     {"auto_pad", S("SAME_LOWER")},
                     {"strides", Is({2, 2, 2})}}),
                  {vi({1, 2, 3, 5, 7})}),
            (Shape{1, 2, 2, 3, 4}));
  expect_error(
      [] {
        infer("MaxPool", A({{"kernel_shape", Is({5, 5})}}), {vi({1, 1, 3, 3})});
      },
      ErrorKind::invalid_argument,
      "MaxPool: kernel 5x5 larger than padded input 3x3");
  expect_error(
      [] {
        infer("AveragePool",
              A({{"kernel_shape", Is({2, 2})}, {"strides", Is({0, 2})}}),
              {vi({1, 1, 3, 3})});
      },
      ErrorKind::invalid_argument, "AveragePool: attribute 'strides'");
  expect_error(
      [] {
        infer("MaxPool", A(), {vi({1, 1, 3, 3})});
      },
      ErrorKind::invalid_argument, "kernel_shape");
  expect_error(
      [] {
        infer("AveragePool", A({{"kernel_shape", Is({2, 2})}}), {vi({1, 1, 3, 3}, DType::u8)});
      },
      ErrorKind::unsupported, "uint8");
  // MaxPool pools 8-bit maps (ONNX allows them; int8 QDQ models).
  std::vector<TypeShape> ts = op_spec("MaxPool").infer(
      A({{"kernel_shape", Is({2, 2})}}), std::vector<ValueInfo>{vi({1, 1, 3, 3}, DType::u8)});
  EXPECT_EQ(ts.at(0).dtype, DType::u8);
  EXPECT_EQ(ts.at(0).shape, Shape({1, 1, 2, 2}));
}

TEST(RefNNGlobalPool, Values) {
  HostTensor x = f32({1, 2, 2, 3}, {1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -6});
  HostTensor y = run("GlobalAveragePool", A(), {&x});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 1, 1}));
  expect_values(y, {3.5f, -3.5f});
  expect_values(run("GlobalMaxPool", A(), {&x}), {6, -1});
  HostTensor x1 = f32({2, 1, 3}, {1, 2, 6, 0, 0, 3});
  expect_values(run("GlobalAveragePool", A(), {&x1}), {3, 1});
  EXPECT_EQ(infer("GlobalMaxPool", A(), {vi({1, 5, 7, 9, 3})}),
            (Shape{1, 5, 1, 1, 1}));
  expect_error(
      [] {
        infer("GlobalAveragePool", A(), {vi({5, 7})});
      },
      ErrorKind::invalid_argument, "rank >= 3");
  expect_error(
      [] {
        infer("GlobalMaxPool", A(), {vi({1, 1, 3}, DType::i32)});
      },
      ErrorKind::unsupported, "int32");
}

// --- Gemm / MatMul -----------------------------------------------------------

TEST(RefNNGemm, Values) {
  HostTensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  HostTensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  expect_values(run("Gemm", A(), {&a, &b}), {4, 5, 10, 11});
  HostTensor bt = f32({2, 3}, {1, 0, 1, 0, 1, 1});  // b transposed
  HostTensor c = f32({2}, {100, 200});
  expect_values(run("Gemm", A({{"transB", I(1)}}), {&a, &bt, &c}),
                {104, 205, 110, 211});
  HostTensor at = f32({3, 2}, {1, 4, 2, 5, 3, 6});
  HostTensor cm = f32({2, 1}, {1, -1});
  expect_values(
      run("Gemm", A({{"transA", I(1)}, {"alpha", F(2)}, {"beta", F(0.5f)}}),
          {&at, &b, &cm}),
      {8.5f, 10.5f, 19.5f, 21.5f});
  HostTensor cs = f32({}, {-10});
  expect_values(run("Gemm", A({{"activation", S("Relu")}}), {&a, &b, &cs}),
                {0, 0, 0, 1});
}

TEST(RefNNGemm, InferAndErrors) {
  EXPECT_EQ(infer("Gemm", A({{"transA", I(1)}, {"transB", I(1)}}),
                  {vi({7, 3}), vi({5, 7}), vi({1, 5})}),
            (Shape{3, 5}));
  expect_error(
      [] {
        infer("Gemm", A(), {vi({2, 3}), vi({4, 5})});
      },
      ErrorKind::invalid_argument, "inner dimensions");
  expect_error(
      [] {
        infer("Gemm", A(), {vi({2, 3}), vi({3, 5}), vi({3})});
      },
      ErrorKind::invalid_argument, "C has shape [3]");
  expect_error(
      [] {
        infer("Gemm", A(), {vi({2, 3, 1}), vi({3, 5})});
      },
      ErrorKind::invalid_argument, "2-D");
  expect_error(
      [] {
        infer("Gemm", A(), {vi({2, 3}, DType::i64), vi({3, 5})});
      },
      ErrorKind::unsupported, "Gemm");
}

TEST(RefNNMatMul, Values) {
  HostTensor a = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  HostTensor b = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  expect_values(run("MatMul", A(), {&a, &b}), {4, 5, 10, 11});
  HostTensor v = f32({3}, {1, 1, 2});
  HostTensor y = run("MatMul", A(), {&a, &v});  // [2,3] x [3] -> [2]
  EXPECT_EQ(y.shape(), (Shape{2}));
  expect_values(y, {9, 21});
  y = run("MatMul", A(), {&v, &b});  // [3] x [3,2] -> [2]
  EXPECT_EQ(y.shape(), (Shape{2}));
  expect_values(y, {3, 3});
  y = run("MatMul", A(), {&v, &v});  // dot product -> scalar
  EXPECT_EQ(y.shape(), (Shape{}));
  expect_values(y, {6});
  // batch broadcasting [2,1,1,2] x [3,2,1] -> [2,3,1,1]
  HostTensor ba = f32({2, 1, 1, 2}, {1, 2, 3, 4});
  HostTensor bb = f32({3, 2, 1}, {1, 0, 0, 1, 1, 1});
  y = run("MatMul", A(), {&ba, &bb});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 1, 1}));
  expect_values(y, {1, 2, 3, 3, 4, 7});
  HostTensor col = f32({3, 1}, {-1, 0, 0});
  expect_values(
      run("MatMul",
          A({{"activation", S("LeakyRelu")}, {"activation_alpha", F(0.5f)}}),
          {&a, &col}),
      {-0.5f, -2});
}

TEST(RefNNMatMul, InferAndErrors) {
  EXPECT_EQ(infer("MatMul", A(), {vi({5, 1, 3, 4}), vi({7, 4, 2})}),
            (Shape{5, 7, 3, 2}));
  EXPECT_EQ(infer("MatMul", A(), {vi({4}), vi({2, 4, 3})}), (Shape{2, 3}));
  EXPECT_EQ(infer("MatMul", A(), {vi({2, 3, 4}), vi({4})}), (Shape{2, 3}));
  expect_error(
      [] {
        infer("MatMul", A(), {vi({2, 3}), vi({4, 5})});
      },
      ErrorKind::invalid_argument, "inner dimensions");
  expect_error(
      [] {
        infer("MatMul", A(), {vi({2, 2, 3}), vi({3, 3, 5})});
      },
      ErrorKind::invalid_argument, "broadcast");
  expect_error(
      [] {
        infer("MatMul", A(), {vi({}), vi({3})});
      },
      ErrorKind::invalid_argument, "rank");
  expect_error(
      [] {
        infer("MatMul", A(), {vi({2, 3}), vi({3, 2}, DType::i32)});
      },
      ErrorKind::unsupported, "int32");
}

// --- Softmax / LogSoftmax ----------------------------------------------------

TEST(RefNNSoftmax, Values) {
  const double e1 = std::exp(1.0), e2 = std::exp(2.0), s = 1 + e1 + e2;
  HostTensor x = f32({1, 3}, {0, 1, 2});
  expect_values(run("Softmax", A(), {&x}),
                {float(1 / s), float(e1 / s), float(e2 / s)});
  expect_values(
      run("LogSoftmax", A(), {&x}),
      {float(-std::log(s)), float(1 - std::log(s)), float(2 - std::log(s))});
  // large values stay finite
  HostTensor big = f32({2}, {1000, 1000});
  expect_values(run("Softmax", A(), {&big}), {0.5f, 0.5f});
  // axis 0 on [2,2]
  HostTensor m = f32({2, 2}, {0, 5, 0, 5});
  expect_values(run("Softmax", A({{"axis", I(0)}}), {&m}),
                {0.5f, 0.5f, 0.5f, 0.5f});
}

TEST(RefNNSoftmax, Coerce2DVersusAxis) {
  // [1,2,2]: opset-13 semantics normalize along the last dim only; the old
  // (coerce_2d) semantics flatten from axis 1 and normalize over all 4.
  HostTensor x = f32({1, 2, 2}, {0, 0, 0, 0});
  expect_values(run("Softmax", A(), {&x}), {0.5f, 0.5f, 0.5f, 0.5f});
  expect_values(run("Softmax", A({{"coerce_2d", I(1)}}), {&x}),
                {0.25f, 0.25f, 0.25f, 0.25f});
  expect_values(run("Softmax", A({{"coerce_2d", I(1)}, {"axis", I(2)}}), {&x}),
                {0.5f, 0.5f, 0.5f, 0.5f});
  expect_values(run("LogSoftmax", A({{"coerce_2d", I(1)}}), {&x}),
                std::vector<float>(4, float(-std::log(4.0))));
  // axis 1 on [2,3,2] without coerce: normalizes over the 3
  HostTensor ones = f32({2, 3, 2}, std::vector<float>(12, 1));
  HostTensor y = run("Softmax", A({{"axis", I(1)}}), {&ones});
  expect_values(y, std::vector<float>(12, 1.0f / 3));
  EXPECT_EQ(infer("LogSoftmax", A(), {vi({3, 5, 7})}), (Shape{3, 5, 7}));
  expect_error(
      [] {
        infer("Softmax", A({{"axis", I(3)}}), {vi({3, 5, 7})});
      },
      ErrorKind::invalid_argument, "axis 3");
  expect_error([] { infer("LogSoftmax", A(), {vi({3}, DType::f64)}); },
               ErrorKind::unsupported, "LogSoftmax");
}

// --- Pad ---------------------------------------------------------------------

TEST(RefNNPad, ConstantAttributeAndInputs) {
  HostTensor x = f32({2, 2}, {1, 2, 3, 4});
  // opset < 11: attributes
  HostTensor y =
      run("Pad", A({{"pads", Is({0, 1, 1, 0})}, {"value", F(9)}}), {&x});
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  expect_values(y, {9, 1, 2, 9, 3, 4, 9, 9, 9});
  // opset >= 11: inputs
  HostTensor pads = i64({4}, {0, 1, 1, 0});
  HostTensor cv = f32({}, {-1});
  expect_values(run("Pad", A(), {&x, &pads, &cv}),
                {-1, 1, 2, -1, 3, 4, -1, -1, -1});
  expect_values(run("Pad", A(), {&x, &pads}), {0, 1, 2, 0, 3, 4, 0, 0, 0});
  // opset 18 axes input: pad only dim 1 (given as -1)
  HostTensor pads1 = i64({2}, {2, 1});
  HostTensor axes = i64({1}, {-1});
  expect_values(run("Pad", A(), {&x, &pads1, nullptr, &axes}),
                {0, 0, 1, 2, 0, 0, 0, 3, 4, 0});
  // negative pads crop
  HostTensor crop = i64({4}, {-1, 0, 0, -1});
  expect_values(run("Pad", A(), {&x, &crop}), {3});
}

TEST(RefNNPad, ReflectEdgeWrap) {
  HostTensor x = f32({1, 3}, {1, 2, 3});
  HostTensor pads = i64({4}, {0, 2, 0, 2});
  expect_values(run("Pad", A({{"mode", S("reflect")}}), {&x, &pads}),
                {3, 2, 1, 2, 3, 2, 1});
  expect_values(run("Pad", A({{"mode", S("edge")}}), {&x, &pads}),
                {1, 1, 1, 2, 3, 3, 3});
  expect_values(run("Pad", A({{"mode", S("wrap")}}), {&x, &pads}),
                {2, 3, 1, 2, 3, 1, 2});
  // reflect beyond one period (numpy semantics)
  HostTensor far = i64({4}, {0, 5, 0, 2});
  expect_values(run("Pad", A({{"mode", S("reflect")}}), {&x, &far}),
                {2, 1, 2, 3, 2, 1, 2, 3, 2, 1});
  // 2-D reflect
  HostTensor x2 = f32({2, 2}, {1, 2, 3, 4});
  HostTensor p2 = i64({4}, {1, 1, 0, 0});
  expect_values(run("Pad", A({{"mode", S("reflect")}}), {&x2, &p2}),
                {4, 3, 4, 2, 1, 2, 4, 3, 4});
  // edge after cropping pads from the cropped edge
  HostTensor pc = i64({4}, {0, -1, 0, 1});
  expect_values(run("Pad", A({{"mode", S("edge")}}), {&x, &pc}), {2, 3, 3});
}

TEST(RefNNPad, InferAndErrors) {
  HostTensor pads = i64({6}, {1, 0, 2, 0, 3, -1});
  ValueInfo p = vi({6}, DType::i64);
  p.constant = &pads;
  EXPECT_EQ(infer("Pad", A(), {vi({3, 5, 7}), p}), (Shape{4, 8, 8}));
  ValueInfo unknown = vi({6}, DType::i64);
  expect_error(
      [&] {
        infer("Pad", A(), {vi({3, 5, 7}), unknown});
      },
      ErrorKind::unsupported, "pads");
  expect_error(
      [] {
        infer("Pad", A({{"pads", Is({1, 1})}}), {vi({3, 5})});
      },
      ErrorKind::invalid_argument, "expected 4");
  expect_error(
      [] {
        infer("Pad", A({{"pads", Is({0, -6, 0, 0})}}), {vi({3, 5})});
      },
      ErrorKind::invalid_argument, "crop");
  expect_error(
      [] {
        infer("Pad", A({{"pads", Is({0, 0})}, {"mode", S("mirror")}}),
              {vi({3})});
      },
      ErrorKind::unsupported, "mirror");
  expect_error(
      [] {
        infer("Pad", A({{"pads", Is({0, 0})}}), {vi({3}, DType::i64)});
      },
      ErrorKind::unsupported, "int64");
  expect_error([] { infer("Pad", A(), {vi({3})}); },
               ErrorKind::invalid_argument, "pads");
}

// --- Resize / Upsample -------------------------------------------------------

// Resize (opset 11+) with known scales or sizes.
HostTensor resize(const Attrs& a, const HostTensor& x,
                  std::vector<float> scales, std::vector<int64_t> sizes = {}) {
  HostTensor sc = f32({int64_t(scales.size())}, scales);
  HostTensor sz = i64({int64_t(sizes.size())}, sizes);
  return run("Resize", a,
             {&x, nullptr, scales.empty() ? nullptr : &sc,
              sizes.empty() ? nullptr : &sz});
}

TEST(RefNNResize, NearestOnnxCases) {
  HostTensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  // resize_upsample_scales_nearest (half_pixel, round_prefer_floor)
  HostTensor y = resize(A(), x, {1, 1, 2, 3});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 6}));
  expect_values(y, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,
                    3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4});
  // resize_downsample_scales_nearest
  HostTensor x8 = f32({1, 1, 2, 4}, iota(8));
  expect_values(resize(A(), x8, {1, 1, 0.6f, 0.6f}), {1, 3});
  // sizes, asymmetric + round_prefer_ceil
  // (resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric)
  HostTensor x16 = f32({1, 1, 4, 4}, iota(16));
  y = resize(A({{"coordinate_transformation_mode", S("asymmetric")},
                {"nearest_mode", S("round_prefer_ceil")}}),
             x16, {}, {1, 1, 8, 8});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 8, 8}));
  const float row0[] = {1, 2, 2, 3, 3, 4, 4, 4};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(y.as<float>()[i], row0[i]) << i;
  // align_corners + floor
  y = resize(A({{"coordinate_transformation_mode", S("align_corners")},
                {"nearest_mode", S("floor")}}),
             x16, {}, {1, 1, 8, 8});
  const float row0b[] = {1, 1, 1, 2, 2, 3, 3, 4};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(y.as<float>()[i], row0b[i]) << i;
  // exact ties (asymmetric, scale 2: 0.5, 1.5): round_prefer_floor goes
  // down, round_prefer_ceil up
  HostTensor x2 = f32({1, 2}, {10, 20});
  Attrs asym = A({{"coordinate_transformation_mode", S("asymmetric")}});
  expect_values(resize(asym, x2, {1, 2}), {10, 10, 20, 20});
  asym.set("nearest_mode", S("round_prefer_ceil"));
  expect_values(resize(asym, x2, {1, 2}), {10, 20, 20, 20});
  asym.set("nearest_mode", S("ceil"));
  expect_values(resize(asym, x2, {1, 2}), {10, 20, 20, 20});
}

TEST(RefNNResize, LinearOnnxCases) {
  HostTensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  expect_values(resize(A({{"mode", S("linear")}}), x, {1, 1, 2, 2}),
                {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f,
                 3.25f, 3.5f, 3, 3.25f, 3.75f, 4});
  expect_values(
      resize(A({{"mode", S("linear")},
                {"coordinate_transformation_mode", S("align_corners")}}),
             x, {1, 1, 2, 2}),
      {1, 4.f / 3, 5.f / 3, 2, 5.f / 3, 2, 7.f / 3, 8.f / 3, 7.f / 3, 8.f / 3,
       3, 10.f / 3, 3, 10.f / 3, 11.f / 3, 4});
  HostTensor x8 = f32({1, 1, 2, 4}, iota(8));
  expect_values(resize(A({{"mode", S("linear")}}), x8, {1, 1, 0.6f, 0.6f}),
                {2.6666665f, 4.3333331f});
  // 1-D linear, asymmetric
  HostTensor x1 = f32({3}, {0, 10, 20});
  expect_values(resize(A({{"mode", S("linear")},
                          {"coordinate_transformation_mode", S("asymmetric")}}),
                       x1, {2}),
                {0, 5, 10, 15, 20, 20});
}

TEST(RefNNResize, MatchesPyTorch) {
  HostTensor x = X({1, 1, 3, 4});
  HostTensor y = resize(A({{"mode", S("linear")}}), x, {}, {1, 1, 5, 7});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 5, 7}));
  expect_values(y, kResizeLinearHalfPixelTorch);
  expect_values(
      resize(A({{"mode", S("linear")},
                {"coordinate_transformation_mode", S("pytorch_half_pixel")}}),
             x, {}, {1, 1, 5, 7}),
      kResizeLinearHalfPixelTorch);
  expect_values(
      resize(A({{"mode", S("linear")},
                {"coordinate_transformation_mode", S("align_corners")}}),
             x, {}, {1, 1, 5, 7}),
      kResizeLinearAlignCornersTorch);
  expect_values(resize(A({{"coordinate_transformation_mode", S("asymmetric")},
                          {"nearest_mode", S("floor")}}),
                       x, {}, {1, 1, 5, 7}),
                kResizeNearestTorch);
}

TEST(RefNNResize, Opset10FormAndAxes) {
  // Resize-10: inputs (X, scales), asymmetric; downsampling nearest rounds up
  // (ONNX test resize_downsample_nearest, opset 10).
  HostTensor x8 = f32({1, 1, 2, 4}, iota(8));
  HostTensor sc = f32({4}, {1, 1, 0.6f, 0.6f});
  expect_values(run("Resize", A(), {&x8, &sc}), {1, 3});
  HostTensor up = f32({4}, {1, 1, 2, 2});
  HostTensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  expect_values(run("Resize", A({{"mode", S("linear")}}), {&x, &up}),
                {1, 1.5f, 2, 2, 2, 2.5f, 3, 3, 3, 3.5f, 4, 4, 3, 3.5f, 4, 4});
  // opset 18 axes attribute: sizes for the last dim only
  HostTensor y = resize(A({{"axes", Is({-1})}}), x, {}, {4});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 4}));
  expect_values(y, {1, 1, 2, 2, 3, 3, 4, 4});
  // keep_aspect_ratio_policy not_larger: sizes 4x8 on 2x2 -> scale 2 -> 4x4
  y = resize(
      A({{"keep_aspect_ratio_policy", S("not_larger")}, {"axes", Is({2, 3})}}),
      x, {}, {4, 8});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
}

// Expected values from ONNX's reference implementation
// (onnx/backend/test/case/node/resize.py: interpolate_nd, cubic_coeffs).
TEST(RefNNResize, CubicOnnxReference) {
  HostTensor x = f32({1, 1, 3, 3}, {1, 4, 2, 7, 3, 9, 5, 8, 6});
  // half_pixel, cubic_coeff_a -0.75, edge padding
  HostTensor y = resize(A({{"mode", S("cubic")}}), x, {1, 1, 2, 1.5f});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 6, 4}));
  expect_values(y,
                {0.0426839f, 2.50293f, 4.02184f, 1.73475f, 2.3283f,  3.00488f, 3.7125f,  3.69823f,
                 6.1252f,    3.80371f, 3.14766f, 6.95366f, 7.45333f, 5.13184f, 4.47578f, 8.28179f,
                 5.56268f,   6.23926f, 6.94687f, 6.9326f,  4.46456f, 6.9248f,  8.44372f, 6.15663f});
  // align_corners
  expect_values(
      resize(A({{"mode", S("cubic")}, {"coordinate_transformation_mode", S("align_corners")}}), x,
             {1, 1, 1.5f, 2}),
      {1,        2.308f,   3.664f,   3.936f,   2.992f,   2,        4.69096f, 3.74351f,
       2.87694f, 3.3353f,  4.89614f, 6.37609f, 7.23032f, 5.38549f, 3.63462f, 4.16713f,
       6.72457f, 9.18805f, 5.79009f, 6.08553f, 6.44374f, 6.79941f, 6.97992f, 7.09767f});
  // cubic_coeff_a -0.5 with exclude_outside, downsampled to sizes
  std::vector<float> v(16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::pow(float(i), 1.5f);
  HostTensor x4 = f32({1, 1, 4, 4}, v);
  expect_values(
      resize(A({{"mode", S("cubic")}, {"cubic_coeff_a", F(-0.5f)}, {"exclude_outside", I(1)}}), x4,
             {}, {1, 1, 3, 2}),
      {1.2133f, 5.44703f, 16.2014f, 25.165f, 41.7068f, 53.5036f});
  // three resized dims: 4 x 4 x 4 taps
  std::vector<float> v3(24);
  for (size_t i = 0; i < v3.size(); ++i) v3[i] = float(i * 7 % 11);
  HostTensor x3 = f32({2, 3, 4}, v3);
  expect_values(
      resize(A({{"mode", S("cubic")}}), x3, {1.5f, 2, 0.5f}),
      {3.90922f, 5.67454f, 3.61641f,  6.6329f,  3.11401f, 8.29324f, 3.41632f, 6.82882f, 4.35262f,
       3.06661f, 4.91573f, 0.798888f, 4.05664f, 7.62793f, 4.18695f, 6.97809f, 4.38898f, 5.94208f,
       4.89221f, 4.27673f, 5.41248f,  2.92249f, 5.73212f, 2.08331f, 4.20406f, 9.58132f, 4.7575f,
       7.32328f, 5.66395f, 3.59092f,  6.36811f, 1.72465f, 6.47234f, 2.77836f, 6.5485f,  3.36774f});
}

TEST(RefNNResize, TfCropAndResize) {
  std::vector<float> v(16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::pow(float(i), 1.5f);
  HostTensor x = f32({1, 1, 4, 4}, v);
  // rows from 0.25 to 1.25 of the input, columns from -0.5 to 0.75: the
  // coordinates outside the input give extrapolation_value
  HostTensor roi = f32({8}, {0, 0, 0.25f, -0.5f, 1, 1, 1.25f, 0.75f});
  HostTensor sz = i64({4}, {1, 1, 3, 4});
  Attrs a = A({{"coordinate_transformation_mode", S("tf_crop_and_resize")},
               {"extrapolation_value", F(-1)}});
  expect_values(run("Resize", a, {&x, &roi, nullptr, &sz}),
                {-1, -1, 11.1803f, 14.6969f, -1, -1, 27, 31.6228f, -1, -1, -1, -1});
  // roi names the resized axes only when 'axes' is given
  HostTensor roi2 = f32({4}, {0.25f, -0.5f, 1.25f, 0.75f});
  HostTensor sz2 = i64({2}, {3, 4});
  a.set("axes", Is({2, 3}));
  expect_values(run("Resize", a, {&x, &roi2, nullptr, &sz2}),
                {-1, -1, 11.1803f, 14.6969f, -1, -1, 27, 31.6228f, -1, -1, -1, -1});
}

TEST(RefNNResize, InferAndErrors) {
  HostTensor sc = f32({4}, {1, 1, 1.5f, 0.5f});
  ValueInfo scales = vi({4});
  scales.constant = &sc;
  ValueInfo empty = vi({0});
  EXPECT_EQ(infer("Resize", A(), {vi({1, 3, 7, 9}), empty, scales}),
            (Shape{1, 3, 10, 4}));
  HostTensor sz = i64({4}, {1, 3, 5, 11});
  ValueInfo sizes = vi({4}, DType::i64);
  sizes.constant = &sz;
  EXPECT_EQ(infer("Resize", A(), {vi({1, 3, 7, 9}), empty, empty, sizes}),
            (Shape{1, 3, 5, 11}));
  EXPECT_EQ(infer("Resize", A(), {vi({1, 3, 7, 9}), absent(), absent(), sizes}),
            (Shape{1, 3, 5, 11}));
  ValueInfo unknown = vi({4});
  expect_error(
      [&] {
        infer("Resize", A(), {vi({1, 3, 7, 9}), empty, unknown});
      },
      ErrorKind::unsupported, "scales");
  expect_error(
      [&] {
        infer("Resize", A(), {vi({1, 3, 7, 9}), empty, scales, sizes});
      },
      ErrorKind::invalid_argument, "exactly one");
  const Attrs crop = A({{"coordinate_transformation_mode", S("tf_crop_and_resize")}});
  expect_error(
      [&] {
        infer("Resize", crop, {vi({1, 3, 7, 9}), empty, scales});
      },
      ErrorKind::invalid_argument,
      "Resize: coordinate_transformation_mode 'tf_crop_and_resize' needs 'roi' with 8 "
      "values (starts and ends of 4 axes), got 0");
  expect_error(
      [&] {
        infer("Resize", crop, {vi({1, 3, 7, 9}), vi({8}), scales});
      },
      ErrorKind::unsupported, "'roi' of tf_crop_and_resize must be a compile-time constant");
  EXPECT_EQ(infer("Resize", A({{"mode", S("cubic")}}), {vi({1, 3, 7, 9}), empty, scales}),
            (Shape{1, 3, 10, 4}));
  expect_error(
      [&] {
        infer("Upsample", A({{"mode", S("cubic")}, {"scales", Fs({1, 1, 2, 2})}}),
              {vi({1, 3, 7, 9})});
      },
      ErrorKind::invalid_argument, "Upsample: unknown mode 'cubic'");
  expect_error(
      [&] {
        infer("Resize", A({{"mode", S("cubic")}, {"exclude_outside", I(2)}}),
              {vi({1, 3, 7, 9}), empty, scales});
      },
      ErrorKind::invalid_argument, "exclude_outside must be 0 or 1, got 2");
  expect_error(
      [&] {
        infer("Resize", A(), {vi({1, 3, 7}), empty, scales});
      },
      ErrorKind::invalid_argument, "expected 3");
  expect_error(
      [&] {
        infer("Resize", A(), {vi({1, 3, 7, 9}, DType::u8), empty, scales});
      },
      ErrorKind::unsupported, "uint8");
}

TEST(RefNNUpsample, Values) {
  HostTensor x = f32({1, 1, 2, 2}, {1, 2, 3, 4});
  // opset 7: scales attribute
  HostTensor y = run("Upsample", A({{"scales", Fs({1, 1, 2, 3})}}), {&x});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 6}));
  expect_values(y, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,
                    3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4});
  // opset 9: scales input; linear with asymmetric coordinates
  HostTensor sc = f32({4}, {1, 1, 2, 2});
  expect_values(run("Upsample", A({{"mode", S("linear")}}), {&x, &sc}),
                {1, 1.5f, 2, 2, 2, 2.5f, 3, 3, 3, 3.5f, 4, 4, 3, 3.5f, 4, 4});
  EXPECT_EQ(infer("Upsample", A({{"scales", Fs({1, 1, 2.5f, 2})}}),
                  {vi({1, 3, 5, 7})}),
            (Shape{1, 3, 12, 14}));
  expect_error(
      [] {
        infer("Upsample", A(), {vi({1, 3, 5, 7}), vi({4})});
      },
      ErrorKind::unsupported, "scales");
  expect_error(
      [] {
        infer("Upsample", A({{"scales", Fs({1, 2})}}), {vi({1, 3, 5, 7})});
      },
      ErrorKind::invalid_argument, "scales");
}

// --- reductions --------------------------------------------------------------

TEST(RefNNReduce, Values) {
  HostTensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  HostTensor y =
      run("ReduceSum", A({{"axes", Is({1})}, {"keepdims", I(0)}}), {&x});
  EXPECT_EQ(y.shape(), (Shape{2}));
  expect_values(y, {6, 15});
  y = run("ReduceMean", A({{"axes", Is({0})}}), {&x});
  EXPECT_EQ(y.shape(), (Shape{1, 3}));
  expect_values(y, {2.5f, 3.5f, 4.5f});
  y = run("ReduceMax", A({{"axes", Is({-1})}}), {&x});
  EXPECT_EQ(y.shape(), (Shape{2, 1}));
  expect_values(y, {3, 6});
  // no axes: all dims
  y = run("ReduceMean", A(), {&x});
  EXPECT_EQ(y.shape(), (Shape{1, 1}));
  expect_values(y, {3.5f});
  y = run("ReduceMax", A({{"keepdims", I(0)}}), {&x});
  EXPECT_EQ(y.shape(), (Shape{}));
  expect_values(y, {6});
  // axes as input 1 (ReduceSum-13, ReduceMean-18)
  HostTensor axes = i64({1}, {0});
  expect_values(run("ReduceSum", A(), {&x, &axes}), {5, 7, 9});
  expect_values(run("ReduceMean", A(), {&x, &axes}), {2.5f, 3.5f, 4.5f});
  // empty axes with noop_with_empty_axes: identity
  HostTensor none = i64({0}, {});
  y = run("ReduceSum", A({{"noop_with_empty_axes", I(1)}}), {&x, &none});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  expect_values(y, {1, 2, 3, 4, 5, 6});
  y = run("ReduceSum", A(), {&x, &none});
  expect_values(y, {21});
  // 3-D, middle and last axes
  HostTensor x3 = f32({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  expect_values(
      run("ReduceSum", A({{"axes", Is({1})}, {"keepdims", I(0)}}), {&x3}),
      {4, 6, 12, 14});
  expect_values(
      run("ReduceMax", A({{"axes", Is({0, 2})}, {"keepdims", I(0)}}), {&x3}),
      {6, 8});
  // NaN propagates through max
  HostTensor xn = f32({3}, {1, std::nanf(""), 2});
  EXPECT_TRUE(std::isnan(run("ReduceMax", A(), {&xn}).as<float>()[0]));
}

TEST(RefNN, ActivationsOfNanAreNan) {  // ONNX (numpy): relu(NaN) = NaN, ...
  HostTensor xn = f32({2}, {std::nanf(""), -1.0f});
  for (const char* op : {"Relu", "HardSigmoid", "Clip", "Sigmoid", "Elu", "LeakyRelu"}) {
    HostTensor y = run(op, A(), {&xn});
    EXPECT_TRUE(std::isnan(y.as<float>()[0])) << op;
    EXPECT_FALSE(std::isnan(y.as<float>()[1])) << op;
  }
}

TEST(RefNNReduce, InferAndErrors) {
  EXPECT_EQ(infer("ReduceMean", A({{"axes", Is({2, 3})}}), {vi({1, 7, 5, 3})}),
            (Shape{1, 7, 1, 1}));
  EXPECT_EQ(infer("ReduceSum", A({{"axes", Is({-3})}, {"keepdims", I(0)}}),
                  {vi({1, 7, 5, 3})}),
            (Shape{1, 5, 3}));
  expect_error(
      [] {
        infer("ReduceSum", A({{"axes", Is({4})}}), {vi({1, 7, 5, 3})});
      },
      ErrorKind::invalid_argument, "axes value 4");
  expect_error(
      [] {
        infer("ReduceMax", A({{"axes", Is({1, -3})}}), {vi({1, 7, 5, 3})});
      },
      ErrorKind::invalid_argument, "twice");
  expect_error(
      [] {
        infer("ReduceSum", A(), {vi({1, 7}), vi({1}, DType::i64)});
      },
      ErrorKind::unsupported, "axes");
  expect_error(
      [] {
        infer("ReduceMean", A(), {vi({1, 7}, DType::i32)});
      },
      ErrorKind::unsupported, "ReduceMean");
}

// --- Einsum ------------------------------------------------------------------

TEST(RefNNEinsum, Values) {
  const HostTensor a = f32({2, 3}, iota(6)), b = f32({3, 2}, iota(6));
  // [[1,2,3],[4,5,6]] x [[1,2],[3,4],[5,6]]
  expect_values(run("Einsum", A({{"equation", S("ij,jk->ik")}}), {&a, &b}), {22, 28, 49, 64});
  expect_values(run("Einsum", A({{"equation", S(" i j , j k ")}}), {&a, &b}), {22, 28, 49, 64});
  expect_values(run("Einsum", A({{"equation", S("ij->ji")}}), {&a}), {1, 4, 2, 5, 3, 6});
  expect_values(run("Einsum", A({{"equation", S("ij")}}), {&a}), iota(6));
  expect_values(run("Einsum", A({{"equation", S("ji")}}), {&a}), {1, 4, 2, 5, 3, 6});
  expect_values(run("Einsum", A({{"equation", S("ij->")}}), {&a}), {21});
  const HostTensor sq = f32({3, 3}, iota(9));
  expect_values(run("Einsum", A({{"equation", S("ii->i")}}), {&sq}), {1, 5, 9});
  expect_values(run("Einsum", A({{"equation", S("ii")}}), {&sq}), {15});
  // "..." broadcast: [2,1] against [3]: out[i][j] = x[i] * y[j].
  const HostTensor x = f32({2, 1}, {1, 2}), y = f32({3}, {1, 10, 100});
  expect_values(run("Einsum", A({{"equation", S("...,...->...")}}), {&x, &y}),
                {1, 10, 100, 2, 20, 200});
  // Three operands: sum_j,k a[i,j] b[j,k] c[k].
  const HostTensor c = f32({2}, {1, -1});
  expect_values(run("Einsum", A({{"equation", S("ij,jk,k->i")}}), {&a, &b, &c}), {-6, -15});
  const HostTensor ia = i64({2, 2}, {1, 2, 3, 4});
  const HostTensor iy = run("Einsum", A({{"equation", S("ij,jk")}}), {&ia, &ia});
  ASSERT_EQ(iy.dtype(), DType::i64);
  EXPECT_EQ(std::vector<int64_t>(iy.as<int64_t>(), iy.as<int64_t>() + 4),
            (std::vector<int64_t>{7, 10, 15, 22}));
}

TEST(RefNNEinsum, Errors) {
  auto eq = [](const char* e) { return A({{"equation", S(e)}}); };
  const ErrorKind bad = ErrorKind::invalid_argument;
  expect_error(
      [&] {
        infer("Einsum", eq("ij,jk->ik"), {vi({2, 3})});
      },
      bad, "equation 'ij,jk->ik': has 2 input terms, but the node has 1 input");
  expect_error(
      [&] {
        infer("Einsum", eq("ij,jk"), {vi({2, 3}), vi({4, 5})});
      },
      bad, "letter 'j' has size 3 in input 0 but size 4 in input 1");
  expect_error(
      [&] {
        infer("Einsum", eq("ii"), {vi({2, 3})});
      },
      bad, "letter 'i' has size 2 in input 0 but size 3 in input 0");
  expect_error(
      [&] {
        infer("Einsum", eq("ijk->i"), {vi({2, 3})});
      },
      bad, "input term 0 'ijk' names 3 dims, but input 0 has shape [2,3] (rank 2)");
  expect_error(
      [&] {
        infer("Einsum", eq("...ijk->i..."), {vi({2, 3})});
      },
      bad, "names 3 dims besides '...'");
  expect_error(
      [&] {
        infer("Einsum", eq("...i,...i->...i"), {vi({2, 3}), vi({4, 3})});
      },
      bad, "the dims of '...' do not broadcast");
  expect_error([&] { infer("Einsum", eq("i-j"), {vi({2, 3})}); }, bad, "character '-'");
  expect_error([&] { infer("Einsum", A(), {vi({2, 3})}); }, bad, "missing attribute 'equation'");
  expect_error(
      [&] {
        infer("Einsum", eq("ij,jk"), {vi({2, 3}), vi({3, 2}, DType::i64)});
      },
      bad, "input 1 is int64 but input 0 is float32");
  expect_error(
      [&] {
        infer("Einsum", eq("ij"), {vi({2, 3}, DType::u8)});
      },
      ErrorKind::unsupported, "Einsum");
}

TEST(RefNNEinsum, PerSampleRule) {
  const OpSpec& spec = op_spec("Einsum");
  ASSERT_TRUE(spec.per_sample);
  auto stacks = [&](const char* e, std::vector<Shape> shapes, std::vector<bool> batched) {
    std::vector<ValueInfo> in;
    for (Shape& s : shapes) in.push_back(vi(s));
    const std::unique_ptr<bool[]> b(new bool[batched.size()]);
    for (size_t i = 0; i < batched.size(); ++i) b[i] = batched[i];
    return spec.per_sample(A({{"equation", S(e)}}), in, {b.get(), batched.size()});
  };
  EXPECT_TRUE(stacks("bij,bjk->bik", {{1, 2, 3}, {1, 3, 4}}, {true, true}));
  EXPECT_TRUE(stacks("bij,jk->bik", {{1, 2, 3}, {3, 4}}, {true, false}));
  EXPECT_TRUE(stacks("bii->bi", {{1, 3, 3}}, {true}));
  EXPECT_TRUE(stacks("...ij->...ji", {{1, 2, 3}}, {true}));
  EXPECT_FALSE(stacks("bij->ij", {{1, 2, 3}}, {true}));   // summed over samples
  EXPECT_FALSE(stacks("bij->jbi", {{1, 2, 3}}, {true}));  // moved
  EXPECT_FALSE(stacks("bbi->bi", {{1, 1, 3}}, {true}));   // on a diagonal
  EXPECT_FALSE(stacks("bij,bjk->bik", {{1, 2, 3}, {1, 3, 4}}, {true, false}));  // constant b
  EXPECT_FALSE(stacks("bij,cjk->bik", {{1, 2, 3}, {1, 3, 4}}, {true, true}));   // two letters
  EXPECT_FALSE(stacks("ij,jk->ik", {{1, 3}, {3, 4}}, {false, false}));
  EXPECT_FALSE(
      stacks("...i,...i->...i", {{2, 3}, {1, 2, 3}}, {true, true}));   // "..." dims misaligned
  EXPECT_FALSE(stacks("ij,jk->ik", {{1, 3}, {2, 4}}, {true, false}));  // malformed: no
}

// --- the table ---------------------------------------------------------------

TEST(RefNNTable, AllOpsRegistered) {
  for (const char* name :
       {"Conv", "ConvTranspose", "BatchNormalization", "MaxPool", "AveragePool",
        "GlobalAveragePool", "GlobalMaxPool", "Gemm", "MatMul", "Softmax",
        "LogSoftmax", "Pad", "Resize", "Upsample", "ReduceMean", "ReduceMax",
        "ReduceSum"}) {
    const OpSpec* s = shoal::ops::find_op(name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_TRUE(s->infer) << name;
    EXPECT_TRUE(s->reference) << name;
    EXPECT_FALSE(s->summary.empty()) << name;
    const bool indices = std::string(name) == "MaxPool";  // Y and int64 Indices
    const std::vector<DType> dtypes =
        indices ? std::vector<DType>{DType::f32, DType::i64, DType::u8, DType::i8}
                : std::vector<DType>{DType::f32};
    // MaxPool: Y and Indices; BatchNormalization: Y and, in training mode,
    // running_mean and running_var
    EXPECT_EQ(s->num_outputs, indices                                     ? 2
                              : std::string(name) == "BatchNormalization" ? 3
                                                                          : 1)
        << name;
    EXPECT_LE(s->min_inputs, s->max_inputs) << name;
    EXPECT_EQ(s->dtypes, dtypes) << name;
  }
}

// The int8 table ops' (fuse_qdq_lookup) shape inference: bad operands get
// clear errors, not a crash.
TEST(RefNNQLookup, InferErrors) {
  auto infer_one = [](const std::string& op, std::vector<ValueInfo> in) {
    return op_spec(op).infer(Attrs(), in).at(0);
  };
  const ValueInfo x8 = vi({1, 4, 3, 3}, DType::i8), t8 = vi({256}, DType::u8);
  const ValueInfo tf = vi({256}), s = vi({}), z = vi({}, DType::u8);
  EXPECT_EQ(infer_one("shoal.QLinearLookup", {x8, t8}).dtype, DType::u8);
  EXPECT_EQ(infer_one("shoal.QLinearGlobalAveragePool", {x8, tf, s, z}).shape, Shape({1, 4, 1, 1}));
  EXPECT_EQ(infer_one("shoal.QLinearMul", {x8, tf, vi({1, 4, 1, 1}, DType::u8), tf, s, z}).shape,
            Shape({1, 4, 3, 3}));
  expect_error(
      [&] {
        infer_one("shoal.QLinearLookup", {x8, vi({255}, DType::u8)});
      },
      ErrorKind::invalid_argument, "256 entries");
  expect_error(
      [&] {
        infer_one("shoal.QLinearLookup", {vi({1, 4}), t8});
      },
      ErrorKind::invalid_argument, "only uint8 and int8");
  expect_error(
      [&] {
        infer_one("shoal.QLinearGlobalAveragePool", {vi({4}, DType::i8), tf, s, z});
      },
      ErrorKind::invalid_argument, "rank >= 3");
  expect_error(
      [&] {
        infer_one("shoal.QLinearGlobalAveragePool", {x8, t8, s, z});
      },
      ErrorKind::invalid_argument, "x_table");
  expect_error(
      [&] {
        infer_one("shoal.QLinearMul", {x8, tf, vi({1, 3, 1, 1}, DType::i8), tf, s, z});
      },
      ErrorKind::invalid_argument, "cannot be broadcast");
  expect_error(
      [&] {
        infer_one("shoal.QLinearMul", {x8, tf, x8, tf, vi({2}), z});
      },
      ErrorKind::invalid_argument, "y_scale");
}

}  // namespace
