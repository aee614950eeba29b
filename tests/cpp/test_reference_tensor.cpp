// Elementwise and tensor operators of the op table: shape inference and
// reference kernels, run together as the compiler's constant folding does.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/attrs.hpp"
#include "core/tensor.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal {
namespace {

using ops::ValueInfo;

constexpr int64_t kI64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kI64Min = std::numeric_limits<int64_t>::min();

/// A tensor of dtype t and shape s holding `v` (converted).
HostTensor T(DType t, Shape s, std::vector<double> v) {
  HostTensor h(t, s);
  EXPECT_EQ(int64_t(v.size()), h.numel());
  for (size_t k = 0; k < v.size(); ++k) {
    switch (t) {
      case DType::f32:
        h.as<float>()[k] = float(v[k]);
        break;
      case DType::f64:
        h.as<double>()[k] = v[k];
        break;
      case DType::i64:
        h.as<int64_t>()[k] = int64_t(v[k]);
        break;
      case DType::i32:
        h.as<int32_t>()[k] = int32_t(v[k]);
        break;
      case DType::i8:
        h.as<int8_t>()[k] = int8_t(v[k]);
        break;
      case DType::u8:
      case DType::boolean:
        h.as<uint8_t>()[k] = uint8_t(v[k]);
        break;
      default:
        break;
    }
  }
  return h;
}
HostTensor F(Shape s, std::vector<double> v) { return T(DType::f32, std::move(s), v); }
HostTensor B(Shape s, std::vector<double> v) { return T(DType::boolean, std::move(s), v); }
/// int64 tensor with exact values (no double round trip).
HostTensor I(Shape s, std::vector<int64_t> v) {
  HostTensor h(DType::i64, std::move(s));
  EXPECT_EQ(int64_t(v.size()), h.numel());
  for (size_t k = 0; k < v.size(); ++k) h.as<int64_t>()[k] = v[k];
  return h;
}
/// The absent optional operand.
HostTensor Absent() { return HostTensor(); }

std::vector<double> D(const HostTensor& h) {
  std::vector<double> v;
  for (int64_t k = 0; k < h.numel(); ++k) v.push_back(h.float_at(k));
  return v;
}

const ops::OpSpec& Op(const std::string& name) {
  const ops::OpSpec* op = ops::find_op(name);
  if (!op) throw std::runtime_error("op not registered: " + name);
  return *op;
}

std::vector<ValueInfo> Infos(const std::vector<HostTensor>& in, bool known) {
  std::vector<ValueInfo> vi;
  for (const HostTensor& h : in) {
    ValueInfo v;
    v.present = h.dtype() != DType::undefined;
    v.dtype = h.dtype();
    v.shape = h.shape();
    v.constant = known && v.present ? &h : nullptr;
    vi.push_back(v);
  }
  return vi;
}

/// Shape inference with every input a known constant (or none when !known).
std::vector<ops::TypeShape> Infer(const std::string& op, const Attrs& a,
                                  const std::vector<HostTensor>& in, bool known = true) {
  std::vector<ValueInfo> vi = Infos(in, known);
  return Op(op).infer(a, vi);
}

/// infer + reference, as constant folding does.
std::vector<HostTensor> RunOp(const std::string& op, const Attrs& a,
                              const std::vector<HostTensor>& in) {
  std::vector<ops::TypeShape> ts = Infer(op, a, in);
  std::vector<HostTensor> out;
  for (const auto& t : ts) out.emplace_back(t.dtype, t.shape);
  std::vector<TensorRef> ir, orf;
  for (const HostTensor& h : in) ir.push_back(h.ref());
  for (const HostTensor& h : out) orf.push_back(h.ref());
  Op(op).reference(a, ir, orf);
  return out;
}
HostTensor Run1(const std::string& op, const Attrs& a, const std::vector<HostTensor>& in) {
  return RunOp(op, a, in).at(0);
}

Attrs A(std::initializer_list<std::pair<const char*, AttrValue>> kv) {
  Attrs a;
  for (const auto& [k, v] : kv) a.set(k, v);
  return a;
}

#define EXPECT_SHOAL_ERROR(stmt, kind_, substr)                                     \
  do {                                                                              \
    try {                                                                           \
      stmt;                                                                         \
      ADD_FAILURE() << "no error from " #stmt;                                      \
    } catch (const Error& e) {                                                      \
      EXPECT_EQ(e.kind(), kind_) << e.what();                                       \
      EXPECT_NE(std::string(e.what()).find(substr), std::string::npos) << e.what(); \
    }                                                                               \
  } while (0)

void ExpectNear(const std::vector<double>& got, const std::vector<double>& want,
                double tol = 1e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

// --- the table ------------------------------------------------------------------

TEST(RefTensorTable, AllOpsRegistered) {
  for (const char* n : {"Relu",
                        "LeakyRelu",
                        "PRelu",
                        "Clip",
                        "Sigmoid",
                        "Tanh",
                        "HardSigmoid",
                        "HardSwish",
                        "Elu",
                        "Exp",
                        "Log",
                        "Sqrt",
                        "Neg",
                        "Abs",
                        "Reciprocal",
                        "Floor",
                        "Ceil",
                        "Erf",
                        "Add",
                        "Sub",
                        "Mul",
                        "Div",
                        "Pow",
                        "Max",
                        "Min",
                        "Sum",
                        "Mean",
                        "Equal",
                        "Less",
                        "Greater",
                        "Not",
                        "Where",
                        "Cast",
                        "Identity",
                        "Dropout",
                        "Constant",
                        "ConstantOfShape",
                        "Shape",
                        "Size",
                        "Gather",
                        "Concat",
                        "Split",
                        "Slice",
                        "Reshape",
                        "Flatten",
                        "Transpose",
                        "Squeeze",
                        "Unsqueeze",
                        "Expand",
                        "Range",
                        "Tile"}) {
    const ops::OpSpec* op = ops::find_op(n);
    ASSERT_NE(op, nullptr) << n;
    EXPECT_TRUE(op->infer && op->reference) << n;
    EXPECT_FALSE(op->summary.empty()) << n;
    EXPECT_FALSE(op->dtypes.empty()) << n;
  }
  EXPECT_FALSE(Op("Shape").runtime);
  EXPECT_EQ(Op("Split").num_outputs, -1);
}

// --- activations --------------------------------------------------------------

TEST(RefElementwiseUnary, Relu) {
  EXPECT_EQ(D(Run1("Relu", {}, {F({4}, {-1, 0, 2.5, -3})})), (std::vector<double>{0, 0, 2.5, 0}));
  HostTensor r = Run1("Relu", {}, {I({3}, {-5, 7, 0})});
  EXPECT_EQ(r.dtype(), DType::i64);
  EXPECT_EQ(r.to_ints(), (std::vector<int64_t>{0, 7, 0}));
}

TEST(RefElementwiseUnary, LeakyReluEluHardSigmoid) {
  ExpectNear(D(Run1("LeakyRelu", {}, {F({2}, {-2, 3})})), {-0.02, 3});
  ExpectNear(D(Run1("LeakyRelu", A({{"alpha", 0.5f}}), {F({2}, {-2, 3})})), {-1, 3});
  ExpectNear(D(Run1("Elu", {}, {F({2}, {-1, 2})})), {std::exp(-1.0) - 1, 2});
  ExpectNear(D(Run1("HardSigmoid", {}, {F({3}, {-10, 0, 1})})), {0, 0.5, 0.7});
  ExpectNear(D(Run1("HardSigmoid", A({{"alpha", 0.5f}, {"beta", 0.25f}}), {F({1}, {1})})), {0.75});
  ExpectNear(D(Run1("HardSwish", {}, {F({3}, {-4, 0, 1})})), {0, 0, 1.0 * (1.0 / 6 + 0.5)});
}

TEST(RefElementwiseUnary, SigmoidTanh) {
  ExpectNear(D(Run1("Sigmoid", {}, {F({2}, {0, 2})})), {0.5, 1 / (1 + std::exp(-2.0))});
  ExpectNear(D(Run1("Tanh", {}, {F({2}, {0, 1})})), {0, std::tanh(1.0)});
}

TEST(RefElementwiseUnary, PReluBroadcastsSlope) {
  // x [1,2,2], slope [2,1]: one slope per row.
  HostTensor y = Run1("PRelu", {}, {F({1, 2, 2}, {-1, 1, -2, 2}), F({2, 1}, {0.1, 0.5})});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 2}));
  ExpectNear(D(y), {-0.1, 1, -1, 2});
  EXPECT_SHOAL_ERROR(Infer("PRelu", {}, {F({2}, {1, 2}), F({3}, {1, 2, 3})}),
                     ErrorKind::invalid_argument, "[2]");
}

TEST(RefElementwiseUnary, ClipAttributesAndInputs) {
  // opset 6: attributes.
  ExpectNear(D(Run1("Clip", A({{"min", -1.0f}, {"max", 1.0f}}), {F({3}, {-5, 0.5, 5})})),
             {-1, 0.5, 1});
  // opset 11: optional inputs; min absent.
  ExpectNear(D(Run1("Clip", {}, {F({3}, {-5, 0.5, 5}), Absent(), F({}, {2})})), {-5, 0.5, 2});
  ExpectNear(D(Run1("Clip", {}, {F({3}, {-5, 0.5, 5}), F({}, {0}), F({}, {2})})), {0, 0.5, 2});
  // int64 with only max; no bounds at all.
  EXPECT_EQ(Run1("Clip", {}, {I({3}, {-9, 4, 12}), Absent(), I({}, {5})}).to_ints(),
            (std::vector<int64_t>{-9, 4, 5}));
  ExpectNear(D(Run1("Clip", {}, {F({2}, {-1e30, 1e30})})), {-1e30, 1e30}, 1e24);
  EXPECT_SHOAL_ERROR(Infer("Clip", {}, {F({2}, {1, 2}), I({}, {0})}), ErrorKind::invalid_argument,
                     "min");
}

TEST(RefElementwiseUnary, UnsupportedDtype) {
  EXPECT_SHOAL_ERROR(Infer("Sigmoid", {}, {I({1}, {1})}), ErrorKind::unsupported, "int64");
  EXPECT_SHOAL_ERROR(Infer("Exp", {}, {I({1}, {1})}), ErrorKind::unsupported, "Exp");
}

// --- math -----------------------------------------------------------------------

TEST(RefElementwiseUnary, Math) {
  ExpectNear(D(Run1("Exp", {}, {F({2}, {0, 1})})), {1, std::exp(1.0)}, 1e-6);
  ExpectNear(D(Run1("Log", {}, {F({2}, {1, std::exp(2.0)})})), {0, 2}, 1e-6);
  ExpectNear(D(Run1("Sqrt", {}, {F({2}, {4, 2.25})})), {2, 1.5});
  ExpectNear(D(Run1("Reciprocal", {}, {F({2}, {4, -0.5})})), {0.25, -2});
  ExpectNear(D(Run1("Floor", {}, {F({3}, {-1.5, 1.5, 2})})), {-2, 1, 2});
  ExpectNear(D(Run1("Ceil", {}, {F({3}, {-1.5, 1.5, 2})})), {-1, 2, 2});
  ExpectNear(D(Run1("Erf", {}, {F({2}, {0, 1})})), {0, std::erf(1.0)});
  ExpectNear(D(Run1("Neg", {}, {F({2}, {1, -2})})), {-1, 2});
  ExpectNear(D(Run1("Abs", {}, {F({2}, {1, -2})})), {1, 2});
  EXPECT_EQ(Run1("Neg", {}, {I({2}, {3, -4})}).to_ints(), (std::vector<int64_t>{-3, 4}));
  EXPECT_EQ(Run1("Abs", {}, {I({2}, {3, -4})}).to_ints(), (std::vector<int64_t>{3, 4}));
  HostTensor d = Run1("Sqrt", {}, {T(DType::f64, {1}, {2})});
  EXPECT_EQ(d.dtype(), DType::f64);
  EXPECT_DOUBLE_EQ(d.as<double>()[0], std::sqrt(2.0));
}

TEST(RefElementwiseUnary, NotAndCast) {
  HostTensor n = Run1("Not", {}, {B({3}, {1, 0, 1})});
  EXPECT_EQ(n.dtype(), DType::boolean);
  EXPECT_EQ(D(n), (std::vector<double>{0, 1, 0}));

  HostTensor c = Run1("Cast", A({{"to", int64_t(7)}}), {F({4}, {1.9, -1.9, 0, 3})});
  EXPECT_EQ(c.dtype(), DType::i64);
  EXPECT_EQ(c.to_ints(), (std::vector<int64_t>{1, -1, 0, 3}));  // truncation
  HostTensor f = Run1("Cast", A({{"to", int64_t(1)}}), {I({2}, {-3, 5})});
  EXPECT_EQ(f.dtype(), DType::f32);
  EXPECT_EQ(D(f), (std::vector<double>{-3, 5}));
  HostTensor b = Run1("Cast", A({{"to", int64_t(9)}}), {F({3}, {0, 0.5, -2})});
  EXPECT_EQ(D(b), (std::vector<double>{0, 1, 1}));
  HostTensor s = Run1("Cast", A({{"to", std::string("INT32")}}), {F({1}, {7.5})});
  EXPECT_EQ(s.dtype(), DType::i32);
  EXPECT_EQ(s.as<int32_t>()[0], 7);
  EXPECT_SHOAL_ERROR(Infer("Cast", A({{"to", int64_t(8)}}), {F({1}, {1})}), ErrorKind::unsupported,
                     "Cast");
}

// --- binary ---------------------------------------------------------------------

TEST(RefElementwiseBinary, AddBroadcast) {
  // [2,3,1] + [3,4] -> [2,3,4]; y[i,j,k] = a[i,j] + b[j,k].
  std::vector<double> av = {0, 10, 20, 100, 110, 120}, bv;
  for (int k = 0; k < 12; ++k) bv.push_back(k);
  HostTensor y = Run1("Add", {}, {F({2, 3, 1}, av), F({3, 4}, bv)});
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k)
        EXPECT_EQ(y.as<float>()[(i * 3 + j) * 4 + k], float(av[i * 3 + j] + bv[j * 4 + k]));
}

TEST(RefElementwiseBinary, ScalarAndArithmetic) {
  ExpectNear(D(Run1("Sub", {}, {F({3}, {1, 2, 3}), F({}, {1})})), {0, 1, 2});
  ExpectNear(D(Run1("Mul", {}, {F({2, 1}, {2, 3}), F({1, 2}, {10, 100})})), {20, 200, 30, 300});
  ExpectNear(D(Run1("Div", {}, {F({2}, {1, 3}), F({2}, {4, -2})})), {0.25, -1.5});
  HostTensor d = Run1("Add", {}, {T(DType::f64, {1}, {0.1}), T(DType::f64, {1}, {0.2})});
  EXPECT_DOUBLE_EQ(d.as<double>()[0], 0.1 + 0.2);
  HostTensor i32 = Run1("Mul", {}, {T(DType::i32, {2}, {3, -4}), T(DType::i32, {}, {5})});
  EXPECT_EQ(i32.dtype(), DType::i32);
  EXPECT_EQ(i32.to_ints(), (std::vector<int64_t>{15, -20}));
}

TEST(RefElementwiseBinary, Int64DivTruncates) {
  HostTensor y = Run1("Div", {}, {I({4}, {7, -7, 7, -7}), I({4}, {2, 2, -2, -2})});
  EXPECT_EQ(y.dtype(), DType::i64);
  EXPECT_EQ(y.to_ints(), (std::vector<int64_t>{3, -3, -3, 3}));
  EXPECT_EQ(Run1("Div", {}, {I({1}, {kI64Min}), I({1}, {-1})}).to_ints()[0], kI64Min);
  EXPECT_SHOAL_ERROR(Run1("Div", {}, {I({1}, {1}), I({1}, {0})}), ErrorKind::invalid_argument,
                     "division by zero");
  EXPECT_EQ(Run1("Add", {}, {I({2}, {kI64Max, 1}), I({}, {1})}).to_ints(),
            (std::vector<int64_t>{kI64Min, 2}));  // wraps, no UB
}

TEST(RefElementwiseBinary, Pow) {
  ExpectNear(D(Run1("Pow", {}, {F({3}, {2, 3, 4}), F({}, {2})})), {4, 9, 16});
  HostTensor m = Run1("Pow", {}, {F({2}, {2, 9}), I({2}, {3, 0})});  // mixed types
  EXPECT_EQ(m.dtype(), DType::f32);
  ExpectNear(D(m), {8, 1});
  EXPECT_EQ(Run1("Pow", {}, {I({3}, {3, -2, 10}), I({3}, {4, 3, 0})}).to_ints(),
            (std::vector<int64_t>{81, -8, 1}));
  ExpectNear(D(Run1("Pow", {}, {F({1}, {4}), F({1}, {0.5})})), {2});
}

TEST(RefElementwiseBinary, VariadicMaxMinSumMean) {
  std::vector<HostTensor> in = {F({2, 1}, {1, 5}), F({3}, {0, 2, 4}), F({}, {3})};
  HostTensor mx = Run1("Max", {}, in);
  EXPECT_EQ(mx.shape(), (Shape{2, 3}));
  EXPECT_EQ(D(mx), (std::vector<double>{3, 3, 4, 5, 5, 5}));
  EXPECT_EQ(D(Run1("Min", {}, in)), (std::vector<double>{0, 1, 1, 0, 2, 3}));
  EXPECT_EQ(D(Run1("Sum", {}, in)), (std::vector<double>{4, 6, 8, 8, 10, 12}));
  ExpectNear(D(Run1("Mean", {}, in)), {4 / 3.0, 2, 8 / 3.0, 8 / 3.0, 10 / 3.0, 4});
  EXPECT_EQ(D(Run1("Sum", {}, {F({2}, {1, 2})})), (std::vector<double>{1, 2}));
  EXPECT_EQ(Run1("Max", {}, {I({2}, {1, -5}), I({2}, {0, -3})}).to_ints(),
            (std::vector<int64_t>{1, -3}));
  EXPECT_TRUE(std::isnan(D(Run1("Max", {}, {F({1}, {NAN}), F({1}, {1})}))[0]));
}

TEST(RefElementwiseBinary, Comparisons) {
  HostTensor e = Run1("Equal", {}, {I({3}, {1, 2, 3}), I({}, {2})});
  EXPECT_EQ(e.dtype(), DType::boolean);
  EXPECT_EQ(D(e), (std::vector<double>{0, 1, 0}));
  EXPECT_EQ(D(Run1("Less", {}, {F({3}, {1, 2, 3}), F({1}, {2})})), (std::vector<double>{1, 0, 0}));
  EXPECT_EQ(D(Run1("Greater", {}, {F({2, 1}, {1, 3}), F({2}, {2, 0})})),
            (std::vector<double>{0, 1, 1, 1}));
  EXPECT_EQ(D(Run1("Equal", {}, {B({2}, {1, 0}), B({2}, {1, 1})})), (std::vector<double>{1, 0}));
}

TEST(RefElementwiseBinary, WhereBroadcasts) {
  HostTensor y = Run1("Where", {}, {B({2, 1}, {1, 0}), F({3}, {1, 2, 3}), F({}, {-1})});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(D(y), (std::vector<double>{1, 2, 3, -1, -1, -1}));
  HostTensor yi = Run1("Where", {}, {B({2}, {0, 1}), I({2}, {5, 6}), I({2}, {7, 8})});
  EXPECT_EQ(yi.to_ints(), (std::vector<int64_t>{7, 6}));
}

TEST(RefElementwiseBinary, Errors) {
  EXPECT_SHOAL_ERROR(Infer("Add", {}, {F({2, 3}, {0, 0, 0, 0, 0, 0}), F({4}, {0, 0, 0, 0})}),
                     ErrorKind::invalid_argument, "Add: shapes [2,3] and [4]");
  EXPECT_SHOAL_ERROR(Infer("Mul", {}, {F({1}, {0}), I({1}, {0})}), ErrorKind::invalid_argument,
                     "int64");
  EXPECT_SHOAL_ERROR(Infer("Add", {}, {B({1}, {0}), B({1}, {0})}), ErrorKind::unsupported, "bool");
  EXPECT_SHOAL_ERROR(Infer("Where", {}, {F({1}, {0}), F({1}, {0}), F({1}, {0})}),
                     ErrorKind::invalid_argument, "condition");
}

// --- Identity, Dropout, Constant, ConstantOfShape, Shape, Size ------------------

TEST(RefTensorBasic, IdentityDropout) {
  EXPECT_EQ(Run1("Identity", {}, {I({2}, {4, 5})}).to_ints(), (std::vector<int64_t>{4, 5}));
  auto outs = RunOp("Dropout", A({{"ratio", 0.5f}}), {F({2}, {1, 2})});
  ASSERT_EQ(outs.size(), 2u);
  EXPECT_EQ(D(outs[0]), (std::vector<double>{1, 2}));
  EXPECT_EQ(outs[1].dtype(), DType::boolean);
  EXPECT_EQ(D(outs[1]), (std::vector<double>{1, 1}));
  EXPECT_SHOAL_ERROR(Infer("Dropout", {}, {F({1}, {1}), F({}, {0.5}), B({}, {1})}),
                     ErrorKind::unsupported, "training_mode");
  // Training mode at ratio 0 drops nothing: an identity (Swin's export).
  EXPECT_EQ(D(Run1("Dropout", {}, {F({2}, {1, 2}), F({}, {0}), B({}, {1})})),
            (std::vector<double>{1, 2}));
}

TEST(RefTensorBasic, ModTakesTheDivisorsSignUnlessFmod) {
  const HostTensor a = I({4}, {-7, 7, -7, 7}), b = I({4}, {3, 3, -3, -3});
  EXPECT_EQ(Run1("Mod", {}, {a, b}).to_ints(), (std::vector<int64_t>{2, 1, -1, -2}));
  EXPECT_EQ(Run1("Mod", A({{"fmod", int64_t(1)}}), {a, b}).to_ints(),
            (std::vector<int64_t>{-1, 1, -1, 1}));
  ExpectNear(D(Run1("Mod", A({{"fmod", int64_t(1)}}), {F({2}, {-5.5, 5.5}), F({1}, {2})})),
             {-1.5, 1.5});
  EXPECT_SHOAL_ERROR(Run1("Mod", {}, {I({1}, {1}), I({1}, {0})}), ErrorKind::invalid_argument,
                     "division by zero");
}

TEST(RefTensorBasic, ScatterND) {
  // Elements, then rows; reduction add; an index out of range is an error.
  EXPECT_EQ(D(Run1("ScatterND", {}, {F({4}, {1, 2, 3, 4}), I({2, 1}, {1, -1}), F({2}, {9, 10})})),
            (std::vector<double>{1, 9, 3, 10}));
  EXPECT_EQ(D(Run1("ScatterND", {},
                   {F({2, 2}, {1, 2, 3, 4}), I({1, 1}, {1}), F({1, 2}, {7, 8})})),
            (std::vector<double>{1, 2, 7, 8}));
  EXPECT_EQ(D(Run1("ScatterND", A({{"reduction", std::string("add")}}),
                   {F({3}, {1, 1, 1}), I({2, 1}, {0, 0}), F({2}, {2, 3})})),
            (std::vector<double>{6, 1, 1}));
  EXPECT_SHOAL_ERROR(Run1("ScatterND", {}, {F({2}, {1, 2}), I({1, 1}, {2}), F({1}, {5})}),
                     ErrorKind::invalid_argument, "out of range");
}

TEST(RefTensorBasic, Constant) {
  HostTensor v = I({2}, {3, 4});
  EXPECT_EQ(Run1("Constant", A({{"value", v}}), {}), v);
  HostTensor f = Run1("Constant", A({{"value_float", 2.5f}}), {});
  EXPECT_EQ(f.shape(), Shape{});
  EXPECT_EQ(D(f), (std::vector<double>{2.5}));
  EXPECT_EQ(D(Run1("Constant", A({{"value_floats", std::vector<float>{1, 2}}}), {})),
            (std::vector<double>{1, 2}));
  HostTensor i = Run1("Constant", A({{"value_int", int64_t(-3)}}), {});
  EXPECT_EQ(i.dtype(), DType::i64);
  EXPECT_EQ(i.to_ints(), (std::vector<int64_t>{-3}));
  EXPECT_EQ(Run1("Constant", A({{"value_ints", std::vector<int64_t>{7, 8, 9}}}), {}).shape(),
            (Shape{3}));
  EXPECT_SHOAL_ERROR(Infer("Constant", {}, {}), ErrorKind::invalid_argument, "value");
}

TEST(RefTensorBasic, ConstantOfShape) {
  HostTensor z = Run1("ConstantOfShape", {}, {I({2}, {2, 3})});
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(D(z), std::vector<double>(6, 0));
  HostTensor s = Run1("ConstantOfShape", A({{"value", I({1}, {7})}}), {I({1}, {3})});
  EXPECT_EQ(s.to_ints(), (std::vector<int64_t>{7, 7, 7}));
  EXPECT_SHOAL_ERROR(Infer("ConstantOfShape", {}, {I({1}, {3})}, false), ErrorKind::unsupported,
                     "ConstantOfShape: input 'input'");
}

TEST(RefTensorBasic, ShapeAndSize) {
  HostTensor x(DType::f32, {2, 3, 4, 5});
  EXPECT_EQ(Run1("Shape", {}, {x}).to_ints(), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(Run1("Shape", A({{"start", int64_t(1)}, {"end", int64_t(-1)}}), {x}).to_ints(),
            (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(Run1("Shape", A({{"start", int64_t(-10)}, {"end", int64_t(100)}}), {x}).to_ints(),
            (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(Run1("Shape", A({{"start", int64_t(3)}, {"end", int64_t(1)}}), {x}).numel(), 0);
  HostTensor n = Run1("Size", {}, {x});
  EXPECT_EQ(n.shape(), Shape{});
  EXPECT_EQ(n.to_ints(), (std::vector<int64_t>{120}));
  // Shape needs no data: the kernel reads the operand's shape only.
  std::vector<ValueInfo> vi = {ValueInfo{DType::f32, {6, 7}, nullptr, true}};
  auto ts = Op("Shape").infer({}, vi);
  HostTensor out(ts[0].dtype, ts[0].shape);
  std::vector<TensorRef> ir = {TensorRef{DType::f32, {6, 7}, nullptr}}, orf = {out.ref()};
  Op("Shape").reference({}, ir, orf);
  EXPECT_EQ(out.to_ints(), (std::vector<int64_t>{6, 7}));
}

// --- Gather, Concat, Split ------------------------------------------------------

TEST(RefTensorIndex, Gather) {
  HostTensor x = I({2, 3}, {0, 1, 2, 10, 11, 12});
  HostTensor y = Run1("Gather", A({{"axis", int64_t(1)}}), {x, I({2}, {-1, 0})});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(y.to_ints(), (std::vector<int64_t>{2, 0, 12, 10}));
  HostTensor r = Run1("Gather", {}, {x, I({}, {1})});  // scalar index drops the axis
  EXPECT_EQ(r.shape(), (Shape{3}));
  EXPECT_EQ(r.to_ints(), (std::vector<int64_t>{10, 11, 12}));
  HostTensor f = Run1("Gather", {}, {F({3, 1}, {5, 6, 7}), T(DType::i32, {2, 2}, {2, 0, 1, 1})});
  EXPECT_EQ(f.shape(), (Shape{2, 2, 1}));
  EXPECT_EQ(D(f), (std::vector<double>{7, 5, 6, 6}));
  EXPECT_SHOAL_ERROR(Infer("Gather", {}, {x, I({1}, {2})}), ErrorKind::invalid_argument,
                     "index 2 out of range");
  EXPECT_SHOAL_ERROR(Infer("Gather", A({{"axis", int64_t(2)}}), {x, I({1}, {0})}),
                     ErrorKind::invalid_argument, "axis 2 out of range for rank 2");
}

TEST(RefTensorIndex, Concat) {
  HostTensor y = Run1("Concat", A({{"axis", int64_t(-1)}}),
                      {F({2, 1}, {1, 2}), F({2, 2}, {3, 4, 5, 6}), F({2, 0}, {})});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(D(y), (std::vector<double>{1, 3, 4, 2, 5, 6}));
  EXPECT_EQ(Run1("Concat", A({{"axis", int64_t(0)}}), {I({1}, {2}), I({2}, {-1, 5})}).to_ints(),
            (std::vector<int64_t>{2, -1, 5}));
  EXPECT_SHOAL_ERROR(
      Infer("Concat", A({{"axis", int64_t(0)}}), {F({2, 1}, {1, 2}), F({1, 2}, {1, 2})}),
      ErrorKind::invalid_argument, "[1,2]");
  EXPECT_SHOAL_ERROR(Infer("Concat", A({{"axis", int64_t(3)}}), {F({1, 1}, {1})}),
                     ErrorKind::invalid_argument, "Concat: axis 3 out of range for rank 2");
}

TEST(RefTensorIndex, Split) {
  HostTensor x = F({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
  auto a = RunOp("Split", A({{"axis", int64_t(1)}, {"split", std::vector<int64_t>{1, 3}}}), {x});
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(D(a[0]), (std::vector<double>{0, 4}));
  EXPECT_EQ(D(a[1]), (std::vector<double>{1, 2, 3, 5, 6, 7}));
  auto b = RunOp("Split", A({{"axis", int64_t(1)}}), {x, I({2}, {2, 2})});
  EXPECT_EQ(D(b[1]), (std::vector<double>{2, 3, 6, 7}));
  auto c = RunOp("Split", A({{"axis", int64_t(-1)}, {"num_outputs", int64_t(3)}}), {x});
  ASSERT_EQ(c.size(), 3u);  // uneven: parts of ceil(4 / 3) = 2, the last smaller
  EXPECT_EQ(c[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(c[2].shape(), (Shape{2, 0}));
  auto d = RunOp("Split", A({{"num_outputs", int64_t(2)}}), {x});
  EXPECT_EQ(D(d[1]), (std::vector<double>{4, 5, 6, 7}));
  EXPECT_SHOAL_ERROR(
      Infer("Split", A({{"axis", int64_t(1)}, {"split", std::vector<int64_t>{1, 1}}}), {x}),
      ErrorKind::invalid_argument, "sum to 2");
  EXPECT_SHOAL_ERROR(Infer("Split", {}, {x, I({2}, {1, 1})}, false), ErrorKind::unsupported,
                     "'split'");
}

// --- Slice ----------------------------------------------------------------------

TEST(RefTensorSlice, Basic) {
  HostTensor x = I({3, 4}, {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23});
  HostTensor y = Run1("Slice", {}, {x, I({2}, {1, 1}), I({2}, {3, 3})});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(y.to_ints(), (std::vector<int64_t>{11, 12, 21, 22}));
  // Opset 1: attributes, negative start.
  HostTensor a = Run1("Slice",
                      A({{"starts", std::vector<int64_t>{-2}},
                         {"ends", std::vector<int64_t>{kI64Max}},
                         {"axes", std::vector<int64_t>{1}}}),
                      {x});
  EXPECT_EQ(a.to_ints(), (std::vector<int64_t>{2, 3, 12, 13, 22, 23}));
}

TEST(RefTensorSlice, EdgeCases) {
  HostTensor x = I({5}, {0, 1, 2, 3, 4});
  auto slice = [&](int64_t s, int64_t e, int64_t step) {
    return Run1("Slice", {}, {x, I({1}, {s}), I({1}, {e}), I({1}, {0}), I({1}, {step})}).to_ints();
  };
  using V = std::vector<int64_t>;
  EXPECT_EQ(slice(0, kI64Max, 1), (V{0, 1, 2, 3, 4}));
  EXPECT_EQ(slice(1, kI64Max, 2), (V{1, 3}));
  EXPECT_EQ(slice(-1, kI64Min, -1), (V{4, 3, 2, 1, 0}));  // full reverse
  EXPECT_EQ(slice(kI64Max, kI64Min, -2), (V{4, 2, 0}));
  EXPECT_EQ(slice(3, 0, -1), (V{3, 2, 1}));
  EXPECT_EQ(slice(-100, 2, 1), (V{0, 1}));
  EXPECT_EQ(slice(3, 1, 1), V{});  // empty
  EXPECT_EQ(slice(1, 3, -1), V{});
  // Extreme steps take one element (ceil(|e - s| / |step|) must not overflow).
  EXPECT_EQ(slice(1, kI64Max, kI64Max), V{1});
  EXPECT_EQ(slice(3, kI64Min, kI64Min), V{3});
  EXPECT_EQ(slice(0, 5, kI64Max - 1), V{0});
  // Axes given negatively, steps on another axis.
  HostTensor m = I({2, 3}, {0, 1, 2, 10, 11, 12});
  HostTensor y =
      Run1("Slice", {}, {m, I({1}, {-1}), I({1}, {kI64Min}), I({1}, {-1}), I({1}, {-1})});
  EXPECT_EQ(y.to_ints(), (V{2, 1, 0, 12, 11, 10}));
  EXPECT_SHOAL_ERROR(slice(0, 1, 0), ErrorKind::invalid_argument, "step");
  EXPECT_SHOAL_ERROR(Infer("Slice", {}, {x, I({1}, {0}), I({1}, {1})}, false),
                     ErrorKind::unsupported, "Slice: input 'starts'");
  EXPECT_SHOAL_ERROR(Infer("Slice", {}, {x, I({1}, {0}), I({1}, {1}), I({1}, {1})}),
                     ErrorKind::invalid_argument, "out of range for rank 1");
}

// --- Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Expand, Range, Tile -------

TEST(RefTensorShape, Reshape) {
  HostTensor x = F({2, 3, 4}, std::vector<double>(24, 1));
  EXPECT_EQ(Run1("Reshape", {}, {x, I({2}, {0, -1})}).shape(), (Shape{2, 12}));
  EXPECT_EQ(Run1("Reshape", {}, {x, I({3}, {4, 0, 2})}).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(Run1("Reshape", A({{"shape", std::vector<int64_t>{-1}}}), {x}).shape(), (Shape{24}));
  HostTensor e(DType::f32, {0, 3});
  EXPECT_EQ(Run1("Reshape", A({{"allowzero", int64_t(1)}}), {e, I({2}, {3, 0})}).shape(),
            (Shape{3, 0}));
  EXPECT_SHOAL_ERROR(Infer("Reshape", {}, {x, I({2}, {5, -1})}), ErrorKind::invalid_argument,
                     "Reshape: cannot reshape [2,3,4] to [5,-1]");
  EXPECT_SHOAL_ERROR(Infer("Reshape", {}, {x, I({2}, {-1, -1})}), ErrorKind::invalid_argument,
                     "more than one -1");
  EXPECT_SHOAL_ERROR(Infer("Reshape", {}, {x, I({2}, {2, 12})}, false), ErrorKind::unsupported,
                     "Reshape: input 'shape'");
  HostTensor v = Run1("Reshape", {}, {I({4}, {1, 2, 3, 4}), I({2}, {2, 2})});
  EXPECT_EQ(v.to_ints(), (std::vector<int64_t>{1, 2, 3, 4}));
}

TEST(RefTensorShape, Flatten) {
  HostTensor x(DType::f32, {2, 3, 4});
  EXPECT_EQ(Run1("Flatten", {}, {x}).shape(), (Shape{2, 12}));
  EXPECT_EQ(Run1("Flatten", A({{"axis", int64_t(0)}}), {x}).shape(), (Shape{1, 24}));
  EXPECT_EQ(Run1("Flatten", A({{"axis", int64_t(3)}}), {x}).shape(), (Shape{24, 1}));
  EXPECT_EQ(Run1("Flatten", A({{"axis", int64_t(-1)}}), {x}).shape(), (Shape{6, 4}));
  EXPECT_SHOAL_ERROR(Infer("Flatten", A({{"axis", int64_t(4)}}), {x}), ErrorKind::invalid_argument,
                     "Flatten: axis 4 out of range");
}

TEST(RefTensorShape, SqueezeUnsqueeze) {
  HostTensor x = F({1, 3, 1}, {1, 2, 3});
  EXPECT_EQ(Run1("Squeeze", {}, {x}).shape(), (Shape{3}));
  EXPECT_EQ(Run1("Squeeze", A({{"axes", std::vector<int64_t>{-1}}}), {x}).shape(), (Shape{1, 3}));
  EXPECT_EQ(Run1("Squeeze", {}, {x, I({1}, {0})}).shape(), (Shape{3, 1}));
  EXPECT_SHOAL_ERROR(Infer("Squeeze", {}, {x, I({1}, {1})}), ErrorKind::invalid_argument, "size 3");
  HostTensor u = Run1("Unsqueeze", {}, {x, I({2}, {0, -1})});
  EXPECT_EQ(u.shape(), (Shape{1, 1, 3, 1, 1}));
  EXPECT_EQ(D(u), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(Run1("Unsqueeze", A({{"axes", std::vector<int64_t>{0}}}), {I({}, {5})}).shape(),
            (Shape{1}));
  EXPECT_SHOAL_ERROR(Infer("Unsqueeze", {}, {x, I({1}, {5})}), ErrorKind::invalid_argument,
                     "out of range for rank 4");
}

TEST(RefTensorShape, Transpose) {
  HostTensor x = F({2, 3}, {0, 1, 2, 3, 4, 5});
  HostTensor y = Run1("Transpose", {}, {x});
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(D(y), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  std::vector<double> v;
  for (int k = 0; k < 24; ++k) v.push_back(k);
  HostTensor z = Run1("Transpose", A({{"perm", std::vector<int64_t>{1, 2, 0}}}), {F({2, 3, 4}, v)});
  EXPECT_EQ(z.shape(), (Shape{3, 4, 2}));
  // z[j,k,i] = x[i,j,k] = i*12 + j*4 + k.
  EXPECT_EQ(z.as<float>()[(1 * 4 + 2) * 2 + 1], 12 + 4 + 2);
  EXPECT_SHOAL_ERROR(Infer("Transpose", A({{"perm", std::vector<int64_t>{0, 0}}}), {x}),
                     ErrorKind::invalid_argument, "not a permutation");
}

TEST(RefTensorShape, ExpandRangeTile) {
  HostTensor e = Run1("Expand", {}, {F({3, 1}, {1, 2, 3}), I({3}, {2, 1, 2})});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(D(e), (std::vector<double>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  EXPECT_SHOAL_ERROR(Infer("Expand", {}, {F({3}, {1, 2, 3}), I({1}, {2})}),
                     ErrorKind::invalid_argument, "[3] and [2]");
  EXPECT_SHOAL_ERROR(Infer("Expand", {}, {F({3}, {1, 2, 3}), I({1}, {3})}, false),
                     ErrorKind::unsupported, "Expand: input 'shape'");

  EXPECT_EQ(Run1("Range", {}, {I({}, {1}), I({}, {10}), I({}, {3})}).to_ints(),
            (std::vector<int64_t>{1, 4, 7}));
  EXPECT_EQ(Run1("Range", {}, {I({}, {5}), I({}, {0}), I({}, {-2})}).to_ints(),
            (std::vector<int64_t>{5, 3, 1}));
  EXPECT_EQ(Run1("Range", {}, {I({}, {5}), I({}, {0}), I({}, {1})}).numel(), 0);
  ExpectNear(D(Run1("Range", {}, {F({}, {0}), F({}, {1}), F({}, {0.25})})), {0, 0.25, 0.5, 0.75});
  EXPECT_SHOAL_ERROR(Infer("Range", {}, {I({}, {0}), I({}, {1}), I({}, {0})}),
                     ErrorKind::invalid_argument, "delta");

  HostTensor t = Run1("Tile", {}, {I({2, 1}, {1, 2}), I({2}, {2, 3})});
  EXPECT_EQ(t.shape(), (Shape{4, 3}));
  EXPECT_EQ(t.to_ints(), (std::vector<int64_t>{1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2}));
  EXPECT_SHOAL_ERROR(Infer("Tile", {}, {I({2}, {1, 2}), I({2}, {1, 1})}),
                     ErrorKind::invalid_argument, "one entry per dim");
}

// --- an exporter's int64 shape chain ------------------------------------------

TEST(RefTensorShapeChain, ShapeGatherUnsqueezeConcatReshape) {
  // x.reshape(x.shape[0], -1), as torch.onnx exports it.
  HostTensor x = F({2, 3, 4}, std::vector<double>(24, 0.5));
  HostTensor shape = Run1("Shape", {}, {x});
  HostTensor batch = Run1("Gather", A({{"axis", int64_t(0)}}), {shape, I({}, {0})});
  EXPECT_EQ(batch.shape(), Shape{});
  HostTensor b1 = Run1("Unsqueeze", {}, {batch, I({1}, {0})});
  HostTensor target = Run1("Concat", A({{"axis", int64_t(0)}}), {b1, I({1}, {-1})});
  EXPECT_EQ(target.to_ints(), (std::vector<int64_t>{2, -1}));
  HostTensor y = Run1("Reshape", {}, {x, target});
  EXPECT_EQ(y.shape(), (Shape{2, 12}));
  EXPECT_EQ(D(y), std::vector<double>(24, 0.5));
  // The same with arithmetic on the dims: (3 * 4) / 2 via Mul and Div.
  HostTensor d12 =
      Run1("Mul", {},
           {Run1("Gather", {}, {shape, I({}, {1})}), Run1("Gather", {}, {shape, I({}, {2})})});
  HostTensor half = Run1("Div", {}, {d12, I({}, {2})});
  EXPECT_EQ(half.to_ints(), (std::vector<int64_t>{6}));
  HostTensor t2 =
      Run1("Concat", A({{"axis", int64_t(0)}}),
           {Run1("Unsqueeze", A({{"axes", std::vector<int64_t>{0}}}), {half}), I({1}, {-1})});
  EXPECT_EQ(Run1("Reshape", {}, {x, t2}).shape(), (Shape{6, 4}));
}

}  // namespace
}  // namespace shoal
