// Compile per target: the compiler does target-specific work only through
// the target backend's compile hook (device::Backend::compile); a program
// records its target, and a device that cannot run it refuses it at load.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "device/registry.hpp"
#include "program/access.hpp"
#include "shoal/shoal.hpp"

namespace shoal {
namespace {

std::string digits_model() {
  return std::string(SHOAL_SOURCE_DIR) + "/models/digits/digits_cnn.onnx";
}

Tensor batch(int64_t n) {
  Tensor t(DType::f32, {n, 1, 8, 8});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = u(rng);
  return t;
}

// A backend with a compile hook and no devices: what a new backend adds,
// seen from the compiler (which names no backend).
int g_fake_compiles = 0;
[[maybe_unused]] const bool fake_registered = device::register_backend({
    .kind = "faketarget",
    .order = 99,
    .automatic = false,
    .enumerate = [](const Settings&) { return std::vector<DeviceInfo>{}; },
    .create = [](const DeviceInfo&, const device::DeviceConfig&)
        -> std::unique_ptr<device::Device> { return nullptr; },
    .reference_layers = {},
    .compile =
        [](program::ProgramData& p, const CompileOptions&, const Settings&,
           const std::function<void(const std::string&)>&) {
          ++g_fake_compiles;
          for (program::Instruction& ins : p.instructions) ins.attrs.set("fake_mark", int64_t(1));
        },
});

TEST(CompileTargets, TheTargetsHookRunsAndTheProgramRecordsIt) {
  CompileOptions o;
  o.target = "faketarget";
  const int before = g_fake_compiles;
  const Program p = compile(digits_model(), o);
  EXPECT_EQ(g_fake_compiles, before + 1);
  EXPECT_EQ(p.info().target, "faketarget");
  for (const program::Instruction& ins : program::data_of(p).instructions)
    EXPECT_EQ(ins.attrs.i("fake_mark", 0), 1) << ins.name;
  // No cpu work: nothing packed.
  for (const program::TensorDesc& t : program::data_of(p).tensors)
    EXPECT_NE(t.layout, program::Layout::packed) << t.name;
  // Survives a save and load; no device of this host runs it.
  const Program q = Program::from_bytes(p.to_bytes().data(), p.to_bytes().size());
  EXPECT_EQ(q.info().target, "faketarget");
  for (const char* dev : {"cpu:0", "ref:0"}) {
    RuntimeOptions ro;
    ro.devices = {find_device(dev)};
    try {
      Runtime rt(q, ro);
      ADD_FAILURE() << dev << " ran a faketarget program";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("target 'faketarget'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(dev), std::string::npos) << e.what();
    }
  }
}

TEST(CompileTargets, RefProgramsArePlainAndRunOnRefOnly) {
  CompileOptions o;
  o.target = "ref";
  const Program ref_prog = compile(digits_model(), o);
  EXPECT_EQ(ref_prog.info().target, "ref");
  for (const program::Instruction& ins : program::data_of(ref_prog).instructions)
    EXPECT_FALSE(ins.attrs.has("shoal_winograd")) << ins.name;
  for (const program::TensorDesc& t : program::data_of(ref_prog).tensors)
    EXPECT_NE(t.layout, program::Layout::packed) << t.name;
  const Program cpu_prog = compile(digits_model());
  EXPECT_EQ(cpu_prog.info().target, "cpu");
  bool packed = false;
  for (const program::TensorDesc& t : program::data_of(cpu_prog).tensors)
    packed = packed || t.layout == program::Layout::packed;
  EXPECT_TRUE(packed);  // the cpu hook prepacked the weights

  RuntimeOptions on_ref, on_cpu;
  on_ref.devices = {find_device("ref:0")};
  on_cpu.devices = {find_device("cpu:0")};
  const Tensor x = batch(3);
  const std::vector<Tensor> a = Runtime(ref_prog, on_ref).run({x});
  const std::vector<Tensor> b = Runtime(cpu_prog, on_cpu).run({x});
  ASSERT_EQ(a[0].numel(), b[0].numel());
  for (int64_t i = 0; i < a[0].numel(); ++i)
    EXPECT_NEAR(a[0].f32()[i], b[0].f32()[i], 1e-4f * (1 + std::fabs(b[0].f32()[i])));
  // ref devices also run cpu programs (unpacking their weights); cpu
  // devices refuse ref programs, clearly.
  EXPECT_NO_THROW(Runtime(cpu_prog, on_ref).run({x}));
  try {
    Runtime rt(ref_prog, on_cpu);
    ADD_FAILURE() << "cpu:0 ran a ref program";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 'ref'"), std::string::npos) << e.what();
  }
}

TEST(CompileTargets, UnknownTargetsAndF32OnlyTargetsAreErrors) {
  CompileOptions o;
  o.target = "gpu";
  try {
    compile(digits_model(), o);
    ADD_FAILURE() << "compiled for target gpu";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("target 'gpu'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cpu"), std::string::npos) << e.what();
  }
  o.target = "ref";
  o.precision = Precision::bf16;
  try {
    compile(digits_model(), o);
    ADD_FAILURE() << "compiled bf16 for target ref";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::unsupported);
    EXPECT_NE(std::string(e.what()).find("f32 only"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace shoal
