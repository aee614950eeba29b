// The server's parts without HTTP (src/serve/): request decoding and response
// encoding, model configs and device placement, and the dynamic batcher on a
// real runtime (under TSan in CI, scripts/test-sanitizers.sh). The HTTP
// server itself is tested end to end in tests/python/test_serve.py.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "serve/batcher.hpp"
#include "serve/config.hpp"
#include "serve/metrics.hpp"
#include "serve/model.hpp"
#include "serve/protocol.hpp"
#include "shoal/shoal.hpp"

namespace {

using namespace shoal;
using namespace shoal::serve;
using nlohmann::json;

const std::vector<TensorInfo> kInputs = {{"x", DType::f32, {1, 2, 2}}, {"y", DType::f32, {1, 3}}};
const std::vector<TensorInfo> kOutputs = {{"z", DType::f32, {1, 4}}};

int status_of(const std::string& body, std::optional<size_t> header = std::nullopt) {
  try {
    decode_infer_request(body, header, kInputs, kOutputs);
  } catch (const HttpError& e) {
    return e.status();
  }
  return 200;
}

TEST(ServeProtocol, DecodesJsonFlatAndNested) {
  const json doc = {
      {"id", "r1"},
      {"inputs",
       {{{"name", "y"}, {"shape", {2, 3}}, {"datatype", "FP32"}, {"data", {1, 2, 3, 4, 5, 6}}},
        {{"name", "x"},
         {"shape", {2, 2, 2}},
         {"datatype", "FP32"},
         {"data", {{{1, 2}, {3, 4}}, {{5, 6}, {7, 8.5}}}}}}}};
  const InferRequest r = decode_infer_request(doc.dump(), std::nullopt, kInputs, kOutputs);
  EXPECT_EQ(r.id, "r1");
  EXPECT_EQ(r.batch, 2);
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[0].shape, (Shape{2, 2, 2}));  // the model's order, not the request's
  EXPECT_EQ(r.inputs[0].bytes, 32u);
  const float* x = reinterpret_cast<const float*>(r.inputs[0].data);
  EXPECT_EQ(x[0], 1.0f);
  EXPECT_EQ(x[7], 8.5f);
  EXPECT_EQ(r.outputs, (std::vector<size_t>{0}));
  EXPECT_EQ(r.binary, (std::vector<bool>{false}));
}

TEST(ServeProtocol, BinaryInputsAreViewsOfTheBody) {
  const json head = {
      {"inputs",
       {{{"name", "x"},
         {"shape", {1, 2, 2}},
         {"datatype", "FP32"},
         {"parameters", {{"binary_data_size", 16}}}},
        {{"name", "y"}, {"shape", {1, 3}}, {"datatype", "FP32"}, {"data", {7, 8, 9}}}}},
      {"outputs", {{{"name", "z"}, {"parameters", {{"binary_data", true}}}}}}};
  std::string body = head.dump();
  const size_t n = body.size();
  const float x[4] = {1, 2, 3, 4};
  body.append(reinterpret_cast<const char*>(x), sizeof x);
  const InferRequest r = decode_infer_request(body, n, kInputs, kOutputs);
  EXPECT_EQ(r.inputs[0].data, reinterpret_cast<const uint8_t*>(body.data()) + n);
  EXPECT_TRUE(r.inputs[0].owned.empty());
  EXPECT_EQ(std::memcmp(r.inputs[0].data, x, 16), 0);
  EXPECT_EQ(r.binary, (std::vector<bool>{true}));

  // The response: JSON header, then the output's bytes.
  Tensor z(DType::f32, {1, 4});
  for (int i = 0; i < 4; ++i) z.f32()[i] = float(i) / 3;
  const EncodedResponse out = encode_infer_response("m", r, {z}, kOutputs);
  ASSERT_TRUE(out.binary);
  const json rh = json::parse(out.body.substr(0, out.header_length));
  EXPECT_EQ(rh["outputs"][0]["parameters"]["binary_data_size"], 16);
  EXPECT_EQ(rh["outputs"][0]["shape"], json({1, 4}));
  ASSERT_EQ(out.body.size(), out.header_length + 16);
  EXPECT_EQ(std::memcmp(out.body.data() + out.header_length, z.data(), 16), 0);
}

TEST(ServeProtocol, JsonOutputsRoundTripFloatsExactly) {
  const json doc = {
      {"inputs",
       {{{"name", "x"}, {"shape", {1, 2, 2}}, {"datatype", "FP32"}, {"data", {0, 0, 0, 0}}},
        {{"name", "y"}, {"shape", {1, 3}}, {"datatype", "FP32"}, {"data", {0, 0, 0}}}}}};
  const InferRequest r = decode_infer_request(doc.dump(), std::nullopt, kInputs, kOutputs);
  Tensor z(DType::f32, {1, 4});
  const float v[4] = {0.1f, -1e-30f, 3.4e38f, 1.0f / 3};
  std::memcpy(z.data(), v, sizeof v);
  const EncodedResponse out = encode_infer_response("m", r, {z}, kOutputs);
  EXPECT_FALSE(out.binary);
  const json rj = json::parse(out.body);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rj["outputs"][0]["data"][i].get<float>(), v[i]);
}

TEST(ServeProtocol, RefusesBadRequestsWith400) {
  auto input = [](const std::string& name, json shape, json data, const char* dt = "FP32") {
    return json{{"name", name}, {"shape", shape}, {"datatype", dt}, {"data", data}};
  };
  const json x = input("x", {1, 2, 2}, {1, 2, 3, 4});
  const json y = input("y", {1, 3}, {1, 2, 3});
  EXPECT_EQ(status_of(json{{"inputs", {x, y}}}.dump()), 200);
  EXPECT_EQ(status_of("{"), 400);
  EXPECT_EQ(status_of("[]"), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x}}}.dump()), 400);        // y missing
  EXPECT_EQ(status_of(json{{"inputs", {x, y, y}}}.dump()), 400);  // y twice
  EXPECT_EQ(status_of(json{{"inputs", {x, input("q", {1, 3}, {1, 2, 3})}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {1, 3}, {1, 2})}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {1, 4}, {1, 2, 3, 4})}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {0, 3}, json::array())}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {-1, 3}, {1, 2, 3})}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {1, 3}, {1, 2, 3}, "INT32")}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {1, 3}, {1, "2", 3})}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {1, 3}, {{1, 2, 3}, 4})}}}.dump()), 400);
  // A batch dim that would overflow the byte count.
  EXPECT_EQ(status_of(json{{"inputs", {x, input("y", {4611686018427387904LL, 3}, {1})}}}.dump()),
            400);
  EXPECT_EQ(status_of(json{{"inputs", {x, y}}, {"outputs", {{{"name", "nope"}}}}}.dump()), 400);
  EXPECT_EQ(status_of(json{{"inputs", {x, y}}, {"parameters", 3}}.dump()), 400);
  // Binary: sizes that disagree, a payload too short or too long.
  json bx = {{"name", "x"},
             {"shape", {1, 2, 2}},
             {"datatype", "FP32"},
             {"parameters", {{"binary_data_size", 16}}}};
  const std::string head = json{{"inputs", {bx, y}}}.dump();
  EXPECT_EQ(status_of(head + std::string(16, '\0'), head.size()), 200);
  EXPECT_EQ(status_of(head + std::string(15, '\0'), head.size()), 400);
  EXPECT_EQ(status_of(head + std::string(17, '\0'), head.size()), 400);
  EXPECT_EQ(status_of(head + std::string(16, '\0')), 400);  // no header length: bad JSON
  EXPECT_THROW(parse_header_length("12x", 100), HttpError);
  EXPECT_THROW(parse_header_length("", 100), HttpError);
  EXPECT_THROW(parse_header_length("101", 100), HttpError);
  EXPECT_THROW(parse_header_length("99999999999999999999999", 100), HttpError);
  EXPECT_EQ(parse_header_length("100", 100), 100u);
}

TEST(ServeConfig, AppliesKeysAndRefusesUnknownOnes) {
  ModelConfig c;
  c.name = "m";
  c.path = "m.shoal";
  apply_config_json(
      R"({"max_batch_size": 16, "max_queue_delay_us": 250, "preferred_batch_sizes": [4, 8],
          "queue_capacity": 9, "instances": 3, "devices": [1], "shape": "1,3,8,8"})",
      c, "cfg");
  EXPECT_EQ(c.max_batch_size, 16);
  EXPECT_EQ(c.max_queue_delay_us, 250);
  EXPECT_EQ(c.preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_EQ(c.queue_capacity, 9);
  EXPECT_EQ(c.instances, 3);
  EXPECT_EQ(c.devices, (std::vector<int>{1}));
  EXPECT_EQ(c.shape, "1,3,8,8");
  EXPECT_NO_THROW(validate(c));
  EXPECT_THROW(apply_config_json(R"({"max_batch": 1})", c, "cfg"), Error);
  EXPECT_THROW(apply_config_json(R"({"queue_capacity": 0})", c, "cfg"), Error);
  EXPECT_THROW(apply_config_json(R"({"devices": "0"})", c, "cfg"), Error);
  EXPECT_THROW(apply_config_json("{", c, "cfg"), Error);
  c.preferred_batch_sizes = {32};
  EXPECT_THROW(validate(c), Error);
  c.preferred_batch_sizes = {};
  c.name = "a/b";
  EXPECT_THROW(validate(c), Error);
}

TEST(ServePlacement, ModelsGetTheirOwnDevicesOrShare) {
  auto model = [](std::vector<int> devices = {}) {
    ModelConfig c;
    c.devices = devices;
    return c;
  };
  auto p = place_models({model(), model()}, {0, 1, 2, 3});
  EXPECT_EQ(p[0].devices, (std::vector<int>{0, 1}));
  EXPECT_EQ(p[1].devices, (std::vector<int>{2, 3}));
  EXPECT_FALSE(p[0].share || p[1].share);
  p = place_models({model(), model({0}), model()}, {0, 1, 2, 3});  // 1, 2, 3 left for two models
  EXPECT_EQ(p[0].devices, (std::vector<int>{1, 2}));
  EXPECT_EQ(p[1].devices, (std::vector<int>{0}));
  EXPECT_EQ(p[2].devices, (std::vector<int>{3}));
  p = place_models({model(), model(), model()}, {0, 1});  // more models than devices
  EXPECT_EQ(p[0].devices, (std::vector<int>{0}));
  EXPECT_EQ(p[1].devices, (std::vector<int>{1}));
  EXPECT_EQ(p[2].devices, (std::vector<int>{0}));
  EXPECT_TRUE(p[0].share && p[1].share && p[2].share);
  EXPECT_THROW(place_models({model({0}), model()}, {0}), Error);
}

// The batcher on a real runtime: many threads, requests of 1-3 samples, each
// must get exactly its own rows of Runtime::run's output.
TEST(ServeBatcher, ConcurrentRequestsGetTheirOwnRows) {
  const std::string onnx = std::string(SHOAL_SOURCE_DIR) + "/models/digits/digits_cnn.onnx";
  CompileOptions o;
  o.input_shape = {1, 1, 8, 8};
  Program program = compile(onnx, o);
  RuntimeOptions ro;
  ro.share_devices = true;
  ro.devices = {0};
  Runtime rt(program, ro);
  Metrics metrics;
  const ModelMetrics mm = metrics.add_model("digits");
  BatchSettings s;
  s.max_batch_size = 5;
  s.max_queue_delay_us = 200;
  s.queue_capacity = 1000;
  s.instances = 2;
  Batcher batcher(rt, s, mm);
  const std::vector<TensorInfo> inputs = program.inputs(), outputs = program.outputs();

  constexpr int kThreads = 8, kRequests = 25;
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRequests; ++r) {
        const int64_t n = 1 + (t + r) % 3;
        std::vector<float> x(size_t(n) * 64);
        for (size_t i = 0; i < x.size(); ++i) x[i] = float((t * 131 + r * 17 + int(i)) % 29) / 7;
        InferRequest req;
        req.batch = n;
        req.inputs.resize(1);
        req.inputs[0].shape = {n, 1, 8, 8};
        req.inputs[0].data = reinterpret_cast<const uint8_t*>(x.data());
        req.inputs[0].bytes = x.size() * 4;
        auto p = std::make_shared<Pending>(req);
        if (!batcher.submit(p)) {
          ++failures;
          continue;
        }
        p->wait();
        if (p->error) {
          ++failures;
          continue;
        }
        const std::vector<Tensor> want = rt.run({Tensor::view(x.data(), {n, 1, 8, 8})});
        if (p->outputs.size() != 1 || p->outputs[0].shape() != want[0].shape() ||
            std::memcmp(p->outputs[0].data(), want[0].data(), want[0].bytes()) != 0)
          ++mismatches;
      }
    });
  for (std::thread& t : threads) t.join();
  batcher.stop();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(mismatches, 0);
  const std::string text = metrics.text();
  EXPECT_NE(text.find("nv_inference_pending_request_count{model=\"digits\",version=\"1\"} 0"),
            std::string::npos)
      << text;
}

TEST(ServeBatcher, AFullQueueRefusesAtOnceAndStopFinishesEveryRequest) {
  const std::string onnx = std::string(SHOAL_SOURCE_DIR) + "/models/digits/digits_cnn.onnx";
  CompileOptions o;
  o.input_shape = {1, 1, 8, 8};
  Runtime rt(compile(onnx, o), RuntimeOptions{.devices = {0}, .share_devices = true});
  Metrics metrics;
  BatchSettings s;
  s.max_batch_size = 8;
  s.max_queue_delay_us = int64_t(600) * 1000000;  // nothing goes before stop()
  s.queue_capacity = 2;
  Batcher batcher(rt, s, metrics.add_model("digits"));
  std::vector<float> x(64, 0.5f);
  InferRequest req;
  req.batch = 1;
  req.inputs.resize(1);
  req.inputs[0].shape = {1, 1, 8, 8};
  req.inputs[0].data = reinterpret_cast<const uint8_t*>(x.data());
  req.inputs[0].bytes = 256;
  auto a = std::make_shared<Pending>(req), b = std::make_shared<Pending>(req),
       c = std::make_shared<Pending>(req);
  EXPECT_TRUE(batcher.submit(a));
  EXPECT_TRUE(batcher.submit(b));
  EXPECT_FALSE(batcher.submit(c));
  batcher.stop();  // runs the two queued requests, as one batch
  a->wait();
  b->wait();
  EXPECT_FALSE(a->error);
  EXPECT_FALSE(b->error);
  ASSERT_EQ(a->outputs.size(), 1u);
  EXPECT_EQ(a->outputs[0].shape(), (Shape{1, 10}));
  EXPECT_EQ(std::memcmp(a->outputs[0].data(), b->outputs[0].data(), 40), 0);
  EXPECT_FALSE(batcher.submit(c));  // stopped
}

}  // namespace
