// Weights stored packed by the compiler (cpu::prepack_weights): which are
// packed, that packed and plain programs compute the same, that unpacking
// gives back the plain bytes, the reference fallback, the program file round
// trip, a program packed for another CPU, and unreadable descriptions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/onednn_kernels.hpp"
#include "backends/cpu/onednn_packing.hpp"
#include "env_guard.hpp"
#include "program/access.hpp"
#include "shoal/shoal.hpp"

// tools/npy.cpp is compiled into the test binary (tests/CMakeLists.txt).
#include "../../tools/npy.hpp"

namespace shoal {
namespace {

using program::Layout;
using program::ProgramData;
using program::Storage;
using program::TensorDesc;

std::string source_dir() {
  if (const char* env = std::getenv("SHOAL_SOURCE_DIR")) return env;
  return SHOAL_SOURCE_DIR;
}

std::string digits_dir() { return source_dir() + "/models/digits/"; }

bool takes_weight(const std::string& op) {
  return op == "Conv" || op == "ConvTranspose" || op == "Gemm" || op == "MatMul";
}

Program compile_digits(bool prepack, bool optimize, std::vector<std::string>* log = nullptr) {
  CompileOptions o;
  o.prepack = prepack;
  o.optimize = optimize;
  if (log) o.log = [log](const std::string& s) { log->push_back(s); };
  return compile(digits_dir() + "digits_cnn.onnx", o);
}

// Most tests use programs compiled without the optimizing passes: their
// activations stay plain NCHW, so every conv and gemm gets a oneDNN kernel
// (and a packed weight) whatever the layout pass decides.
const Program& packed_program() {
  static const Program p = compile_digits(true, false);
  return p;
}

const Program& plain_program() {
  static const Program p = compile_digits(false, false);
  return p;
}

const npy::Array& heldout() {
  static const npy::Array x = npy::load(digits_dir() + "heldout_x.npy");
  return x;
}

std::vector<float> run(const Program& p) {
  Runtime rt(p);
  const npy::Array& x = heldout();
  std::vector<Tensor> y = rt.run({Tensor::view(x.data.data(), x.shape)});
  return std::vector<float>(y.at(0).f32(), y.at(0).f32() + y.at(0).numel());
}

/// Argmax per row of [N, 10] logits.
std::vector<int> classes(const std::vector<float>& logits) {
  std::vector<int> c;
  for (size_t i = 0; i + 10 <= logits.size(); i += 10)
    c.push_back(
        int(std::max_element(logits.begin() + i, logits.begin() + i + 10) - (logits.begin() + i)));
  return c;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

const TensorDesc* find_tensor(const ProgramData& p, const std::string& name) {
  for (const TensorDesc& t : p.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

using test_util::EnvGuard;

/// Decodes each packed weight's description and lets `edit` change it (and
/// the tensor); stores the description again where `edit` returns true.
/// Returns how many it changed.
int edit_packings(ProgramData& d,
                  const std::function<bool(TensorDesc&, cpu::onednn::Packing&)>& edit) {
  int changed = 0;
  for (TensorDesc& t : d.tensors) {
    if (t.layout != Layout::packed) continue;
    cpu::onednn::Packing pk = cpu::onednn::decode_packing(t);
    if (!edit(t, pk)) continue;
    t.packing = cpu::onednn::encode_packing(pk);
    ++changed;
  }
  return changed;
}

/// Makes the oneDNN kernel of every conv/gemm/matmul instruction in one
/// context; returns how many it made (`takers`: how many there are).
int make_weight_kernels(const ProgramData& d, cpu::OneDnnContext& ctx, int* takers = nullptr) {
  int made = 0;
  if (takers) *takers = 0;
  for (const program::Instruction& ins : d.instructions) {
    if (!takes_weight(ins.op)) continue;
    if (takers) ++*takers;
    if (cpu::make_onednn_kernel(ins, d, ctx)) ++made;
  }
  return made;
}

/// A modifiable copy of a program's data (its weights owned).
std::shared_ptr<ProgramData> copy_of(const Program& p) {
  auto d = std::make_shared<ProgramData>(program::data_of(p));
  d->owned_weights.assign(program::data_of(p).weights, program::data_of(p).weights + program::data_of(p).weights_bytes);
  d->weights = d->owned_weights.data();
  d->keepalive.reset();
  return d;
}

TEST(PrepackDigits, ConvAndGemmWeightsArePacked) {
  std::vector<std::string> log;
  Program p = compile_digits(true, false, &log);
  const ProgramData& d = program::data_of(p);
  int packed = 0;
  for (const program::Instruction& ins : d.instructions) {
    if (!takes_weight(ins.op)) continue;
    const TensorDesc& w = d.tensors.at(size_t(ins.inputs.at(1)));
    SCOPED_TRACE(ins.op + " '" + ins.name + "', weight '" + w.name + "'");
    EXPECT_EQ(w.storage, Storage::weight);
    EXPECT_EQ(w.layout, Layout::packed);
    EXPECT_FALSE(w.packing.empty());
    EXPECT_GE(w.bytes, uint64_t(shape_numel(w.shape)) * sizeof(float));
    packed += w.layout == Layout::packed;
  }
  EXPECT_EQ(packed, 4);  // 3 Conv + 1 Gemm
  for (const TensorDesc& t : d.tensors) {
    if (t.storage != Storage::weight) continue;
    EXPECT_EQ(t.offset % program::kWeightAlign, 0u) << t.name;
    EXPECT_LE(t.offset + t.bytes, d.weights_bytes) << t.name;
    if (t.layout == Layout::plain) {
      EXPECT_TRUE(t.packing.empty()) << t.name;
    }
  }
  bool logged = false;
  for (const std::string& line : log)
    logged = logged || line.find("prepacked 4 of 4") != std::string::npos;
  EXPECT_TRUE(logged) << "no 'prepacked 4 of 4' line in the compile log";
  EXPECT_NE(p.describe().find("packed weights: 4 tensors"), std::string::npos) << p.describe();

  for (const TensorDesc& t : program::data_of(plain_program()).tensors)
    EXPECT_EQ(t.layout == Layout::packed, false) << t.name;
}

TEST(PrepackDigits, DefaultPipelinePacksEveryOneDnnWeight) {
  // With the optimizing passes: a weight is packed exactly when its
  // instruction gets a oneDNN kernel, and the outputs do not change.
  Program packed = compile_digits(true, true);
  Program plain = compile_digits(false, true);
  const ProgramData &pk = program::data_of(packed), &pl = program::data_of(plain);
  ASSERT_EQ(pk.instructions.size(), pl.instructions.size());
  int onednn = 0;
  for (size_t i = 0; i < pl.instructions.size(); ++i) {
    const program::Instruction& ins = pl.instructions[i];
    if (!takes_weight(ins.op)) continue;
    cpu::OneDnnContext ctx;
    const bool kernel = cpu::make_onednn_kernel(ins, pl, ctx) != nullptr;
    onednn += kernel;
    const TensorDesc& w = pk.tensors.at(size_t(pk.instructions[i].inputs.at(1)));
    EXPECT_EQ(w.layout == Layout::packed, kernel) << ins.op << " '" << ins.name << "'";
  }
  EXPECT_GT(onednn, 0);
  for (const TensorDesc& t : pk.tensors)
    if (t.storage == Storage::weight) {
      EXPECT_EQ(t.offset % program::kWeightAlign, 0u) << t.name;
    }
  const std::vector<float> a = run(packed), b = run(plain);
  EXPECT_LE(max_abs_diff(a, b), 1e-5f);
  EXPECT_EQ(classes(a), classes(b));
}

TEST(PrepackDigits, OutputsEqualTheUnpackedProgram) {
  const std::vector<float> packed = run(packed_program());
  const std::vector<float> plain = run(plain_program());
  ASSERT_EQ(packed.size(), plain.size());
  ASSERT_EQ(packed.size(), size_t(heldout().shape[0]) * 10);
  EXPECT_LE(max_abs_diff(packed, plain), 1e-5f);
  EXPECT_EQ(classes(packed), classes(plain));
}

TEST(PrepackDigits, UnpackGivesBackThePlainWeights) {
  const ProgramData& pk = program::data_of(packed_program());
  const ProgramData& pl = program::data_of(plain_program());
  int checked = 0;
  for (const TensorDesc& t : pk.tensors) {
    if (t.layout != Layout::packed) continue;
    const TensorDesc* plain = find_tensor(pl, t.name);
    ASSERT_NE(plain, nullptr) << t.name;
    HostTensor u = cpu::unpack_weight(t, pk.weights + t.offset);
    EXPECT_EQ(u.shape(), plain->shape) << t.name;
    ASSERT_EQ(u.bytes(), plain->bytes) << t.name;
    EXPECT_EQ(std::memcmp(u.data(), pl.weights + plain->offset, u.bytes()), 0)
        << t.name << ": unpacked bytes differ from the plain program's";
    ++checked;
  }
  EXPECT_EQ(checked, 4);
  // A plain tensor is copied as it is.
  const TensorDesc* bias = find_tensor(pk, "classifier.bias");
  ASSERT_NE(bias, nullptr);
  ASSERT_EQ(bias->layout, Layout::plain);
  HostTensor b = cpu::unpack_weight(*bias, pk.weights + bias->offset);
  EXPECT_EQ(std::memcmp(b.data(), pk.weights + bias->offset, b.bytes()), 0);
}

TEST(PrepackDigits, ReferenceKernelsUnpackPackedWeights) {
  std::vector<float> packed_ref, plain_ref;
  {
    EnvGuard env("SHOAL_REFERENCE_ONLY", "1");
    packed_ref = run(packed_program());
    plain_ref = run(plain_program());
  }
  // The reference kernels see the very same plain weights either way.
  EXPECT_EQ(packed_ref, plain_ref);
  // ... and classify like the oneDNN kernels.
  EXPECT_EQ(classes(packed_ref), classes(run(packed_program())));
  EXPECT_LE(max_abs_diff(packed_ref, run(packed_program())), 1e-4f);
}

TEST(PrepackDigits, SaveLoadRunRoundTrip) {
  const Program& p = packed_program();
  const std::string path =
      ::testing::TempDir() + "prepack_digits_" + std::to_string(getpid()) + ".shoal";
  p.save(path);
  Program loaded = Program::load(path);  // memory-mapped weights
  Program copied = Program::from_bytes(p.to_bytes().data(), p.to_bytes().size());
  std::filesystem::remove(path);
  for (const Program* q : {&loaded, &copied}) {
    const ProgramData& d = program::data_of(*q);
    ASSERT_EQ(d.tensors.size(), program::data_of(p).tensors.size());
    for (size_t i = 0; i < d.tensors.size(); ++i) {
      const TensorDesc &a = d.tensors[i], &b = program::data_of(p).tensors[i];
      EXPECT_EQ(a.layout, b.layout) << a.name;
      EXPECT_EQ(a.packing, b.packing) << a.name;
      EXPECT_EQ(a.bytes, b.bytes) << a.name;
      EXPECT_EQ(a.offset, b.offset) << a.name;
    }
    EXPECT_EQ(run(*q), run(p));
  }
}

TEST(PrepackDigits, KernelsUsePackedWeightsInPlace) {
  // The packed program's kernels make no packed copy of their own; the plain
  // program's conv kernels do.
  for (const Program* p : {&packed_program(), &plain_program()}) {
    const ProgramData& d = program::data_of(*p);
    const bool packed = p == &packed_program();
    int kernels = 0;
    for (const program::Instruction& ins : d.instructions) {
      if (!takes_weight(ins.op)) continue;
      cpu::OneDnnContext ctx;
      auto k = cpu::make_onednn_kernel(ins, d, ctx);
      if (!k) continue;
      ++kernels;
      if (packed) {
        EXPECT_EQ(ctx.packed_bytes(), 0u) << ins.name;
      }
    }
    EXPECT_GT(kernels, 0);
  }
}

TEST(PrepackDigits, WeightsPackedForAnotherCpuAreRepacked) {
  // Stores every packed weight in its plain view instead, as if another CPU
  // had wanted that layout: kernels must reorder it once and compute the same.
  auto d = copy_of(packed_program());
  const int changed = edit_packings(*d, [&](TensorDesc& t, cpu::onednn::Packing& pk) {
    HostTensor plain = cpu::unpack_weight(t, d->weights + t.offset);
    // The stored values carry the folded scale.
    for (int64_t i = 0; i < plain.numel(); ++i) plain.as<float>()[i] *= pk.scale;
    EXPECT_LE(plain.bytes(), t.bytes);
    if (plain.bytes() > t.bytes) return false;
    std::memcpy(d->owned_weights.data() + t.offset, plain.data(), plain.bytes());
    pk.packed = pk.plain;
    t.bytes = plain.bytes();
    return true;
  });
  ASSERT_GT(changed, 0);
  Program foreign = program::make_program(d);
  EXPECT_LE(max_abs_diff(run(foreign), run(packed_program())), 1e-5f);

  cpu::OneDnnContext ctx;
  EXPECT_GT(make_weight_kernels(*d, ctx), 0);
  EXPECT_GT(ctx.packed_bytes(), 0u);
}

TEST(PrepackPacking, UnreadableDescriptionIsAnErrorNamingTheTensor) {
  const ProgramData& src = program::data_of(packed_program());
  const TensorDesc* w = nullptr;
  for (const TensorDesc& t : src.tensors)
    if (t.layout == Layout::packed && !w) w = &t;
  ASSERT_NE(w, nullptr);
  auto expect_invalid = [&](const TensorDesc& t, const char* what) {
    try {
      cpu::unpack_weight(t, src.weights + w->offset);
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << what;
      EXPECT_NE(std::string(e.what()).find(t.name), std::string::npos) << what << ": " << e.what();
    }
  };
  TensorDesc t = *w;
  t.packing.resize(t.packing.size() - 3);
  expect_invalid(t, "truncated");
  t = *w;
  t.packing[0] ^= 0xff;
  expect_invalid(t, "bad tag");
  t = *w;
  t.packing.push_back(0);
  expect_invalid(t, "trailing byte");
  t = *w;
  t.bytes = 16;
  expect_invalid(t, "too few bytes for the layout");
  t = *w;
  t.shape[0] += 1;
  expect_invalid(t, "shape mismatch");

  // The runtime refuses to load it, naming the tensor.
  auto d = copy_of(packed_program());
  for (TensorDesc& u : d->tensors)
    if (u.name == w->name) u.packing.resize(10);
  try {
    Runtime rt{program::make_program(d)};
    ADD_FAILURE() << "a program with an unreadable packing loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find(w->name), std::string::npos) << e.what();
  }
}

TEST(PrepackPacking, EncodeDecodeRoundTrip) {
  using dnnl::memory;
  cpu::onednn::Packing p;
  p.plain = memory::desc({8, 4, 3, 3}, memory::data_type::f32, memory::format_tag::abcd);
  p.packed = memory::desc({8, 4, 3, 3}, memory::data_type::f32, memory::format_tag::ABcd8b8a);
  p.scale = 0.5f;
  TensorDesc t;
  t.name = "w";
  t.shape = {8, 4, 3, 3};
  t.storage = Storage::weight;
  t.layout = Layout::packed;
  t.bytes = p.packed.get_size();
  t.packing = cpu::onednn::encode_packing(p);
  cpu::onednn::Packing q = cpu::onednn::decode_packing(t);
  EXPECT_TRUE(q.plain == p.plain);
  EXPECT_TRUE(q.packed == p.packed);
  EXPECT_EQ(q.scale, 0.5f);

  // unpack_weight divides the folded scale out.
  std::vector<float> plain(8 * 4 * 9), stored(t.bytes / sizeof(float));
  for (size_t i = 0; i < plain.size(); ++i) plain[i] = float(i) - 100.0f;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  memory src(p.plain, eng, plain.data()), dst(p.packed, eng, stored.data());
  dnnl::primitive_attr attr;
  attr.set_output_scales(0, {0.5f});
  dnnl::stream s(eng);
  dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, attr)).execute(s, src, dst);
  s.wait();
  HostTensor u = cpu::unpack_weight(t, reinterpret_cast<const uint8_t*>(stored.data()));
  ASSERT_EQ(u.numel(), int64_t(plain.size()));
  EXPECT_EQ(std::memcmp(u.data(), plain.data(), u.bytes()), 0);
}

// Winograd layers (forced on the digits CNN's 3x3 convolutions) store a
// transformed copy after the plain bytes: kernels use it in place, and fall
// back to transforming the plain copy when their primitive wants another
// Winograd layout. (The Winograd choice is one of the optimizing passes.)
const Program& winograd_program() {
  static const Program p = [] {
    EnvGuard all("SHOAL_WINOGRAD", "all");
    return compile_digits(true, true);
  }();
  return p;
}

const Program& direct_program() {
  static const Program p = [] {
    CompileOptions o;
    o.winograd = false;
    return compile(digits_dir() + "digits_cnn.onnx", o);
  }();
  return p;
}

std::vector<const TensorDesc*> winograd_weights(const ProgramData& d) {
  std::vector<const TensorDesc*> out;
  for (const TensorDesc& t : d.tensors)
    if (t.layout == Layout::packed &&
        cpu::onednn::decode_packing(t).wino.data.format_kind == dnnl_format_kind_wino)
      out.push_back(&t);
  return out;
}

TEST(PrepackWinograd, TransformedCopyIsStoredAndUsedInPlace) {
  const ProgramData& d = program::data_of(winograd_program());
  const auto wino = winograd_weights(d);
  ASSERT_EQ(wino.size(), 3u) << "this CPU has oneDNN's Winograd kernel (AVX-512)";
  for (const TensorDesc* t : wino) {
    // The plain copy comes first and unpacks to the weights a program
    // without Winograd has.
    const ProgramData& direct = program::data_of(direct_program());
    const TensorDesc* other = find_tensor(direct, t->name);
    ASSERT_NE(other, nullptr) << t->name;
    HostTensor u = cpu::unpack_weight(*t, d.weights + t->offset);
    HostTensor v = cpu::unpack_weight(*other, direct.weights + other->offset);
    ASSERT_EQ(u.bytes(), v.bytes());
    EXPECT_EQ(std::memcmp(u.data(), v.data(), u.bytes()), 0) << t->name;
  }
  for (const program::Instruction& ins : d.instructions) {
    if (!takes_weight(ins.op)) continue;
    cpu::OneDnnContext ctx;
    ASSERT_TRUE(cpu::make_onednn_kernel(ins, d, ctx)) << ins.name;
    EXPECT_EQ(ctx.packed_bytes(), 0u) << ins.name << ": no weight transformed at load";
  }
  EXPECT_LE(max_abs_diff(run(winograd_program()), run(direct_program())), 1e-4f);
}

TEST(PrepackWinograd, AnotherWinogradLayoutFallsBackToThePlainCopy) {
  // As if another CPU's kernel wanted other blocks: the stored descriptor no
  // longer matches, so the kernel transforms the plain copy (once) instead.
  auto d = copy_of(winograd_program());
  const int changed = edit_packings(*d, [](TensorDesc&, cpu::onednn::Packing& pk) {
    if (pk.wino.data.format_kind != dnnl_format_kind_wino) return false;
    dnnl_memory_desc_t md = pk.wino.data;
    md.format_desc.wino_desc.oc2_block += 1;
    pk.wino = dnnl::memory::desc(md);
    return true;
  });
  ASSERT_EQ(changed, 3);
  cpu::OneDnnContext ctx;
  int takers = 0;
  ASSERT_EQ(make_weight_kernels(*d, ctx, &takers), takers);
  EXPECT_GT(ctx.packed_bytes(), 0u);
  // (Not bitwise: each run's stacked kernels may pick another Winograd variant.)
  EXPECT_LE(max_abs_diff(run(program::make_program(d)), run(winograd_program())), 1e-4f);
}

TEST(PrepackWinograd, BadWinogradFieldsAreAnErrorNamingTheTensor) {
  const ProgramData& d = program::data_of(winograd_program());
  const auto wino = winograd_weights(d);
  ASSERT_FALSE(wino.empty());
  const TensorDesc& w = *wino.front();
  cpu::onednn::Packing pk = cpu::onednn::decode_packing(w);
  auto expect_invalid = [&](const TensorDesc& t, const char* what) {
    try {
      cpu::onednn::decode_packing(t);
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << what;
      EXPECT_NE(std::string(e.what()).find(t.name), std::string::npos) << what << ": " << e.what();
    }
  };
  TensorDesc t = w;
  t.bytes = pk.wino_offset + pk.wino.get_size() - 1;
  expect_invalid(t, "Winograd copy past the tensor's bytes");
  t = w;
  cpu::onednn::Packing q = pk;
  q.wino_offset = 0;
  t.packing = cpu::onednn::encode_packing(q);
  expect_invalid(t, "Winograd copy over the plain one");
  q = pk;
  q.wino_offset += 4;
  t.packing = cpu::onednn::encode_packing(q);
  expect_invalid(t, "misaligned Winograd copy");
  q = pk;
  dnnl_memory_desc_t md = pk.wino.data;
  md.format_desc.wino_desc.alpha = 0;
  q.wino = dnnl::memory::desc(md);
  t.packing = cpu::onednn::encode_packing(q);
  expect_invalid(t, "zero block field");
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

// int8 weights (QLinearConv's, format version 3): the plain int8 bytes, then
// oneDNN's int8 layout with its extra data (compensation sums), described by
// a packing description of version 2, kind 3.
struct Int8Packed {
  cpu::onednn::Packing pk;
  TensorDesc t;
  std::vector<uint8_t> bytes;  // the tensor's bytes: plain, then the copy
};

/// With a source zero point, every CPU's int8 layout has extra data (for
/// it, and for int8 sources below AMX).
Int8Packed int8_packed(dnnl::memory::data_type src_type, bool zero_point) {
  using dnnl::memory;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  const memory::dims x{1, 16, 8, 8}, w{32, 16, 3, 3}, y{1, 32, 8, 8};
  auto d = dnnl::convolution_forward::desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      memory::desc(x, src_type, memory::format_tag::any),
      memory::desc(w, memory::data_type::s8, memory::format_tag::any),
      memory::desc(y, memory::data_type::s8, memory::format_tag::any), {1, 1}, {1, 1}, {1, 1});
  dnnl::primitive_attr attr;
  if (zero_point) attr.set_zero_points(DNNL_ARG_SRC, 0, {3});
  dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
  Int8Packed r;
  r.pk.plain = r.pk.packed = memory::desc(w, memory::data_type::s8, memory::format_tag::abcd);
  r.pk.copy = pd.weights_desc();
  r.pk.copy_offset = (r.pk.plain.get_size() + 63) / 64 * 64;
  r.t.name = "wq";
  r.t.dtype = DType::i8;
  r.t.shape = {32, 16, 3, 3};
  r.t.storage = Storage::weight;
  r.t.layout = Layout::packed;
  r.t.bytes = r.pk.copy_offset + r.pk.copy.get_size();
  r.t.packing = cpu::onednn::encode_packing(r.pk);
  r.bytes.assign(r.t.bytes, 0);
  for (size_t i = 0; i < r.pk.plain.get_size(); ++i)
    r.bytes[i] = uint8_t(int8_t(int(i % 255) - 127));
  memory src(r.pk.plain, eng, r.bytes.data()),
      dst(r.pk.copy, eng, r.bytes.data() + r.pk.copy_offset);
  dnnl::stream s(eng);
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  return r;
}

TEST(PrepackInt8, CopyWithCompensationRoundTrips) {
  for (auto type : {dnnl::memory::data_type::s8, dnnl::memory::data_type::u8}) {
    const bool zp = type == dnnl::memory::data_type::s8;
    Int8Packed r = int8_packed(type, zp);
    if (zp) {
      EXPECT_NE(r.pk.copy.data.extra.flags, 0u) << "compensation sums";
    }
    EXPECT_TRUE(cpu::onednn::can_encode_copy(r.pk.copy, r.pk.plain));
    EXPECT_EQ(r.t.packing[4] | r.t.packing[5] << 8, 2) << "int8 packings are version 2";
    cpu::onednn::Packing q = cpu::onednn::decode_packing(r.t);
    EXPECT_TRUE(q.plain == r.pk.plain);
    EXPECT_TRUE(q.packed == r.pk.plain);
    EXPECT_TRUE(q.copy == r.pk.copy) << "extra data included";
    EXPECT_EQ(q.copy_offset, r.pk.copy_offset);
    // The plain bytes come first: unpacking gives them back.
    HostTensor u = cpu::unpack_weight(r.t, r.bytes.data());
    ASSERT_EQ(u.bytes(), r.pk.plain.get_size());
    EXPECT_EQ(std::memcmp(u.data(), r.bytes.data(), u.bytes()), 0);
  }
  // Float packings stay version 1 (builds before int8 prepacking read them).
  EXPECT_EQ(program::data_of(packed_program()).tensors.size() > 0, true);
  for (const TensorDesc& t : program::data_of(packed_program()).tensors)
    if (t.layout == Layout::packed) {
      EXPECT_EQ(t.packing[4] | t.packing[5] << 8, 1) << t.name;
    }
}

TEST(PrepackInt8, BadCopyFieldsAreAnErrorNamingTheTensor) {
  const Int8Packed r = int8_packed(dnnl::memory::data_type::s8, true);
  ASSERT_NE(r.pk.copy.data.extra.flags, 0u);
  auto expect_invalid = [&](const TensorDesc& t, const char* what, const char* says) {
    try {
      cpu::onednn::decode_packing(t);
      ADD_FAILURE() << what << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::invalid_argument) << what;
      EXPECT_NE(std::string(e.what()).find("weight 'wq'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << what << ": " << e.what();
    }
  };
  auto with = [&](const std::function<void(cpu::onednn::Packing&)>& edit) {
    TensorDesc t = r.t;
    cpu::onednn::Packing q = r.pk;
    edit(q);
    t.packing = cpu::onednn::encode_packing(q);
    return t;
  };
  TensorDesc t = r.t;
  t.bytes -= 1;
  expect_invalid(t, "copy past the tensor's bytes", "leaves the tensor's");
  expect_invalid(with([](auto& q) { q.copy_offset = 0; }), "copy over the plain bytes", "overlaps");
  expect_invalid(with([](auto& q) { q.copy_offset += 4; }), "misaligned copy",
                 "not a multiple of 64");
  auto extra = [&](const std::function<void(dnnl_memory_desc_t&)>& f) {
    return with([&](auto& q) {
      dnnl_memory_desc_t md = q.copy.data;
      f(md);
      q.copy = dnnl::memory::desc(md);
    });
  };
  expect_invalid(extra([](auto& md) { md.extra.flags |= 0x4; }), "an RNN flag",
                 "unknown extra flags");
  expect_invalid(extra([](auto& md) { md.extra.compensation_mask = 1 << 5; }),
                 "a mask of a dim the tensor lacks", "mask is out of range");
  expect_invalid(extra([](auto& md) {
                   md.extra.flags |= dnnl_memory_extra_flag_scale_adjust;
                   md.extra.scale_adjust = 0.0f;
                 }),
                 "a zero scale adjustment", "scale adjustment");
  // Extra data on the plain layout, and int8 layouts for a float tensor.
  t = with([](auto& q) {
    dnnl_memory_desc_t md = q.packed.data;
    md.extra = q.copy.data.extra;
    q.packed = dnnl::memory::desc(md);
  });
  expect_invalid(t, "extra data on the portable layout", "extra flags are set");
  t = r.t;
  t.dtype = DType::f32;
  expect_invalid(t, "int8 layouts of a float tensor", "not f32");
}

}  // namespace
}  // namespace shoal
