// `shoal bench`: times a program on a random batch. Measures load + init
// (file -> Runtime ready), time to the first result, then K timed runs;
// prints a summary or JSON, optionally a per-layer profile. bench/run_bench.py
// drives it side by side with onnxruntime (bench/ort_bench.js).
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cli.hpp"
#include "shoal/shoal.hpp"

namespace shoal::cli {
namespace {

using Clock = std::chrono::steady_clock;

Command spec() {
  return Command("bench",
                 "shoal bench PROGRAM.shoal|MODEL.onnx [--shape SHAPE] "
                 "[--batch N] [--threads T] [--warmup W] [--iters K] [--json] "
                 "[--max-time S] [--profile] [--peak-gflops G]",
                 "Times a program on a random float32 batch: load + init (file "
                 "-> runtime ready),\nfirst result, then K timed runs. An .onnx "
                 "model is compiled first (compile time\nis reported apart and "
                 "not counted in the load time).")
      .option("shape", 's', "SHAPE", ".onnx only: input shape for one sample, WxHxC or NCHW")
      .option("batch", 'b', "N", "samples per run (1)")
      .option("threads", 't', "T",
              "run on a device of the first T cores this process may use "
              "(default: the devices SHOAL_CPU_DEVICES or the host gives)")
      .option("warmup", 'w', "W", "untimed runs after the first result (2)")
      .option("iters", 'k', "K", "timed runs (10)")
      .option("max-time", 0, "S",
              "stop the warmup and timed runs early once S seconds have "
              "passed since the first run began (at least one timed run)")
      .flag("json", 0, "print one JSON object")
      .flag("profile", 'p',
            "profile the timed runs and print per-layer timings (profiling "
            "adds a little overhead to every layer)")
      .option("peak-gflops", 0, "G",
              "one core's fp32 peak (see bench/fma_peak); adds % of peak, "
              "taken against G x threads")
      .positionals(1, 1);
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// Peak RSS of this process: VmHWM from /proc/self/status. (getrusage's
// ru_maxrss survives exec, so a child forked from a big parent reports the
// parent's peak; it is only the fallback.)
double peak_rss_mib() {
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    long kib = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    std::fclose(f);
    if (kib >= 0) return double(kib) / 1024.0;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

double double_value(const Args& args, const std::string& name) {
  const std::string text = args.value(name);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v) || v <= 0)
    throw UsageError("--" + name + " expects a positive number, got '" + text + "'");
  return v;
}

std::vector<int> allowed_cores() {
  cpu_set_t set;
  std::vector<int> cores;
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cores.push_back(c);
  if (cores.empty()) {
    const long n = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    for (int c = 0; c < n; ++c) cores.push_back(c);
  }
  return cores;
}

// SHOAL_CPU_DEVICES for `threads` cores shared by `devices` devices: the
// first `threads` allowed cores, split into equal ranges ("0-3,4-7").
std::string device_spec(int threads, int devices) {
  const std::vector<int> cores = allowed_cores();
  if (threads > int(cores.size()))
    throw UsageError("--threads " + std::to_string(threads) + ": this process may use " +
                     std::to_string(cores.size()) + " cores");
  if (threads < devices)
    throw UsageError("--threads " + std::to_string(threads) + ": the program runs on " +
                     std::to_string(devices) + " devices, which need at least one core each");
  // Each device is one "a-b" range (a plain "3" would read as a device
  // count), so its cores must be consecutive.
  std::string spec;
  for (int d = 0; d < devices; ++d) {
    const int lo = d * threads / devices, hi = (d + 1) * threads / devices;
    const int first = cores[size_t(lo)], last = cores[size_t(hi - 1)];
    if (last - first != hi - 1 - lo)
      throw Error(ErrorKind::invalid_argument,
                  "--threads " + std::to_string(threads) + ": cores " +
                      int_ranges(std::vector<int>(cores.begin() + lo, cores.begin() + hi)) +
                      " are not consecutive; set SHOAL_CPU_DEVICES instead");
    if (d) spec += ',';
    spec += std::to_string(first) + "-" + std::to_string(last);
  }
  return spec;
}

// Random float32 inputs for a batch of n; `storage` owns the data.
std::vector<Tensor> random_inputs(const Program& p, int64_t n,
                                  std::vector<std::vector<float>>& storage) {
  std::mt19937 rng(12345);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<Tensor> inputs;
  const std::vector<TensorInfo> infos = p.inputs();
  storage.resize(infos.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    const TensorInfo& info = infos[i];
    if (info.dtype != DType::f32)
      throw Error(ErrorKind::unsupported, "input " + std::to_string(i) + " ('" + info.name +
                                              "') has type " + dtype_name(info.dtype) +
                                              "; shoal bench feeds float32 only");
    Shape shape = info.shape;
    if (!shape.empty() && shape[0] == 1)
      shape[0] = n;
    else
      shape.insert(shape.begin(), n);
    storage[i].resize(size_t(shape_numel(shape)));
    for (float& v : storage[i]) v = dist(rng);
    inputs.push_back(Tensor::view(storage[i].data(), shape));
  }
  return inputs;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

struct Result {
  std::string path, model;
  int64_t batch = 1;
  int threads = 0;  // cores of the devices used
  std::string cores;
  int devices = 1, clusters = 1;
  double compile_ms = -1;  // -1: given a program file
  double load_ms = 0, first_run_ms = 0, first_result_ms = 0;
  std::vector<double> iter_ms;
  double median_ms = 0, mean_ms = 0, min_ms = 0;
  double gflop_per_sample = 0;
  double rss_start_mib = 0, rss_peak_mib = 0;
  double peak_gflops_core = 0;  // 0: not given
  std::vector<LayerProfile> profile;

  double images_per_s() const { return median_ms > 0 ? batch * 1e3 / median_ms : 0; }
  double gflops() const {
    return median_ms > 0 ? gflop_per_sample * double(batch) * 1e3 / median_ms : 0;
  }
  // % of the peak of the cores used; -1 when no peak was given.
  double pct_peak(double gflops) const {
    return peak_gflops_core > 0 && threads > 0 ? 100.0 * gflops / (peak_gflops_core * threads) : -1;
  }
};

// Per-iteration milliseconds and GFLOP/s of one profiled layer.
double layer_ms(const LayerProfile& l, size_t iters) { return iters ? l.ms / double(iters) : 0; }
double layer_gflops(const LayerProfile& l) {
  return l.ms > 0 ? l.flops * double(l.calls) / (l.ms * 1e6) : 0;
}

std::string result_json(const Result& r) {
  std::string s =
      "{\"engine\": \"shoal\", \"version\": " + json_string(shoal::version()) +
      ", \"file\": " + json_string(r.path) + ", \"model\": " + json_string(r.model) +
      ", \"batch\": " + std::to_string(r.batch) + ", \"threads\": " + std::to_string(r.threads) +
      ", \"cores\": " + json_string(r.cores) + ", \"devices\": " + std::to_string(r.devices) +
      ", \"clusters\": " + std::to_string(r.clusters) +
      ", \"compile_ms\": " + (r.compile_ms < 0 ? "null" : json_number(r.compile_ms)) +
      ", \"load_ms\": " + json_number(r.load_ms) +
      ", \"first_run_ms\": " + json_number(r.first_run_ms) +
      ", \"first_result_ms\": " + json_number(r.first_result_ms) + ", \"iters_ms\": [";
  for (size_t i = 0; i < r.iter_ms.size(); ++i) s += (i ? ", " : "") + json_number(r.iter_ms[i]);
  s += "], \"median_ms\": " + json_number(r.median_ms) +
       ", \"mean_ms\": " + json_number(r.mean_ms) + ", \"min_ms\": " + json_number(r.min_ms) +
       ", \"images_per_s\": " + json_number(r.images_per_s()) +
       ", \"gflop_per_sample\": " + json_number(r.gflop_per_sample) +
       ", \"gflops\": " + json_number(r.gflops()) + ", \"peak_gflops_core\": " +
       (r.peak_gflops_core > 0 ? json_number(r.peak_gflops_core) : "null") + ", \"pct_peak\": " +
       (r.peak_gflops_core > 0 ? json_number(r.pct_peak(r.gflops())) : "null") +
       ", \"rss_start_mib\": " + json_number(r.rss_start_mib) +
       ", \"peak_rss_mib\": " + json_number(r.rss_peak_mib);
  if (!r.profile.empty()) {
    s += ", \"profile\": [";
    for (size_t i = 0; i < r.profile.size(); ++i) {
      const LayerProfile& l = r.profile[i];
      const double g = layer_gflops(l);
      s += std::string(i ? ", " : "") + "{\"layer\": " + json_string(l.name) +
           ", \"op\": " + json_string(l.op) + ", \"impl\": " + json_string(l.impl) +
           ", \"precision\": " + json_string(l.precision) +
           ", \"ms\": " + json_number(layer_ms(l, r.iter_ms.size())) +
           ", \"gflops\": " + json_number(g) +
           ", \"pct_peak\": " + (r.peak_gflops_core > 0 ? json_number(r.pct_peak(g)) : "null") +
           "}";
    }
    s += "]";
  }
  return s + "}\n";
}

void print_profile(const Result& r) {
  double total = 0;
  size_t w_name = 5, w_op = 2, w_impl = 4;
  for (const LayerProfile& l : r.profile) {
    total += l.ms;
    w_name = std::min<size_t>(std::max(w_name, l.name.size()), 40);
    w_op = std::max(w_op, l.op.size());
    w_impl = std::min<size_t>(std::max(w_impl, l.impl.size()), 32);
  }
  const int wn = int(w_name), wo = int(w_op), wi = int(w_impl);
  const size_t iters = r.iter_ms.size();
  const bool peak = r.peak_gflops_core > 0;
  std::printf("\nprofile, per run of %lld (%zu layers, %.3f ms):\n",
              static_cast<long long>(r.batch), r.profile.size(),
              iters ? total / double(iters) : 0.0);
  std::printf("%-*s  %-*s  %-*s  %-4s  %9s  %9s  %6s%s\n", wn, "layer", wo, "op", wi, "impl",
              "prec", "ms", "GFLOP/s", "time", peak ? "  % peak" : "");
  for (const LayerProfile& l : r.profile) {
    const double g = layer_gflops(l);
    std::printf("%-*.*s  %-*s  %-*.*s  %-4s  %9.3f  %9.2f  %5.1f%%", wn, wn, l.name.c_str(), wo,
                l.op.c_str(), wi, wi, l.impl.c_str(), l.precision.c_str(), layer_ms(l, iters), g,
                total > 0 ? 100.0 * l.ms / total : 0.0);
    if (peak) std::printf("  %6.1f%%", r.pct_peak(g));
    std::printf("\n");
  }
}

void print_result(const Result& r) {
  std::printf(
      "%s: batch %lld, %d thread%s (cores %s), %d device%s x %d "
      "cluster%s\n",
      r.path.c_str(), static_cast<long long>(r.batch), r.threads, r.threads == 1 ? "" : "s",
      r.cores.c_str(), r.devices, r.devices == 1 ? "" : "s", r.clusters,
      r.clusters == 1 ? "" : "s");
  if (r.compile_ms >= 0) std::printf("  compile       %10.1f ms\n", r.compile_ms);
  std::printf("  load + init   %10.1f ms\n", r.load_ms);
  std::printf("  first result  %10.1f ms (first run %.1f ms)\n", r.first_result_ms, r.first_run_ms);
  std::printf("  median        %10.3f ms over %zu runs (mean %.3f, min %.3f)\n", r.median_ms,
              r.iter_ms.size(), r.mean_ms, r.min_ms);
  std::printf("  throughput    %10.1f images/s\n", r.images_per_s());
  std::printf("  compute       %10.2f GFLOP/s (%.3f GFLOP per sample)", r.gflops(),
              r.gflop_per_sample);
  if (r.peak_gflops_core > 0)
    std::printf(", %.1f%% of %.1f GFLOP/s peak", r.pct_peak(r.gflops()),
                r.peak_gflops_core * r.threads);
  std::printf("\n  peak RSS      %10.1f MiB (%.1f MiB at start)\n", r.rss_peak_mib,
              r.rss_start_mib);
  std::printf("  runs (ms):");
  for (double ms : r.iter_ms) std::printf(" %.2f", ms);
  std::printf("\n");
  if (!r.profile.empty()) print_profile(r);
}

}  // namespace

int cmd_bench(const std::vector<std::string>& argv) {
  const Command cmd = spec();
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  Result r;
  r.rss_start_mib = peak_rss_mib();
  r.path = args.positional[0];
  r.batch = args.int_value("batch", 1, 1);
  const int warmup = args.int_value("warmup", 2, 0);
  const int iters = args.int_value("iters", 10, 1);
  const bool json = args.has("json");
  if (args.has("peak-gflops")) r.peak_gflops_core = double_value(args, "peak-gflops");
  const double max_ms = args.has("max-time") ? 1e3 * double_value(args, "max-time")
                                             : std::numeric_limits<double>::infinity();
  const bool onnx = ends_with(r.path, ".onnx");
  if (args.has("shape") && !onnx)
    throw UsageError(
        "--shape applies to .onnx models; a program's shape is "
        "fixed when it is compiled");

  // File -> Program. A .onnx model is compiled first, timed apart.
  Program program;
  Clock::time_point t_load;
  if (onnx) {
    CompileOptions copts;
    if (args.has("shape")) {
      try {
        copts.input_shape = parse_shape(args.value("shape"));
      } catch (const Error& e) {
        throw UsageError(std::string("--shape: ") + e.what());
      }
    }
    const auto t0 = Clock::now();
    program = compile(r.path, copts);
    r.compile_ms = ms_since(t0);
    t_load = Clock::now();
  } else {
    t_load = Clock::now();
    program = Program::load(r.path);
  }

  // The device layout: T threads = the first T cores, as one device (or as
  // many as the program was compiled for).
  r.devices = program.devices();
  r.clusters = program.clusters();
  if (args.has("threads")) {
    const std::string spec = device_spec(args.int_value("threads", 1, 1), r.devices);
    setenv("SHOAL_CPU_DEVICES", spec.c_str(), 1);
  }
  const std::vector<DeviceInfo> host = devices();
  std::vector<int> used;
  for (int d = 0; d < r.devices && d < int(host.size()); ++d)
    used.insert(used.end(), host[size_t(d)].cores.begin(), host[size_t(d)].cores.end());
  r.threads = int(used.size());
  r.cores = int_ranges(used);

  RuntimeOptions ropts;
  ropts.profile = args.has("profile");
  Runtime rt(program, ropts);
  r.load_ms = ms_since(t_load);
  r.clusters = rt.clusters();  // clusters=0 programs: one per core
  const ProgramInfo info = program.info();
  r.model = info.model;
  for (const LayerInfo& l : info.layers) r.gflop_per_sample += l.flops / 1e9;

  std::vector<std::vector<float>> storage;
  const std::vector<Tensor> inputs = random_inputs(program, r.batch, storage);
  // --max-time counts from the first run: a first run longer than the
  // budget leaves no warmup and one timed run.
  const auto t_first = Clock::now();
  rt.run(inputs);
  r.first_run_ms = ms_since(t_first);
  r.first_result_ms = ms_since(t_load);
  for (int i = 0; i < warmup && ms_since(t_first) < max_ms; ++i) rt.run(inputs);
  if (ropts.profile) rt.reset_profile();
  for (int i = 0; i < iters; ++i) {
    if (i > 0 && ms_since(t_first) >= max_ms) break;
    const auto t0 = Clock::now();
    rt.run(inputs);
    r.iter_ms.push_back(ms_since(t0));
  }
  r.median_ms = median(r.iter_ms);
  r.min_ms = *std::min_element(r.iter_ms.begin(), r.iter_ms.end());
  double sum = 0;
  for (double ms : r.iter_ms) sum += ms;
  r.mean_ms = sum / double(r.iter_ms.size());
  if (ropts.profile) {
    r.profile = rt.profile();
    std::stable_sort(r.profile.begin(), r.profile.end(),
                     [](const LayerProfile& a, const LayerProfile& b) { return a.ms > b.ms; });
  }
  r.rss_peak_mib = peak_rss_mib();

  if (json)
    std::fputs(result_json(r).c_str(), stdout);
  else
    print_result(r);
  return kExitOk;
}

}  // namespace shoal::cli
