// Backends as plug-ins: the registry, the device interface's memory calls on
// the ref backend (whose memory the runtime cannot address), and programs
// run on ref devices alone and mixed with cpu devices.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "backends/ref/ref_device.hpp"
#include "device/registry.hpp"
#include "program/access.hpp"
#include "shoal/shoal.h"
#include "shoal/shoal.hpp"

namespace shoal {
namespace {

std::string digits_model() {
  return std::string(SHOAL_SOURCE_DIR) + "/models/digits/digits_cnn.onnx";
}

Tensor batch(int64_t n, uint32_t seed) {
  Tensor t(DType::f32, {n, 1, 8, 8});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = u(rng);
  return t;
}

void expect_near(const Tensor& a, const Tensor& b, float tol) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_NEAR(a.f32()[i], b.f32()[i], tol) << i;
}

TEST(Backends, RegistryListsCpuThenRef) {
  const std::vector<device::Backend> bs = device::backends();
  ASSERT_GE(bs.size(), 2u);
  EXPECT_EQ(bs[0].kind, "cpu");
  EXPECT_TRUE(bs[0].automatic);
  EXPECT_EQ(device::backend("ref").kind, "ref");
  EXPECT_FALSE(device::backend("ref").automatic);
  EXPECT_THROW(device::backend("gpu"), Error);
  const std::vector<DeviceInfo> devs = devices();
  ASSERT_GE(devs.size(), 2u);
  for (size_t i = 0; i < devs.size(); ++i) {
    EXPECT_EQ(devs[i].id, int(i));
    EXPECT_EQ(devs[i].name, devs[i].kind + ":" + std::to_string(devs[i].index));
    EXPECT_EQ(find_device(devs[i].name), int(i));
  }
  EXPECT_EQ(devs.front().name, "cpu:0");
  EXPECT_TRUE(devs.front().host_addressable);
  EXPECT_EQ(devs.back().name, "ref:0");
  EXPECT_FALSE(devs.back().host_addressable);
  EXPECT_TRUE(devs.back().cores.empty());
  try {
    find_device("gpu:0");
    FAIL() << "found gpu:0";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("ref:0"), std::string::npos) << e.what();
  }
}

TEST(Backends, RefMemoryMovesOnlyThroughCopies) {
  const DeviceInfo info = devices()[size_t(find_device("ref:0"))];
  auto dev = device::backend("ref").create(info, {});
  ASSERT_EQ(dev->num_clusters(), 1);
  device::ExecContext ctx;
  void* a = dev->allocate(1000);
  void* b = dev->allocate(1000);
  // Not a host address: bit 62 set, which no canonical address has.
  EXPECT_NE(reinterpret_cast<uintptr_t>(a) & ref::kAddressBias, 0u);
  std::vector<uint8_t> host(1000), back(1000, 7);
  for (size_t i = 0; i < host.size(); ++i) host[i] = uint8_t(i * 13);
  dev->fill(ctx, b, 0xab, 1000);
  dev->copy_in(ctx, static_cast<uint8_t*>(a) + 10, host.data() + 10, 990);
  dev->copy(ctx, b, a, 500);  // device -> device
  dev->synchronize(ctx);
  dev->copy_out(ctx, back.data(), b, 1000);
  for (size_t i = 10; i < 500; ++i) ASSERT_EQ(back[i], host[i]) << i;
  for (size_t i = 500; i < 1000; ++i) ASSERT_EQ(back[i], 0xab) << i;
  dev->free(a);
  dev->free(b);
}

TEST(BackendsDeathTest, ReadingRefMemoryFromTheHostFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // What any runtime memcpy of a ref device's memory would do.
  EXPECT_DEATH(
      {
        const DeviceInfo info = devices()[size_t(find_device("ref:0"))];
        auto dev = device::backend("ref").create(info, {});
        void* a = dev->allocate(64);
        volatile uint8_t sink = 0;
        uint8_t host[64];
        std::memcpy(host, a, 64);
        sink = host[0];
        (void)sink;
      },
      "");
}

class RefRuntime : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(std::filesystem::exists(digits_model())) << digits_model(); }
};

TEST_F(RefRuntime, RefMatchesCpuAndMixedBatchKeepsInputOrder) {
  const Program p = compile(digits_model());
  Runtime cpu(p);
  RuntimeOptions ref_only;
  ref_only.devices = {find_device("ref:0")};
  for (int64_t n : {1, 3}) {
    const Tensor x = batch(n, uint32_t(n));
    const std::vector<Tensor> want = cpu.run({x});
    {
      Runtime ref(p, ref_only);
      EXPECT_NE(ref.plan().find("[ref:0]"), std::string::npos) << ref.plan();
      expect_near(ref.run({x})[0], want[0], 1e-4f);
    }
  }
  // cpu + ref, each sample on either: every output in its input's place.
  RuntimeOptions mixed;
  mixed.devices = {find_device("cpu:0"), find_device("ref:0")};
  Runtime both(p, mixed);
  EXPECT_NE(both.plan().find("[cpu:0,ref:0]"), std::string::npos) << both.plan();
  const Tensor x = batch(11, 5);
  const std::vector<Tensor> want = cpu.run({x});
  for (int rep = 0; rep < 3; ++rep) expect_near(both.run({x})[0], want[0], 1e-4f);
}

TEST_F(RefRuntime, ProgramForAnotherTargetIsAClearError) {
  const Program p = compile(digits_model());
  auto data = std::make_shared<program::ProgramData>(program::data_of(p));
  data->target = "gpu";
  RuntimeOptions on_ref;
  on_ref.devices = {find_device("ref:0")};
  try {
    Runtime rt(program::make_program(data), on_ref);
    FAIL() << "ran a gpu program on ref:0";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("target 'gpu'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ref:0"), std::string::npos) << e.what();
  }
}

TEST(Backends, CApiNamesDevices) {
  int id = -1;
  ASSERT_EQ(shoal_find_device("ref:0", &id), SHOAL_OK) << shoal_last_error();
  EXPECT_EQ(id, find_device("ref:0"));
  char name[16];
  ASSERT_EQ(shoal_device_name(id, name, sizeof name), SHOAL_OK) << shoal_last_error();
  EXPECT_STREQ(name, "ref:0");
  EXPECT_EQ(shoal_device_name(id, name, 3), SHOAL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(shoal_find_device("gpu:0", &id), SHOAL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(shoal_last_error()).find("cpu:0"), std::string::npos);
}

}  // namespace
}  // namespace shoal
