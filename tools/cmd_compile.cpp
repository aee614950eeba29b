// `shoal compile`: ONNX model -> program file.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"
#include "shoal/shoal.hpp"

namespace shoal::cli {
namespace {

Command spec() {
  return Command("compile",
                 "shoal compile MODEL.onnx [-o OUT.shoal] [--shape SHAPE] "
                 "[--devices N] [--clusters M] [--mode auto|batch|split] [--split] "
                 "[--no-optimize] [--no-winograd] [--strict] [--precision f32|bf16|int8] "
                 "[--calibration SAMPLES.npy] [--method M] [--target KIND] [-v]",
                 "Compiles an ONNX model into a program file and prints its "
                 "inputs, outputs\n(with the output size per input), arena "
                 "and weight sizes.")
      .option("output", 'o', "OUT.shoal", "program file to write (default: MODEL with .shoal)")
      .option("shape", 's', "SHAPE",
              "input shape for one sample: WxHxC (224x224x3) or NCHW "
              "(1,3,224,224); default: the model's own")
      .option("devices", 'd', "N", "devices the program will run on (1)")
      .option("clusters", 'c', "M",
              "clusters per device (0, the default: one per core of each device, decided "
              "at load)")
      .option("mode", 'm', "MODE",
              "how clusters share a batch: batch (an input per cluster), split "
              "(clusters share each input) or auto (per run: batch when the "
              "batch fills the clusters, else split; the default)")
      .flag("split", 0, "the same as --mode split (the SDK's nobatch mode)")
      .flag("no-optimize", 0, "skip fusion passes (folding still runs)")
      .flag("no-winograd", 0,
            "never use Winograd convolution (by default 3x3 stride-1 layers with "
            "14x14+ maps, 32+ input and 64+ output channels use it: faster runs, "
            "larger programs)")
      .flag("strict", 0,
            "fail, listing them, when some layers have no fast kernel on this CPU "
            "(they would run the slow reference kernels)")
      .option("precision", 0, "P",
              "f32 (the default); bf16: Conv/Gemm/MatMul with bf16 weights and inputs, "
              "f32 accumulation (needs AVX512-BF16 or AMX-BF16); int8: quantize first "
              "(`shoal quantize`, on --calibration) and compile the QDQ model")
      .option("calibration", 0, "SAMPLES",
              "int8: sample inputs, an N x C x H x W .npy file or a directory of .npy files")
      .option("method", 0, "M", "int8: calibration method, minmax (default), percentile or entropy")
      .option("target", 0, "KIND",
              "the backend whose devices will run it: cpu (the default) or ref (plain f32 "
              "weights, for ref devices)")
      .flag("verbose", 'v', "print compiler progress to stderr")
      .positionals(1, 1);
}

std::string default_output(const std::string& model) {
  const size_t slash = model.find_last_of('/');
  const size_t dot = model.find_last_of('.');
  if (dot != std::string::npos && (slash == std::string::npos || dot > slash))
    return model.substr(0, dot) + ".shoal";
  return model + ".shoal";
}

void print_tensors(const char* title, const std::vector<TensorInfo>& infos) {
  std::printf("%s:\n", title);
  for (const TensorInfo& t : infos)
    std::printf("  %-20s %-18s %-8s %lld elements per input\n", t.name.c_str(),
                shape_str(t.shape).c_str(), dtype_name(t.dtype), static_cast<long long>(t.numel()));
}

/// A file removed when this goes out of scope (the int8 path's QDQ model).
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) std::remove(path.c_str());
  }
};

}  // namespace

int cmd_compile(const std::vector<std::string>& argv) {
  const Command cmd = spec();
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  const std::string model = args.positional[0];
  const std::string out = args.value("output", default_output(model));
  if (out.empty()) throw UsageError("-o expects a file name");

  CompileOptions options;
  if (args.has("shape")) {
    try {
      options.input_shape = parse_shape(args.value("shape"));
    } catch (const Error& e) {
      throw UsageError(std::string("--shape: ") + e.what());
    }
  }
  options.devices = args.int_value("devices", 1, 1);
  options.clusters = args.int_value("clusters", 0, 0);
  const std::string mode = args.has("mode") ? args.value("mode") : "auto";
  if (!mode_from_name(mode, options.mode))
    throw UsageError("--mode expects auto, batch or split, got '" + mode + "'");
  if (args.has("split")) {
    if (args.has("mode") && mode != "split") throw UsageError("--split contradicts --mode " + mode);
    options.mode = Mode::split;
  }
  options.optimize = !args.has("no-optimize");
  options.winograd = !args.has("no-winograd");
  options.strict = args.has("strict");
  if (args.has("target")) options.target = args.value("target");
  const std::string precision = args.has("precision") ? args.value("precision") : "f32";
  const bool int8 = precision == "int8";
  if (!int8 && !precision_from_name(precision, options.precision))
    throw UsageError("--precision expects f32, bf16 or int8, got '" + precision + "'");
  if (int8 != args.has("calibration"))
    throw UsageError(int8 ? "--precision int8 needs --calibration SAMPLES"
                          : "--calibration is for --precision int8");
  if (args.has("method") && !int8) throw UsageError("--method is for --precision int8");
  if (args.has("verbose"))
    options.log = [](const std::string& line) {
      std::fprintf(stderr, "%s\n", line.c_str());
      std::fflush(stderr);
    };

  const auto t0 = std::chrono::steady_clock::now();
  std::string source = model;
  TempFile qdq;
  if (int8) {  // a QDQ model first (shoal::quantize: Python's quantizer)
    qdq.path = out + ".qdq.tmp.onnx";
    QuantizeOptions q;
    q.calibration = args.value("calibration");
    q.input_shape = options.input_shape;
    if (args.has("method")) q.method = args.value("method");
    quantize(model, qdq.path, q);
    source = qdq.path;
  }
  const Program program = compile(source, options);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  program.save(out);

  std::printf("compiled %s -> %s in %.1f ms\n", model.c_str(), out.c_str(), ms);
  const std::string clusters = program.clusters()
                                   ? std::to_string(program.clusters()) + " cluster(s)"
                                   : std::string("a cluster per core");
  std::printf("  %zu instructions, %d device(s) x %s, %s mode\n", program.num_instructions(),
              program.devices(), clusters.c_str(), mode_name(program.mode()));
  print_tensors("inputs", program.inputs());
  print_tensors("outputs", program.outputs());
  std::printf("arena:   %s per cluster (%llu bytes)\n", human_bytes(program.arena_bytes()).c_str(),
              static_cast<unsigned long long>(program.arena_bytes()));
  std::printf("weights: %s (%llu bytes)\n", human_bytes(program.weight_bytes()).c_str(),
              static_cast<unsigned long long>(program.weight_bytes()));
  return kExitOk;
}

}  // namespace shoal::cli
