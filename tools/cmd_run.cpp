// `shoal run`: runs a program on .npy inputs; prints a summary or JSON, writes
// outputs as .npy, and optionally a per-layer profile.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "npy.hpp"
#include "shoal/shoal.hpp"

namespace shoal::cli {
namespace {

Command spec() {
  return Command("run",
                 "shoal run PROGRAM.shoal INPUT.npy [INPUT2.npy ...] "
                 "[-o OUT.npy | --output-dir DIR] [--json] [--profile] "
                 "[--repeat K] [--devices cpu:0,ref:0]",
                 "Runs a program on one .npy file per model input. An input "
                 "array is a batch,\nN x (the input's shape without its batch "
                 "dim), or one sample with the model's\nexact shape. Prints "
                 "each output's shape and, for 2-D outputs, the top-5\nclasses "
                 "of each sample.")
      .option("output", 'o', "OUT.npy", "write output 0 to OUT.npy, output i to OUT_i.npy")
      .option("output-dir", 0, "DIR", "write each output to DIR/NAME.npy")
      .flag("json", 0,
            "print {\"outputs\": [{\"name\", \"shape\", \"dtype\", \"data\"}], "
            "\"ms\": ...} (data flat, C order)")
      .flag("profile", 'p', "print per-layer timings, slowest first")
      .option("repeat", 'r', "K", "run K times, report mean and min (1)")
      .option("devices", 'd', "DEVICES",
              "devices to run on, by name or id, any kinds mixed: cpu:0,ref:0 or 0,1")
      .option("scheduler", 0, "ADDR",
              "run on the Dask cluster at ADDR instead (tcp://HOST:8786; "
              "forwards to python3 -m shoal.dask run, see its --help)")
      .positionals(2, std::numeric_limits<size_t>::max());
}

// Element i of a tensor of any numeric type, as a double.
double value_at(const Tensor& t, size_t i) {
  const void* p = t.data();
  switch (t.dtype()) {
    case DType::f32:
      return static_cast<const float*>(p)[i];
    case DType::f64:
      return static_cast<const double*>(p)[i];
    case DType::i64:
      return double(static_cast<const int64_t*>(p)[i]);
    case DType::i32:
      return static_cast<const int32_t*>(p)[i];
    case DType::i8:
      return static_cast<const int8_t*>(p)[i];
    case DType::u8:
    case DType::boolean:
      return static_cast<const uint8_t*>(p)[i];
    case DType::undefined:
      break;
  }
  return 0;
}

// A batch view of `a` for model input `info`, or an Error saying why not.
Tensor input_view(const npy::Array& a, const TensorInfo& info, size_t index,
                  const std::string& file) {
  if (info.dtype != DType::f32)
    throw Error(ErrorKind::unsupported, "input " + std::to_string(index) +
                                            " ('" + info.name + "') has type " +
                                            dtype_name(info.dtype) +
                                            "; shoal run feeds float32 only");
  const Shape& want = info.shape;
  const Shape sample(want.empty() ? want.begin() : want.begin() + 1,
                     want.end());
  Shape shape;
  if (a.shape.size() == want.size() && !a.shape.empty() && a.shape[0] >= 1 &&
      std::equal(a.shape.begin() + 1, a.shape.end(), sample.begin())) {
    shape = a.shape;  // N x sample (includes the exact shape)
  } else if (a.shape == sample && !want.empty()) {
    shape = want;  // one sample without its batch dim
  } else {
    Shape batch = want;
    if (!batch.empty()) batch[0] = -1;
    std::string expected = shape_str(batch);
    const size_t n = expected.find("-1");
    if (n != std::string::npos) expected.replace(n, 2, "N");
    throw Error(ErrorKind::invalid_argument,
                file + " has shape " + shape_str(a.shape) + "; input " +
                    std::to_string(index) + " ('" + info.name + "') expects " +
                    expected + " or " + shape_str(want));
  }
  return Tensor::view(a.data.data(), shape);
}

std::string numbered_path(const std::string& base, size_t i) {
  if (i == 0) return base;
  const std::string suffix = "_" + std::to_string(i);
  if (base.size() > 4 && base.compare(base.size() - 4, 4, ".npy") == 0)
    return base.substr(0, base.size() - 4) + suffix + ".npy";
  return base + suffix;
}

std::string safe_name(const std::string& name, size_t i) {
  std::string s;
  for (char c : name)
    s += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
          c == '.')
             ? c
             : '_';
  if (s.empty() || s[0] == '.') s = "output_" + std::to_string(i) + s;
  return s;
}

std::vector<std::string> output_paths(const Args& args,
                                      const std::vector<TensorInfo>& outs) {
  std::vector<std::string> paths;
  if (args.has("output")) {
    for (size_t i = 0; i < outs.size(); ++i)
      paths.push_back(numbered_path(args.value("output"), i));
  } else if (args.has("output-dir")) {
    const std::filesystem::path dir = args.value("output-dir");
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec)
      throw Error(
          ErrorKind::invalid_argument,
          "cannot create directory '" + dir.string() + "': " + ec.message());
    std::set<std::string> used;
    for (size_t i = 0; i < outs.size(); ++i) {
      std::string n = safe_name(outs[i].name, i);
      if (!used.insert(n).second) n += "_" + std::to_string(i);
      used.insert(n);
      paths.push_back((dir / (n + ".npy")).string());
    }
  }
  return paths;
}

void print_top5(const Tensor& t) {
  const int64_t rows = t.shape()[0], cols = t.shape()[1];
  const int64_t shown = std::min<int64_t>(rows, 16);
  std::vector<int64_t> idx(static_cast<size_t>(cols));
  for (int64_t r = 0; r < shown; ++r) {
    std::iota(idx.begin(), idx.end(), 0);
    const size_t k = size_t(std::min<int64_t>(5, cols));
    auto at = [&](int64_t c) { return value_at(t, size_t(r * cols + c)); };
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int64_t a, int64_t b) { return at(a) > at(b); });
    std::printf("  sample %lld: top-%zu", static_cast<long long>(r), k);
    for (size_t j = 0; j < k; ++j)
      std::printf("  %lld (%.4g)", static_cast<long long>(idx[j]), at(idx[j]));
    std::printf("\n");
  }
  if (rows > shown)
    std::printf("  ... %lld more samples\n",
                static_cast<long long>(rows - shown));
}

void print_stats(const Tensor& t) {
  const size_t n = size_t(t.numel());
  if (n == 0) return;
  double lo = value_at(t, 0), hi = lo, sum = 0;
  for (size_t i = 0; i < n; ++i) {
    const double v = value_at(t, i);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    sum += v;
  }
  std::printf("  min %.6g  max %.6g  mean %.6g\n", lo, hi, sum / double(n));
}

std::vector<LayerProfile> sorted_profile(const Runtime& rt) {
  std::vector<LayerProfile> p = rt.profile();
  std::stable_sort(
      p.begin(), p.end(),
      [](const LayerProfile& a, const LayerProfile& b) { return a.ms > b.ms; });
  return p;
}

// flops is per call (one kernel execution); ms sums all calls.
double gflops(const LayerProfile& l) {
  return l.ms > 0 ? l.flops * double(l.calls) / (l.ms * 1e6) : 0.0;
}

void print_profile(const std::vector<LayerProfile>& prof) {
  double total = 0;
  size_t w_name = 5, w_op = 2, w_impl = 4;
  for (const LayerProfile& l : prof) {
    total += l.ms;
    w_name = std::min<size_t>(std::max(w_name, l.name.size()), 40);
    w_op = std::max(w_op, l.op.size());
    w_impl = std::min<size_t>(std::max(w_impl, l.impl.size()), 32);
  }
  const int wn = int(w_name), wo = int(w_op), wi = int(w_impl);
  std::printf("\nprofile (%zu layers, %.3f ms total):\n", prof.size(), total);
  std::printf("%-*s  %-*s  %-*s  %-4s  %7s  %10s  %9s  %6s\n", wn, "layer", wo, "op",
              wi, "impl", "prec", "calls", "ms", "GFLOP/s", "%");
  for (const LayerProfile& l : prof)
    std::printf("%-*.*s  %-*s  %-*.*s  %-4s  %7lld  %10.3f  %9.2f  %5.1f%%\n", wn, wn,
                l.name.c_str(), wo, l.op.c_str(), wi, wi, l.impl.c_str(), l.precision.c_str(),
                static_cast<long long>(l.calls), l.ms, gflops(l),
                total > 0 ? 100.0 * l.ms / total : 0.0);
}

std::string profile_json(const std::vector<LayerProfile>& prof) {
  std::string s = "[";
  for (size_t i = 0; i < prof.size(); ++i) {
    const LayerProfile& l = prof[i];
    if (i) s += ", ";
    s += "{\"layer\": " + json_string(l.name) +
         ", \"op\": " + json_string(l.op) +
         ", \"impl\": " + json_string(l.impl) +
         ", \"precision\": " + json_string(l.precision) +
         ", \"calls\": " + std::to_string(l.calls) +
         ", \"ms\": " + json_number(l.ms) +
         ", \"gflops\": " + json_number(gflops(l)) + "}";
  }
  return s + "]";
}

}  // namespace

int cmd_run(const std::vector<std::string>& argv) {
  // On a Dask cluster: python3 -m shoal.dask run (see cmd_worker.cpp).
  for (const std::string& a : argv)
    if (a == "--scheduler" || a.rfind("--scheduler=", 0) == 0)
      return forward_to_dask("run", argv);
  const Command cmd = spec();
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  if (args.has("output") && args.has("output-dir"))
    throw UsageError("give either -o or --output-dir, not both");
  const int repeat = args.int_value("repeat", 1, 1);
  RuntimeOptions ropts;
  for (const std::string& d : args.values("devices")) {
    // Names ("cpu:0", "ref:0") or ids, mixed.
    std::stringstream items(d);
    for (std::string item; std::getline(items, item, ',');) {
      if (item.find(':') != std::string::npos) {
        ropts.devices.push_back(find_device(item));
      } else {
        const std::vector<int> ids = parse_int_list(item, "--devices");
        ropts.devices.insert(ropts.devices.end(), ids.begin(), ids.end());
      }
    }
  }
  ropts.profile = args.has("profile");
  const bool json = args.has("json");

  const Program program = Program::load(args.positional[0]);
  const std::vector<TensorInfo> in_infos = program.inputs();
  const std::vector<TensorInfo> out_infos = program.outputs();
  const std::vector<std::string> files(args.positional.begin() + 1,
                                       args.positional.end());
  if (files.size() != in_infos.size())
    throw Error(ErrorKind::invalid_argument,
                "the program has " + std::to_string(in_infos.size()) +
                    " input(s), got " + std::to_string(files.size()) +
                    " .npy file(s)");

  std::vector<npy::Array> arrays;
  std::vector<Tensor> inputs;
  arrays.reserve(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    arrays.push_back(npy::load(files[i]));
    inputs.push_back(input_view(arrays[i], in_infos[i], i, files[i]));
    if (inputs[i].shape()[0] != inputs[0].shape()[0])
      throw Error(ErrorKind::invalid_argument,
                  "inputs have different batch sizes: " +
                      std::to_string(inputs[0].shape()[0]) + " (" + files[0] +
                      ") and " + std::to_string(inputs[i].shape()[0]) + " (" +
                      files[i] + ")");
  }
  const std::vector<std::string> paths = output_paths(args, out_infos);

  Runtime rt(program, ropts);
  std::vector<Tensor> outputs;
  double sum_ms = 0, min_ms = std::numeric_limits<double>::infinity();
  for (int k = 0; k < repeat; ++k) {
    const auto t0 = std::chrono::steady_clock::now();
    outputs = rt.run(inputs);
    const double ms = std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
    sum_ms += ms;
    min_ms = std::min(min_ms, ms);
  }
  const double mean_ms = sum_ms / repeat;
  const int64_t batch = inputs.empty() ? 0 : inputs[0].shape()[0];

  for (size_t i = 0; i < paths.size() && i < outputs.size(); ++i)
    npy::save(paths[i], outputs[i].data(), outputs[i].dtype(),
              outputs[i].shape());

  if (json) {
    std::string s = "{\"outputs\": [";
    for (size_t i = 0; i < outputs.size(); ++i) {
      const Tensor& t = outputs[i];
      if (i) s += ", ";
      s += "{\"name\": " +
           json_string(i < out_infos.size() ? out_infos[i].name : "") +
           ", \"shape\": " + json_shape(t.shape()) +
           ", \"dtype\": " + json_string(dtype_name(t.dtype())) +
           ", \"data\": [";
      for (int64_t j = 0; j < t.numel(); ++j) {
        if (j) s += ", ";
        s += json_number(value_at(t, size_t(j)));
      }
      s += "]}";
    }
    s += "], \"batch\": " + std::to_string(batch) +
         ", \"repeat\": " + std::to_string(repeat) +
         ", \"ms\": " + json_number(mean_ms) +
         ", \"min_ms\": " + json_number(min_ms);
    if (ropts.profile)
      s += ", \"profile\": " + profile_json(sorted_profile(rt));
    s += "}\n";
    std::fputs(s.c_str(), stdout);
    return kExitOk;
  }

  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& t = outputs[i];
    std::printf("output %zu '%s': %s %s\n", i,
                i < out_infos.size() ? out_infos[i].name.c_str() : "",
                shape_str(t.shape()).c_str(), dtype_name(t.dtype()));
    if (t.shape().size() == 2 && t.shape()[1] > 0)
      print_top5(t);
    else
      print_stats(t);
    if (i < paths.size()) std::printf("  written to %s\n", paths[i].c_str());
  }
  if (repeat > 1)
    std::printf("batch %lld: %.3f ms mean, %.3f ms min over %d runs\n",
                static_cast<long long>(batch), mean_ms, min_ms, repeat);
  else
    std::printf("batch %lld: %.3f ms\n", static_cast<long long>(batch),
                mean_ms);
  if (ropts.profile) print_profile(sorted_profile(rt));
  return kExitOk;
}

}  // namespace shoal::cli
