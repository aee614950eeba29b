// Runtime: batching across devices and clusters, split mode, device
// ownership, and the asynchronous put/get pipeline.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <random>
#include <thread>

#include "shoal/shoal.hpp"

namespace {

std::string digits_model() {
  return std::string(SHOAL_SOURCE_DIR) + "/models/digits/digits_cnn.onnx";
}

/// Two CPU devices of one core each, for every runtime these tests create.
class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(digits_model())) << "no digits model (bundled)";
    setenv("SHOAL_CPU_DEVICES", "2", 1);
  }
  void TearDown() override { unsetenv("SHOAL_CPU_DEVICES"); }

  static shoal::Program compile(int devices, int clusters, bool split) {
    shoal::CompileOptions o;
    o.devices = devices;
    o.clusters = clusters;
    o.mode = split ? shoal::Mode::split : shoal::Mode::batch;
    return shoal::compile(digits_model(), o);
  }
  static shoal::Tensor batch(int64_t n, uint32_t seed) {
    shoal::Tensor t(shoal::DType::f32, {n, 1, 8, 8});
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = u(rng);
    return t;
  }
  static void expect_near(const shoal::Tensor& a, const shoal::Tensor& b, float tol) {
    ASSERT_EQ(a.shape(), b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) ASSERT_NEAR(a.f32()[i], b.f32()[i], tol) << i;
  }
};

TEST_F(RuntimeTest, BatchAcrossDevicesKeepsInputOrder) {
  shoal::Runtime one(compile(1, 1, false));
  shoal::Runtime two(compile(2, 1, false));
  for (int64_t n : {1, 2, 3, 7}) {
    shoal::Tensor x = batch(n, uint32_t(n));
    auto a = one.run({x});
    auto b = two.run({x});
    ASSERT_EQ(b[0].shape(), (shoal::Shape{n, 10}));
    expect_near(a[0], b[0], 1e-5f);
  }
}

TEST_F(RuntimeTest, ClustersBatchAndSplitAgree) {
  shoal::Tensor x = batch(5, 3);
  auto ref = shoal::Runtime(compile(1, 1, false)).run({x});
  shoal::Runtime clusters(compile(1, 2, false));
  expect_near(ref[0], clusters.run({x})[0], 1e-5f);
  shoal::Runtime split(compile(1, 2, true));
  EXPECT_NE(split.plan().find("split"), std::string::npos) << split.plan();
  expect_near(ref[0], split.run({x})[0], 1e-5f);
}

TEST_F(RuntimeTest, NamedDevicesAreOwned) {
  shoal::Program p = compile(1, 1, false);
  shoal::RuntimeOptions on0;
  on0.devices = {0};
  shoal::Runtime a(p, on0);
  try {
    shoal::Runtime b(p, on0);
    FAIL() << "a second runtime took an owned device";
  } catch (const shoal::Error& e) {
    EXPECT_EQ(e.kind(), shoal::ErrorKind::device);
    EXPECT_NE(std::string(e.what()).find("device 0"), std::string::npos) << e.what();
  }
  // A runtime naming no device takes a device nobody owns.
  shoal::Runtime c(p);
  EXPECT_NE(c.plan().find("[cpu:1]"), std::string::npos) << c.plan();
  shoal::RuntimeOptions shared = on0;
  shared.share_devices = true;
  EXPECT_NO_THROW(shoal::Runtime d(p, shared));
}

TEST_F(RuntimeTest, OwnershipEndsWithTheRuntime) {
  shoal::Program p = compile(1, 1, false);
  shoal::RuntimeOptions on1;
  on1.devices = {1};
  { shoal::Runtime a(p, on1); }
  EXPECT_NO_THROW(shoal::Runtime b(p, on1));
}

TEST_F(RuntimeTest, PutGetReturnsTagsInPutOrder) {
  shoal::Runtime rt(compile(2, 1, false));
  std::vector<shoal::Tensor> xs;
  for (int i = 0; i < 6; ++i) xs.push_back(batch(1 + i % 3, uint32_t(100 + i)));
  const auto ref = [&](int i) { return rt.run({xs[size_t(i)]}); };
  rt.set_queue_capacity(3);
  int got = 0;
  for (int i = 0; i < 6; ++i) {
    if (rt.pending() == rt.queue_capacity()) {
      std::vector<shoal::Tensor> out;
      uint64_t tag = 0;
      ASSERT_TRUE(rt.get(out, tag));
      EXPECT_EQ(tag, uint64_t(1000 + got));
      expect_near(out[0], ref(got)[0], 0);
      ++got;
    }
    ASSERT_TRUE(rt.put({xs[size_t(i)]}, uint64_t(1000 + i)));
  }
  while (got < 6) {
    std::vector<shoal::Tensor> out;
    uint64_t tag = 0;
    ASSERT_TRUE(rt.get(out, tag));
    EXPECT_EQ(tag, uint64_t(1000 + got));
    expect_near(out[0], ref(got)[0], 0);
    ++got;
  }
  EXPECT_EQ(rt.pending(), 0u);
}

TEST_F(RuntimeTest, PipelineNeverHangsALoneThread) {
  shoal::Runtime rt(compile(1, 1, false));
  std::vector<shoal::Tensor> out;
  uint64_t tag = 0;
  EXPECT_THROW(rt.get(out, tag), shoal::Error);  // nothing was put
  rt.set_queue_capacity(1);
  ASSERT_TRUE(rt.put({batch(1, 1)}, 1));
  EXPECT_FALSE(rt.put({batch(1, 2)}, 2, 0));     // full: no wait
  EXPECT_FALSE(rt.put({batch(1, 2)}, 2, 20.0));  // full: waited 20 ms
  ASSERT_TRUE(rt.get(out, tag));
  EXPECT_EQ(tag, 1u);
  // A bad put fails at once instead of queueing.
  EXPECT_THROW(rt.put({shoal::Tensor(shoal::DType::f32, {1, 3, 8, 8})}, 3), shoal::Error);
}

TEST_F(RuntimeTest, ManyThreadsTwoRuntimesNoDeadlock) {
  // The SDK deadlocked when two objects shared the hardware: here two
  // runtimes share device 0 while threads put and get in any interleaving.
  shoal::Program p = compile(1, 1, false);
  shoal::Runtime a(p), b(p);
  a.set_queue_capacity(2);
  b.set_queue_capacity(3);
  std::atomic<int> done{0}, bad{0};
  auto producer = [&](shoal::Runtime& rt, int base) {
    for (int i = 0; i < 40; ++i)
      while (!rt.put({batch(1 + i % 2, uint32_t(base + i))}, uint64_t(base + i), 5.0)) {
      }
  };
  auto consumer = [&](shoal::Runtime& rt, int count) {
    for (int k = 0; k < count;) {
      std::vector<shoal::Tensor> out;
      uint64_t tag = 0;
      try {
        if (!rt.get(out, tag, 5.0)) continue;
      } catch (const shoal::Error&) {
        std::this_thread::yield();  // nothing pending yet
        continue;
      }
      if (out.size() != 1 || out[0].shape()[1] != 10) ++bad;
      ++k;
      ++done;
    }
  };
  std::vector<std::thread> ts;
  ts.emplace_back(producer, std::ref(a), 0);
  ts.emplace_back(producer, std::ref(b), 1000);
  ts.emplace_back(consumer, std::ref(a), 40);
  ts.emplace_back(consumer, std::ref(b), 40);
  ts.emplace_back([&] {  // run() alongside the pipeline
    for (int i = 0; i < 20; ++i) a.run({batch(2, uint32_t(i))});
  });
  for (auto& t : ts) t.join();
  EXPECT_EQ(done.load(), 80);
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace

namespace {

TEST_F(RuntimeTest, StackedBatchesEqualOneAtATime) {
  shoal::Program p = compile(1, 2, false);
  shoal::RuntimeOptions single_opts;
  single_opts.micro_batch = 1;
  shoal::Runtime single(p, single_opts);
  shoal::RuntimeOptions stacked_opts;
  stacked_opts.profile = true;  // profile() below reads while stacks are made
  shoal::Runtime stacked(p, stacked_opts);
  EXPECT_NE(stacked.plan().find("up to 8 inputs at once"), std::string::npos) << stacked.plan();
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) (void)stacked.profile();
  });
  auto check = [&](uint32_t seed) {
    for (int64_t n : {1, 2, 5, 9, 16, 3}) {
      shoal::Tensor x = batch(n, seed + uint32_t(n));
      expect_near(stacked.run({x})[0], single.run({x})[0], 1e-5f);
    }
  };
  std::thread other([&] { check(100); });  // two callers share the clusters
  check(200);
  other.join();
  done = true;
  reader.join();
  int64_t samples = 0;
  for (const auto& l : stacked.profile()) samples = std::max(samples, l.calls);
  EXPECT_EQ(samples, 2 * (1 + 2 + 5 + 9 + 16 + 3));
}

}  // namespace
