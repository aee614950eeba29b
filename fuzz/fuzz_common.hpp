// The code paths the fuzz targets drive, shared with the regression test
// (tests/cpp/test_fuzz_regressions.cpp) so that every saved reproducer goes
// through exactly what the fuzzer ran. Each function either returns or throws
// shoal::Error; anything else (a crash, another exception, a sanitizer
// report) is a bug.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "program/crc32c.hpp"
#include "serve/protocol.hpp"
#include "shoal/shoal.hpp"

namespace shoal::fuzz {

/// Bytes -> compile_bytes, and a compiled program must serialize and load.
inline void compile_onnx(const uint8_t* data, size_t size) {
  CompileOptions options;
  options.prepack = false;  // no oneDNN packing: the import is under test
  Program p = compile_bytes(data, size, options);
  std::vector<uint8_t> bytes = p.to_bytes();
  Program::from_bytes(bytes.data(), bytes.size());
}

/// A copy of a would-be program file whose CRC-32C fields (section table and
/// header, docs/PROGRAM_FORMAT.md) are recomputed, so that mutations reach
/// the parser behind the checksums. Bytes too short or with the wrong magic
/// are returned as they are.
inline std::vector<uint8_t> fix_checksums(const uint8_t* data, size_t size) {
  std::vector<uint8_t> b(data, data + size);
  constexpr size_t kHeader = 136, kCrc = 32, kTable = 40, kEntry = 24;
  if (size < kHeader || std::memcmp(data, "SHOALPRG", 8) != 0) return b;
  auto u64_at = [&](size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | b[at + size_t(i)];
    return v;
  };
  auto put_u32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + size_t(i)] = uint8_t(v >> (8 * i));
  };
  for (size_t e = kTable; e < kHeader; e += kEntry) {
    const uint64_t offset = u64_at(e + 8), n = u64_at(e + 16);
    if (offset <= size && n <= size - offset)
      put_u32(e + 4, program::crc32c(b.data() + offset, size_t(n)));
  }
  put_u32(kCrc, 0);
  put_u32(kCrc, program::crc32c(b.data(), kHeader));
  return b;
}

/// What the program target is willing to run. A fuzzed program may
/// legitimately ask for gigabytes of arena or thousands of cluster threads;
/// running those is correct but would only make the fuzzer slow or trip its
/// memory limit, so they are loaded and described but not run.
inline bool small_enough_to_run(const Program& p) {
  constexpr uint64_t kMaxBytes = uint64_t(64) << 20;
  return p.devices() == 1 && p.clusters() <= 4 && p.arena_bytes() <= kMaxBytes &&
         p.weight_bytes() <= kMaxBytes && p.num_instructions() <= 4096;
}

/// Bytes (checksums fixed) -> Program::from_bytes; when they load, a Runtime
/// on one device running one all-zero input sample.
inline void load_and_run_program(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes = fix_checksums(data, size);
  Program p = Program::from_bytes(bytes.data(), bytes.size());
  p.describe();
  if (!small_enough_to_run(p)) return;
  RuntimeOptions options;
  options.devices = {0};
  options.share_devices = true;
  Runtime rt(p, options);
  std::vector<Tensor> inputs;
  for (const TensorInfo& info : p.inputs()) {
    Shape shape = info.shape;  // one sample; the runtime's batch dim is 1
    if (shape.empty() || shape[0] != 1) shape.insert(shape.begin(), 1);
    inputs.emplace_back(info.dtype, shape);
  }
  rt.run(inputs);
}

/// The serve target's input: byte 0 holds flags; with bit 0 set, the bytes
/// up to the first newline are the Inference-Header-Content-Length value
/// (text, as sent) and the rest is the body; without it, everything after
/// byte 0 is a JSON body. It is decoded as `shoal serve` decodes a POST
/// /v2/models/NAME/infer body for a model with inputs x [N,3,4,4] and
/// y [N,2] and outputs z [N,5] and w [N,2,2] (all float32). A decoded
/// request must encode a response whose JSON header parses again.
/// Returns false for a request refused with 400; any other outcome is a bug.
inline bool decode_serve_request(const uint8_t* data, size_t size) {
  if (size == 0) return false;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::optional<std::string_view> header;
  std::string_view body = all;
  if (data[0] & 1) {
    const size_t nl = all.find('\n');
    header = all.substr(0, nl);
    body = nl == std::string_view::npos ? std::string_view() : all.substr(nl + 1);
  }
  const std::vector<TensorInfo> inputs = {{"x", DType::f32, {1, 3, 4, 4}},
                                          {"y", DType::f32, {1, 2}}};
  const std::vector<TensorInfo> outputs = {{"z", DType::f32, {1, 5}}, {"w", DType::f32, {1, 2, 2}}};
  serve::InferRequest req;
  try {
    std::optional<size_t> length;
    if (header) length = serve::parse_header_length(*header, body.size());
    req = serve::decode_infer_request(body, length, inputs, outputs);
  } catch (const serve::HttpError& e) {
    if (e.status() != 400 || std::string(e.what()).empty()) __builtin_trap();
    return false;
  }
  // The decoded request is consistent: its bytes are where it says.
  for (size_t k = 0; k < inputs.size(); ++k) {
    const serve::InputTensor& in = req.inputs[k];
    if (in.shape[0] != req.batch || in.bytes != size_t(shape_numel(in.shape)) * 4) __builtin_trap();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < in.bytes; i += 64) sink = sink + in.data[i];
  }
  if (req.batch > 4096) return true;  // valid, just too large to encode cheaply
  std::vector<Tensor> outs;
  for (const TensorInfo& t : outputs)
    outs.emplace_back(t.dtype, serve::batch_shape(t.shape, req.batch));
  const serve::EncodedResponse r = serve::encode_infer_response("m", req, outs, outputs);
  if (r.header_length > r.body.size()) __builtin_trap();
  const auto doc = nlohmann::json::parse(r.body.substr(0, r.header_length));  // throws if not
  if (doc.at("outputs").size() != req.outputs.size()) __builtin_trap();
  return true;
}

}  // namespace shoal::fuzz
