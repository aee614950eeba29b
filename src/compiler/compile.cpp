// shoal::compile: ONNX bytes -> passes -> ProgramData.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "backends/cpu/onednn_kernels.hpp"
#include "compiler/emit.hpp"
#include "frontend/onnx/onnx_import.hpp"
#include "passes/passes.hpp"
#include "program/program_data.hpp"
#include "shoal/shoal.hpp"

namespace shoal {
namespace {

std::vector<uint8_t> read_file(const std::string& path) {
  std::error_code ec;  // a directory opens as a stream "of 2^63 bytes"
  if (std::filesystem::is_directory(path, ec))
    throw Error(ErrorKind::invalid_argument,
                "cannot read model file '" + path + "': it is a directory");
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw Error(ErrorKind::invalid_argument, "cannot open model file '" + path + "'");
  const std::streamoff size = f.tellg();
  if (size < 0) throw Error(ErrorKind::invalid_argument, "cannot read model file '" + path + "'");
  // Checked before reading, so that a huge file is not read in vain.
  if (size > std::streamoff(std::numeric_limits<int>::max()))
    throw Error(ErrorKind::unsupported,
                "model file '" + path + "' has " + std::to_string(size) +
                    " bytes; ONNX models over 2 GiB (protobuf's limit) are not supported");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error(ErrorKind::invalid_argument, "cannot read model file '" + path + "'");
  return bytes;
}

}  // namespace

Shape parse_shape(const std::string& text) {
  auto fail = [&]() -> Error {
    return Error(ErrorKind::invalid_argument,
                 "bad input shape '" + text +
                     "': expected WxHxC (e.g. 224x224x3) or N,C,H,W (e.g. 1,3,224,224)");
  };
  const char sep = text.find('x') != std::string::npos ? 'x' : ',';
  std::vector<int64_t> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, sep)) {
    if (part.empty() || part.find_first_not_of(" 0123456789") != std::string::npos) throw fail();
    try {
      dims.push_back(std::stoll(part));
    } catch (...) {
      throw fail();
    }
    if (dims.back() <= 0 || dims.back() > (int64_t(1) << 31)) throw fail();
  }
  if (dims.empty()) throw fail();
  if (sep == 'x') {  // WxHxC -> [1, C, H, W]
    if (dims.size() != 3) throw fail();
    return {1, dims[2], dims[1], dims[0]};
  }
  return dims;
}

Program compile_bytes(const void* onnx_bytes, size_t size, const CompileOptions& o) {
  if (o.devices < 1 || o.devices > 1024)
    throw Error(ErrorKind::invalid_argument,
                "devices must be 1..1024, got " + std::to_string(o.devices));
  if (o.clusters < 0 || o.clusters > 1024)
    throw Error(ErrorKind::invalid_argument,
                "clusters must be 0 (one per core) to 1024, got " + std::to_string(o.clusters));
  if (o.precision == Precision::bf16) {  // before any work: fail fast
    const std::string missing = cpu::bf16_unavailable();
    if (!missing.empty()) throw Error(ErrorKind::unsupported, missing);
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto log = [&](const std::string& s) {
    if (!o.log) return;
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "[%8.1f ms] ", ms);
    o.log(stamp + s);
  };
  frontend::ImportOptions io;
  io.input_shape = o.input_shape;
  io.log = log;
  auto data = std::make_shared<program::ProgramData>();
  ir::Graph g = frontend::import_onnx(onnx_bytes, size, io, &data->model_name);
  if (o.optimize) passes::fuse_qdq(g, log);
  passes::infer_and_fold(g, log);
  if (o.optimize) passes::fuse_qdq_add(g, log);
  passes::remove_dead_and_identity(g, log);
  if (o.optimize) {
    passes::lower_einsum(g, log);
    passes::lower_reductions(g, log);
    passes::fold_pad_into_pool(g, log);
    passes::fold_batchnorm(g, log);
    passes::split_concat_conv(g, log);
    passes::recognize_composites(g, log);
    passes::batch_generic_reshapes(g, log);
    passes::fuse_matmul_bias(g, log);
    passes::fuse_residual_add(g, log);
    passes::fuse_activations(g, log);
    passes::fuse_concat_batchnorm(g, log);
    passes::assign_layouts(g, log);
  }
  data->version = program::kFormatVersion;
  data->target = "cpu";
  data->producer = std::string("shoal ") + version();
  data->devices = o.devices;
  data->clusters = o.clusters;
  data->mode = o.mode;
  compiler::emit_program(g, *data, log);
  cpu::assign_precision(*data, o.precision, log);
  if (o.optimize && o.winograd) {
    // SHOAL_WINOGRAD=all: wherever oneDNN has it, not only where it pays
    // (tests of the Winograd path on small models).
    const char* env = std::getenv("SHOAL_WINOGRAD");
    const bool all = env && std::string(env) == "all";
    cpu::choose_conv_algorithms(
        *data, all ? cpu::WinogradPolicy::all : cpu::WinogradPolicy::worthwhile, log);
  }
  if (o.prepack) cpu::prepack_weights(*data, log);
  if (o.strict) {
    const std::vector<std::string> slow = cpu::reference_layers(*data);
    if (!slow.empty()) {
      std::string list;
      for (size_t i = 0; i < slow.size(); ++i) list += (i ? ", " : "") + slow[i];
      throw Error(ErrorKind::unsupported,
                  "strict: " + std::to_string(slow.size()) + " layer" +
                      (slow.size() == 1 ? " has" : "s have") +
                      " no fast CPU kernel and would run the slow reference kernels: " + list);
    }
    log("strict: every layer has a fast CPU kernel");
  }
  log("compiled " + std::to_string(data->instructions.size()) + " instructions");
  return Program(std::move(data));
}

Program compile(const std::string& onnx_path, const CompileOptions& options) {
  const std::vector<uint8_t> bytes = read_file(onnx_path);
  try {
    return compile_bytes(bytes.data(), bytes.size(), options);
  } catch (const Error& e) {
    throw Error(e.kind(), onnx_path + ": " + e.what());
  }
}

}  // namespace shoal
