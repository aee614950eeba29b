// The C API (include/shoal/shoal.h): thin wrappers over the C++ API that turn
// every exception into a status code plus a thread-local message.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "shoal/shoal.h"
#include "shoal/shoal.hpp"

struct shoal_program {
  shoal::Program program;
};

struct shoal_runtime {
  explicit shoal_runtime(shoal::Runtime rt) : runtime(std::move(rt)) {}
  shoal::Runtime runtime;
};

namespace {

using shoal::Error;
using shoal::ErrorKind;

thread_local std::string g_last_error;

// The one mapping from ErrorKind to C status codes.
int status_of(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::invalid_argument:
    case ErrorKind::dtype:
      return SHOAL_ERR_INVALID_ARGUMENT;
    case ErrorKind::unsupported:
      return SHOAL_ERR_UNSUPPORTED;
    case ErrorKind::out_of_memory:
      return SHOAL_ERR_OUT_OF_MEMORY;
    case ErrorKind::device:
      return SHOAL_ERR_DEVICE;
    case ErrorKind::internal:
      return SHOAL_ERR_INTERNAL;
  }
  return SHOAL_ERR_INTERNAL;
}

int fail(int status, const char* message) noexcept {
  try {
    g_last_error = message;
  } catch (...) {
    // Out of memory while recording the message: keep the old one.
  }
  return status;
}

// Runs `body` (which returns void), mapping any exception to a status.
template <typename F>
int guarded(F&& body) noexcept {
  try {
    body();
    return SHOAL_OK;
  } catch (const Error& e) {
    return fail(status_of(e.kind()), e.what());
  } catch (const std::bad_alloc&) {
    return fail(SHOAL_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    std::string msg;
    try {
      msg = std::string("internal error: ") + e.what();
    } catch (...) {
      return fail(SHOAL_ERR_INTERNAL, "internal error");
    }
    return fail(SHOAL_ERR_INTERNAL, msg.c_str());
  } catch (...) {
    return fail(SHOAL_ERR_INTERNAL, "internal error: unknown exception");
  }
}

[[noreturn]] void invalid(const std::string& message) {
  throw Error(ErrorKind::invalid_argument, message);
}

// Throws INVALID_ARGUMENT naming `what` (e.g. "shoal_compile: out") when p is
// NULL.
void require(const void* p, const char* function, const char* what) {
  if (p == nullptr) invalid(std::string(function) + ": " + what + " is NULL");
}

// Gives a clear message for a missing file before the C++ API sees it.
void require_readable(const char* path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) invalid(std::string("cannot open ") + what + " '" + path + "': " + std::strerror(errno));
}

shoal::CompileOptions compile_options(const char* function, const int64_t* input_shape, size_t ndim,
                                      int devices, int clusters, int mode) {
  if (ndim > 0) require(input_shape, function, "input_shape");
  if (devices < 1)
    invalid(std::string(function) + ": devices must be >= 1, got " + std::to_string(devices));
  if (clusters < 0)
    invalid(std::string(function) + ": clusters must be >= 0 (0: one per core), got " +
            std::to_string(clusters));
  shoal::CompileOptions options;
  if (ndim > 0) options.input_shape.assign(input_shape, input_shape + ndim);
  options.devices = devices;
  options.clusters = clusters;
  if (mode < 0 || mode > 2)
    invalid(std::string(function) +
            ": mode must be SHOAL_MODE_BATCH (0), SHOAL_MODE_SPLIT (1) "
            "or SHOAL_MODE_AUTO (2), got " +
            std::to_string(mode));
  options.mode = shoal::Mode(mode);
  return options;
}

const shoal::TensorInfo& info_at(const std::vector<shoal::TensorInfo>& infos, size_t index,
                                 const char* function, const char* kind) {
  if (index >= infos.size())
    invalid(std::string(function) + ": " + kind + " index " + std::to_string(index) +
            " out of range (the program has " + std::to_string(infos.size()) + " " + kind + "s)");
  return infos[index];
}

void write_shape(const shoal::Shape& shape, int64_t* dims, size_t capacity, size_t* ndim,
                 const char* function) {
  require(ndim, function, "ndim");
  if (capacity > 0) require(dims, function, "dims");
  *ndim = shape.size();
  if (dims == nullptr) return;  // a rank query
  if (capacity < shape.size())
    invalid(std::string(function) + ": capacity " + std::to_string(capacity) +
            " is smaller than the rank " + std::to_string(shape.size()));
  for (size_t i = 0; i < shape.size(); ++i) dims[i] = shape[i];
}

// Shape of a batch of `batch` samples of `info` (its leading dim is 1).
shoal::Shape batched(const shoal::TensorInfo& info, size_t batch) {
  shoal::Shape s = info.shape;
  if (s.empty())
    s.push_back(int64_t(batch));
  else
    s[0] *= int64_t(batch);
  return s;
}

// dst[i] = float(src[i]) for n elements of type T.
template <class T>
void widen(const void* src, size_t n, float* dst) {
  for (size_t i = 0; i < n; ++i) dst[i] = float(static_cast<const T*>(src)[i]);
}

// Copies a run output into a float buffer, converting non-float32 outputs.
void copy_out(const shoal::Tensor& t, float* dst) {
  const size_t n = size_t(t.numel());
  const void* src = t.data();
  if (n == 0) return;
  if (src == nullptr) throw Error(ErrorKind::internal, "run returned an output without data");
  switch (t.dtype()) {
    case shoal::DType::f32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case shoal::DType::f64:
      return widen<double>(src, n, dst);
    case shoal::DType::i64:
      return widen<int64_t>(src, n, dst);
    case shoal::DType::i32:
      return widen<int32_t>(src, n, dst);
    case shoal::DType::i8:
      return widen<int8_t>(src, n, dst);
    case shoal::DType::u8:
    case shoal::DType::boolean:
      return widen<uint8_t>(src, n, dst);
    case shoal::DType::undefined:
      break;
  }
  throw Error(ErrorKind::unsupported, std::string("cannot convert output of type ") +
                                          shoal::dtype_name(t.dtype()) + " to float");
}

// The shared body of shoal_runtime_run and shoal_runtime_run_multi.
void run_batch(shoal_runtime* rt, const float* const* inputs, size_t n_inputs, size_t batch,
               float* const* outputs, const size_t* capacities, size_t n_outputs,
               const char* function) {
  const shoal::Program& program = rt->runtime.program();
  const std::vector<shoal::TensorInfo> in_infos = program.inputs();
  const std::vector<shoal::TensorInfo> out_infos = program.outputs();
  if (batch == 0) invalid(std::string(function) + ": batch must be >= 1");
  if (n_inputs != in_infos.size())
    invalid(std::string(function) + ": got " + std::to_string(n_inputs) +
            " inputs, the program has " + std::to_string(in_infos.size()));
  if (n_outputs != out_infos.size())
    invalid(std::string(function) + ": got " + std::to_string(n_outputs) +
            " outputs, the program has " + std::to_string(out_infos.size()));

  std::vector<shoal::Tensor> in;
  in.reserve(n_inputs);
  for (size_t i = 0; i < n_inputs; ++i) {
    if (inputs[i] == nullptr)
      invalid(std::string(function) + ": input " + std::to_string(i) + " is NULL");
    if (in_infos[i].dtype != shoal::DType::f32)
      throw Error(ErrorKind::unsupported, std::string(function) + ": input '" + in_infos[i].name +
                                              "' has type " + shoal::dtype_name(in_infos[i].dtype) +
                                              "; the C API passes float32 only");
    in.push_back(shoal::Tensor::view(inputs[i], batched(in_infos[i], batch)));
  }
  for (size_t j = 0; j < n_outputs; ++j) {
    if (outputs[j] == nullptr)
      invalid(std::string(function) + ": output " + std::to_string(j) + " is NULL");
    const size_t need = size_t(program.output_size(j)) * batch;
    if (capacities[j] < need)
      invalid(std::string(function) + ": output " + std::to_string(j) + " ('" + out_infos[j].name +
              "') needs " + std::to_string(need) + " floats for batch " + std::to_string(batch) +
              ", capacity is " + std::to_string(capacities[j]));
  }

  std::vector<shoal::Tensor> out = rt->runtime.run(in);
  if (out.size() != n_outputs)
    throw Error(ErrorKind::internal, "run returned " + std::to_string(out.size()) +
                                         " outputs, expected " + std::to_string(n_outputs));
  for (size_t j = 0; j < n_outputs; ++j) {
    if (size_t(out[j].numel()) > capacities[j])
      throw Error(ErrorKind::internal, "run returned " + std::to_string(out[j].numel()) +
                                           " elements for output " + std::to_string(j) +
                                           ", expected at most " + std::to_string(capacities[j]));
    copy_out(out[j], outputs[j]);
  }
}

}  // namespace

extern "C" {

const char* shoal_version(void) { return shoal::version(); }

const char* shoal_last_error(void) { return g_last_error.c_str(); }

const char* shoal_status_name(int status) {
  switch (status) {
    case SHOAL_OK:
      return "ok";
    case SHOAL_ERR_INVALID_ARGUMENT:
      return "invalid_argument";
    case SHOAL_ERR_UNSUPPORTED:
      return "unsupported";
    case SHOAL_ERR_OUT_OF_MEMORY:
      return "out_of_memory";
    case SHOAL_ERR_DEVICE:
      return "device";
    case SHOAL_ERR_INTERNAL:
      return "internal";
    default:
      return "unknown";
  }
}

int shoal_device_count(int* count) {
  return guarded([&] {
    require(count, "shoal_device_count", "count");
    *count = int(shoal::devices().size());
  });
}

int shoal_find_device(const char* name, int* id) {
  return guarded([&] {
    require(name, "shoal_find_device", "name");
    require(id, "shoal_find_device", "id");
    *id = shoal::find_device(name);
  });
}

int shoal_device_name(int id, char* buf, size_t size) {
  return guarded([&] {
    require(buf, "shoal_device_name", "buf");
    const std::vector<shoal::DeviceInfo> devs = shoal::devices();
    if (id < 0 || id >= int(devs.size()))
      invalid("shoal_device_name: no device " + std::to_string(id) + " (this host has " +
              std::to_string(devs.size()) + ")");
    const std::string& n = devs[size_t(id)].name;
    if (n.size() + 1 > size)
      invalid("shoal_device_name: the name '" + n + "' needs " + std::to_string(n.size() + 1) +
              " bytes, got " + std::to_string(size));
    std::memcpy(buf, n.c_str(), n.size() + 1);
  });
}

int shoal_compile(const char* onnx_path, const int64_t* input_shape, size_t ndim, int devices,
                  int clusters, int mode, shoal_program** out) {
  return guarded([&] {
    const char* fn = "shoal_compile";
    require(onnx_path, fn, "onnx_path");
    require(out, fn, "out");
    shoal::CompileOptions options = compile_options(fn, input_shape, ndim, devices, clusters, mode);
    require_readable(onnx_path, "ONNX model");
    auto* p = new shoal_program{shoal::compile(onnx_path, options)};
    *out = p;
  });
}

int shoal_compile_precision(const char* onnx_path, const int64_t* input_shape, size_t ndim,
                            int devices, int clusters, int mode, int precision,
                            shoal_program** out) {
  return guarded([&] {
    const char* fn = "shoal_compile_precision";
    require(onnx_path, fn, "onnx_path");
    require(out, fn, "out");
    shoal::CompileOptions options = compile_options(fn, input_shape, ndim, devices, clusters, mode);
    if (precision != SHOAL_PRECISION_F32 && precision != SHOAL_PRECISION_BF16)
      invalid(std::string(fn) +
              ": precision must be SHOAL_PRECISION_F32 (0) or SHOAL_PRECISION_BF16 (1), got " +
              std::to_string(precision) + " (int8: compile a quantized QDQ model)");
    options.precision = shoal::Precision(precision);
    require_readable(onnx_path, "ONNX model");
    auto* p = new shoal_program{shoal::compile(onnx_path, options)};
    *out = p;
  });
}

int shoal_quantize(const char* onnx_path, const char* calibration_path, const char* method,
                   const char* output_path) {
  return guarded([&] {
    const char* fn = "shoal_quantize";
    require(onnx_path, fn, "onnx_path");
    require(calibration_path, fn, "calibration_path");
    require(output_path, fn, "output_path");
    require_readable(onnx_path, "ONNX model");
    shoal::QuantizeOptions o;
    o.calibration = calibration_path;
    if (method) o.method = method;
    shoal::quantize(onnx_path, output_path, o);
  });
}

int shoal_compile_bytes(const void* onnx_bytes, size_t size, const int64_t* input_shape,
                        size_t ndim, int devices, int clusters, int mode, shoal_program** out) {
  return guarded([&] {
    const char* fn = "shoal_compile_bytes";
    require(onnx_bytes, fn, "onnx_bytes");
    require(out, fn, "out");
    shoal::CompileOptions options = compile_options(fn, input_shape, ndim, devices, clusters, mode);
    auto* p = new shoal_program{shoal::compile_bytes(onnx_bytes, size, options)};
    *out = p;
  });
}

int shoal_program_load(const char* path, shoal_program** out) {
  return guarded([&] {
    require(path, "shoal_program_load", "path");
    require(out, "shoal_program_load", "out");
    require_readable(path, "program file");
    auto* p = new shoal_program{shoal::Program::load(path)};
    *out = p;
  });
}

int shoal_program_from_bytes(const void* data, size_t size, shoal_program** out) {
  return guarded([&] {
    require(data, "shoal_program_from_bytes", "data");
    require(out, "shoal_program_from_bytes", "out");
    auto* p = new shoal_program{shoal::Program::from_bytes(data, size)};
    *out = p;
  });
}

int shoal_program_save(const shoal_program* program, const char* path) {
  return guarded([&] {
    require(program, "shoal_program_save", "program");
    require(path, "shoal_program_save", "path");
    program->program.save(path);
  });
}

void shoal_program_free(shoal_program* program) { delete program; }

int shoal_program_num_inputs(const shoal_program* program, size_t* count) {
  return guarded([&] {
    require(program, "shoal_program_num_inputs", "program");
    require(count, "shoal_program_num_inputs", "count");
    *count = program->program.inputs().size();
  });
}

int shoal_program_num_outputs(const shoal_program* program, size_t* count) {
  return guarded([&] {
    require(program, "shoal_program_num_outputs", "program");
    require(count, "shoal_program_num_outputs", "count");
    *count = program->program.outputs().size();
  });
}

int shoal_program_input_size(const shoal_program* program, size_t index,
                             int64_t* elements_per_input) {
  return guarded([&] {
    const char* fn = "shoal_program_input_size";
    require(program, fn, "program");
    require(elements_per_input, fn, "elements_per_input");
    const auto infos = program->program.inputs();
    *elements_per_input = info_at(infos, index, fn, "input").numel();
  });
}

int shoal_program_output_size(const shoal_program* program, size_t index,
                              int64_t* elements_per_input) {
  return guarded([&] {
    const char* fn = "shoal_program_output_size";
    require(program, fn, "program");
    require(elements_per_input, fn, "elements_per_input");
    const auto infos = program->program.outputs();
    info_at(infos, index, fn, "output");  // range check
    *elements_per_input = program->program.output_size(index);
  });
}

int shoal_program_input_shape(const shoal_program* program, size_t index, int64_t* dims,
                              size_t capacity, size_t* ndim) {
  return guarded([&] {
    const char* fn = "shoal_program_input_shape";
    require(program, fn, "program");
    const auto infos = program->program.inputs();
    write_shape(info_at(infos, index, fn, "input").shape, dims, capacity, ndim, fn);
  });
}

int shoal_program_output_shape(const shoal_program* program, size_t index, int64_t* dims,
                               size_t capacity, size_t* ndim) {
  return guarded([&] {
    const char* fn = "shoal_program_output_shape";
    require(program, fn, "program");
    const auto infos = program->program.outputs();
    write_shape(info_at(infos, index, fn, "output").shape, dims, capacity, ndim, fn);
  });
}

int shoal_runtime_create(const shoal_program* program, const int* device_ids, size_t n_devices,
                         shoal_runtime** out) {
  return guarded([&] {
    const char* fn = "shoal_runtime_create";
    require(program, fn, "program");
    require(out, fn, "out");
    if (n_devices > 0) require(device_ids, fn, "device_ids");
    if (!program->program) invalid(std::string(fn) + ": program is empty");
    shoal::RuntimeOptions options;
    if (n_devices > 0) options.devices.assign(device_ids, device_ids + n_devices);
    auto* rt = new shoal_runtime(shoal::Runtime(program->program, options));
    *out = rt;
  });
}

void shoal_runtime_free(shoal_runtime* runtime) {
  // A destructor that throws would terminate; Runtime's must not, but guard.
  try {
    delete runtime;
  } catch (...) {
  }
}

int shoal_runtime_run(shoal_runtime* runtime, const float* input, size_t batch, float* output,
                      size_t output_capacity_floats) {
  return guarded([&] {
    const char* fn = "shoal_runtime_run";
    require(runtime, fn, "runtime");
    require(input, fn, "input");
    require(output, fn, "output");
    const shoal::Program& program = runtime->runtime.program();
    const size_t n_in = program.inputs().size();
    const size_t n_out = program.outputs().size();
    if (n_in != 1 || n_out != 1)
      invalid(std::string(fn) + ": the model has " + std::to_string(n_in) + " inputs and " +
              std::to_string(n_out) + " outputs; use shoal_runtime_run_multi");
    const float* inputs[1] = {input};
    float* outputs[1] = {output};
    const size_t capacities[1] = {output_capacity_floats};
    run_batch(runtime, inputs, 1, batch, outputs, capacities, 1, fn);
  });
}

int shoal_runtime_run_multi(shoal_runtime* runtime, const float* const* inputs, size_t n_inputs,
                            size_t batch, float* const* outputs, const size_t* output_capacities,
                            size_t n_outputs) {
  return guarded([&] {
    const char* fn = "shoal_runtime_run_multi";
    require(runtime, fn, "runtime");
    if (n_inputs > 0) require(inputs, fn, "inputs");
    if (n_outputs > 0) {
      require(outputs, fn, "outputs");
      require(output_capacities, fn, "output_capacities");
    }
    run_batch(runtime, inputs, n_inputs, batch, outputs, output_capacities, n_outputs, fn);
  });
}

int shoal_runtime_last_run_ms(const shoal_runtime* runtime, double* ms) {
  return guarded([&] {
    require(runtime, "shoal_runtime_last_run_ms", "runtime");
    require(ms, "shoal_runtime_last_run_ms", "ms");
    *ms = runtime->runtime.last_run_ms();
  });
}

}  // extern "C"
