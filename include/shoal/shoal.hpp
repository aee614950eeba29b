// shoal: the public C++ API.
//
//   shoal::Program p = shoal::compile("model.onnx", {.input_shape = {1, 3, 224, 224}});
//   p.save("model.shoal");
//   shoal::Runtime rt(shoal::Program::load("model.shoal"));
//   std::vector<shoal::Tensor> y = rt.run({shoal::Tensor::view(x, {8, 3, 224, 224})});
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "shoal/error.hpp"
#include "shoal/types.hpp"
#include "shoal/version.h"  // SHOAL_VERSION_MAJOR/MINOR/PATCH, SHOAL_VERSION

namespace shoal {

namespace program {
struct ProgramData;  // opaque: the in-memory program (src/program/)
struct Access;       // the library's own way in (src/program/access.hpp)
}
namespace runtime {
class Session;
}
class Tensor;

/// The version of the loaded library, e.g. "0.1.0" (SHOAL_VERSION is the headers').
const char* version() noexcept;

/// One layer (instruction) of a program.
struct LayerInfo {
  std::string name, op;
  /// What the compiler asked its kernel to compute in: "f32", "bf16",
  /// "int8" (views and other ops: "f32").
  std::string precision;
  double flops = 0;  ///< per sample
  std::vector<TensorInfo> inputs, outputs;  ///< absent optional inputs: an empty name
};

/// What a program records about itself (Program::info()).
struct ProgramInfo {
  std::string model;     ///< the ONNX graph's name ("" when it had none)
  std::string producer;  ///< who wrote it, e.g. "shoal 0.1.0"
  std::string target;    ///< the backend kind it was compiled for, e.g. "cpu"
  uint32_t format_version = 0;
  std::vector<LayerInfo> layers;  ///< in execution order
};

/// A compiled model: instructions, packed weights and the memory plan. Cheap
/// to copy (shared, immutable).
class Program {
 public:
  Program() = default;

  /// Loads a program file (memory-mapped; weights are used in place).
  static Program load(const std::string& path);
  static Program from_bytes(const void* data, size_t size);

  void save(const std::string& path) const;
  std::vector<uint8_t> to_bytes() const;

  /// Model inputs and outputs, shapes for ONE input sample (batch dim 1).
  std::vector<TensorInfo> inputs() const;
  std::vector<TensorInfo> outputs() const;
  /// Elements of output i for one input sample (the SDK's "output size").
  int64_t output_size(size_t i = 0) const;
  /// Checks a batch of inputs against the model: their count, and each one's
  /// dtype, shape ([N, ...one sample's dims]), data and the common batch N,
  /// which it returns. Throws Error (dtype or invalid_argument) naming the
  /// input. The one check every API runs (Runtime::run and put, and the
  /// Python Dask client before it ships a batch).
  int64_t check_inputs(const std::vector<Tensor>& inputs) const;

  int devices() const;
  int clusters() const;
  Mode mode() const;
  bool split() const;  ///< mode() == Mode::split
  uint64_t arena_bytes() const;
  uint64_t weight_bytes() const;
  size_t num_instructions() const;
  /// Human-readable listing: layers, shapes, arena, weights.
  std::string describe() const;
  /// Model name, producer, target, format version and every layer.
  ProgramInfo info() const;
  /// The layers ("Op 'name'") that devices of backend `kind` would run on
  /// slow reference kernels because none of their fast kernels takes them
  /// on this host (views, which cost nothing, excluded). Builds each kernel
  /// once to find out. Empty for a backend that does not tell fast from slow.
  std::vector<std::string> reference_layers(const std::string& kind = "cpu") const;

  explicit operator bool() const { return bool(data_); }

 private:
  friend struct program::Access;
  explicit Program(std::shared_ptr<const program::ProgramData> data);
  const program::ProgramData& data() const;
  std::shared_ptr<const program::ProgramData> data_;
};

struct CompileOptions {
  /// Input shape for one sample, NCHW (e.g. {1,3,224,224}); empty = the
  /// model's own (which must then be static). See parse_shape().
  Shape input_shape;
  int devices = 1;  ///< devices the program will run on
  /// Clusters per device; 0 (the default) = one per core of each device,
  /// decided when the program is loaded (with auto mode: per-core clusters
  /// for batches, the whole device for a single input).
  int clusters = 0;
  /// How clusters share a batch; automatic: per run, a batch with at least
  /// one input per cluster runs in batch mode, a smaller one in split mode.
  /// Mode::split is the SDK's "nobatch".
  Mode mode = Mode::automatic;
  bool optimize = true;  ///< run fusion passes (folding always runs)
  /// Store conv/matmul weights in the layout the CPU kernels want on the
  /// compiling machine (no repacking at load; another CPU repacks once).
  bool prepack = true;
  /// Use oneDNN's Winograd convolution for the 3x3 stride-1 layers where it
  /// pays (maps of 14x14 or more, 32+ input and 64+ output channels; 24-55%
  /// faster there) and the compiling CPU has it. It sums in another order:
  /// outputs differ from direct convolution by about 1e-6 of their magnitude
  /// per layer. The program stores those weights twice, plain and transformed
  /// (larger programs; no transform at load, except for a stack of samples
  /// whose kernel picks another Winograd variant).
  bool winograd = true;
  /// Fail (Error kind unsupported, listing them) when some layers have no
  /// fast kernel on this CPU and would run the slow reference kernels,
  /// instead of compiling a program that silently runs slowly.
  bool strict = false;
  /// The precision of Conv, Gemm and MatMul (see Precision): bf16 stores
  /// their weights in bfloat16 and runs oneDNN's bf16 kernels (inputs
  /// converted at the op, float32 accumulation and outputs); compiling for it
  /// on a CPU without AVX512-BF16 or AMX-BF16 fails (Error kind unsupported,
  /// naming the missing instruction set), as does loading such a program on
  /// one.
  Precision precision = Precision::f32;
  /// The backend kind whose devices will run the program ("cpu", "ref"; see
  /// devices()). Its compile hook does the target-specific work (for cpu:
  /// precision, Winograd, weight packing); the program records the target,
  /// and a device that cannot run it refuses it at load (Error(device)).
  /// "ref" programs keep plain f32 weights and run on ref devices.
  std::string target = "cpu";
  /// Progress and diagnostics; receives one line at a time.
  std::function<void(const std::string&)> log;
};

/// Parses an input shape: "WxHxC" (the SDK's form, e.g. "224x224x3" ->
/// {1,3,224,224}) or a comma list "1,3,224,224" taken as NCHW. In
/// libshoal_runtime (shoal::runtime).
Shape parse_shape(const std::string& text);

/// Compiles an ONNX model file (or bytes) into a program. Throws Error; an
/// unsupported model gets one message listing every unsupported node. In
/// libshoal_compiler (shoal::compiler).
Program compile(const std::string& onnx_path, const CompileOptions& options = {});
Program compile_bytes(const void* onnx_bytes, size_t size, const CompileOptions& options = {});

/// Post-training int8 quantization (docs/QUANTIZATION.md): what `shoal
/// quantize` and Python's shoal.quantize do.
struct QuantizeOptions {
  /// Sample inputs: an N x C x H x W .npy file or a directory of .npy files.
  std::string calibration;
  Shape input_shape;                 ///< one sample, NCHW; empty = the model's own
  std::string method = "minmax";     ///< "minmax", "percentile" or "entropy"
  std::string activations = "auto";  ///< "auto", "u8" or "s8"
  std::vector<std::string> exclude;  ///< layers to keep in float32
  bool keep_first_last = false;      ///< keep the first and last layers float32
};

/// Calibrates the float32 ONNX model at `model_path` on the samples and writes
/// a standard QDQ model (int8 weights per output channel, 8-bit activations
/// per tensor, int32 biases) to `output_path`; compile() runs it in int8.
/// The quantizer is shoal's Python package (it edits ONNX graphs with
/// python3-onnx), run in a child process, `python3 -m shoal.quantization`:
/// it needs Python 3 with numpy and python3-onnx (SHOAL_PYTHON picks the
/// interpreter; the package is found next to this library, or on
/// PYTHONPATH). Throws Error(invalid_argument) with the quantizer's message
/// for bad calibration data (wrong shape, NaN, empty, constant, unreadable)
/// and Error(unsupported) when Python cannot run it; nothing is written
/// unless it succeeds. In libshoal_compiler.
void quantize(const std::string& model_path, const std::string& output_path,
              const QuantizeOptions& options);

/// A dense float32/other tensor, owning or viewing its data.
class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // owning, zero-filled
  static Tensor view(const float* data, Shape shape);
  static Tensor view(void* data, DType dtype, Shape shape);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t numel() const { return shape_numel(shape_); }
  size_t bytes() const { return size_t(numel()) * dtype_size(dtype_); }
  void* data() const { return data_; }
  float* f32() const { return static_cast<float*>(data_); }

 private:
  DType dtype_ = DType::undefined;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
};

/// Per-layer timings of the last run (when profiling is on).
struct LayerProfile {
  std::string name, op, impl;
  std::string precision;  ///< what the kernel computes in: "f32", "bf16"
  double ms = 0;          ///< summed over the batch and repeats
  double flops = 0;       ///< per run
  int64_t calls = 0;      ///< samples it ran (a stack of n counts n)
};

/// One layer's outputs for one input sample (Runtime::run_layers).
struct LayerOutputs {
  std::string name, op;
  /// Its outputs as the program stores them for one sample (a 4-D
  /// activation the program keeps channels-last holds its values in that
  /// order); an absent optional output is an empty Tensor.
  std::vector<Tensor> outputs;
};

enum class WeightPlacement { automatic, copy, shared };

struct RuntimeOptions {
  /// Device ids to use (see devices(); find_device() turns a name such as
  /// "ref:0" into one); devices of different kinds may be mixed. Naming devices claims them:
  /// another runtime naming one of them gets Error(device) until this one is gone. With
  /// share_devices, named devices are used without claiming or checking. Empty = the program's
  /// device count, from the cpu devices no runtime has claimed (shared with other runtimes that
  /// named none; ref devices run only where named).
  std::vector<int> devices;
  bool share_devices = false;
  bool profile = false;
  /// At most this many samples of a batch go through each kernel at once on
  /// a cluster (stacked along the batch dim; weights are reused across them
  /// and the kernels see larger matrices). Used when every operator of the
  /// program computes samples independently (Runtime::plan() says); 1 runs
  /// one sample at a time. The arena grows to hold the largest stack used.
  int micro_batch = 8;
  /// Where each device's weights live. copy: every device gets its own copy,
  /// first touched by its own thread (NUMA-local). shared: the devices read
  /// the program's weights in place (from the mapped program file's pages,
  /// or the loaded bytes): no copy, no extra memory. automatic: shared on a
  /// host with one NUMA node (all its memory is equally near every core, so
  /// copies only cost load time and memory), copy on a host with several.
  /// SHOAL_WEIGHTS=copy|shared overrides automatic.
  WeightPlacement weights = WeightPlacement::automatic;
  /// Reject float inputs holding NaN or Inf (Error(invalid_argument) naming
  /// the input, the sample and the element) instead of running them. Off,
  /// they run and NaN propagates as ONNX's semantics say.
  bool check_inputs = false;
};

/// One device of this host (devices()), of a registered backend.
struct DeviceInfo {
  int id = 0;              ///< its index in devices(): what RuntimeOptions::devices lists
  std::string kind;        ///< its backend: "cpu" (host cores), "ref" (reference kernels)
  int index = 0;           ///< among the devices of its kind
  std::string name;        ///< "kind:index", e.g. "cpu:0", "ref:0" (see find_device())
  /// The host cores its work is pinned to: a cpu device's compute units;
  /// empty for a device that pins none (ref; an accelerator).
  std::vector<int> cores;
  int compute_units = 1;  ///< what clusters are made of (one per unit by default)
  /// What a compute unit is: "core" (cpu), "thread" (ref); an accelerator
  /// would say e.g. "SM".
  std::string compute_unit = "core";
  int clusters = 1;        ///< default clusters (one per compute unit)
  uint64_t memory_bytes = 0;
  /// Whether the host reads the device's memory directly (cpu: yes; ref:
  /// no, every byte goes through the device's copies, as on a GPU).
  bool host_addressable = true;
  /// Whether runtimes that name no device may pick it (cpu: yes; ref: no,
  /// it runs only where named).
  bool automatic = true;
  std::string describe() const;
};

/// The id of the device `name` names: "kind:index" ("cpu:0", "ref:0") or a
/// plain id ("1"). Throws Error(invalid_argument) listing this host's devices.
int find_device(const std::string& name);

/// One operator of the operator table (the single source of truth for what
/// shoal supports; docs/OPERATORS.md is generated from it).
struct OperatorInfo {
  std::string name;
  int min_opset = 1;
  int min_inputs = 1, max_inputs = 1;
  bool runtime = true;        ///< false: folded at compile time only (e.g. Shape)
  std::vector<DType> dtypes;  ///< dtypes its run-time kernels take
  std::string summary;
  bool view = false;        ///< output 0 is input 0's bytes (costs nothing)
  bool per_sample = false;  ///< may run over a stack of samples (with its per-op rule)
  bool channels_last = false;  ///< fast kernels take 4-D activations channels-last
};
std::vector<OperatorInfo> operators();
/// The operator table as the Markdown of docs/OPERATORS.md.
std::string operators_markdown();

/// Devices on this host, of every backend: cpu devices first (they follow
/// SHOAL_CPU_DEVICES), then ref devices (SHOAL_REF_DEVICES, default 1).
std::vector<DeviceInfo> devices();

/// A program loaded onto devices: weights broadcast into each device's memory,
/// an arena per cluster. run() is thread-safe.
class Runtime {
 public:
  explicit Runtime(const Program& program, const RuntimeOptions& options = {});
  ~Runtime();
  Runtime(Runtime&&) noexcept;
  Runtime& operator=(Runtime&&) noexcept;

  /// Runs a batch: each input has a leading batch dim N (N >= 1, same for all
  /// inputs); the batch is split across devices x clusters. Outputs come back
  /// in input order, each with leading dim N.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);

  /// Asynchronous pipeline. put() copies the inputs, starts them on the
  /// clusters and returns; results come back from get() in put order, each
  /// with the tag of its inputs. At most `queue_capacity()` puts are
  /// outstanding (running or finished but not yet taken): a put beyond that
  /// waits up to `timeout_ms` (< 0: no limit) for a get() on another thread
  /// and returns false if none came. get() waits up to `timeout_ms` for the
  /// oldest put to finish (0: just look) and returns false if it has not;
  /// when nothing is pending it waits, within the same limit, for another
  /// thread's put, and without a limit (< 0) throws at once instead, so a
  /// lone thread cannot hang itself. All of it is thread-safe, alongside
  /// run(). close() makes every waiting and later put()/get() throw.
  bool put(const std::vector<Tensor>& inputs, uint64_t tag, double timeout_ms = -1);
  bool get(std::vector<Tensor>& outputs, uint64_t& tag, double timeout_ms = -1);
  size_t queue_capacity() const;
  void set_queue_capacity(size_t capacity);  ///< >= 1; default 2 x clusters
  size_t pending() const;                    ///< puts not yet taken by get()
  void close();                              ///< wakes threads waiting in put()/get() with an error

  const Program& program() const;
  /// What runs where: devices, clusters, mode (batch or split).
  std::string plan() const;
  /// Clusters per device taking whole inputs (the program's count, or with
  /// clusters = 0 one per core; the first device's; 1 in split mode).
  int clusters() const;
  double last_run_ms() const;
  std::vector<LayerProfile> profile() const;
  void reset_profile();
  /// Runs the first sample of `inputs` on the first device's first cluster
  /// and returns every layer's outputs, in program order: for debugging
  /// numerics, e.g. comparing two devices layer by layer (`shoal
  /// debug-compare`, shoal.debug_compare).
  std::vector<LayerOutputs> run_layers(const std::vector<Tensor>& inputs);

 private:
  std::unique_ptr<runtime::Session> impl_;
};

}  // namespace shoal
