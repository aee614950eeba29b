// `shoal debug-compare`: runs one input sample through a program on two
// devices (e.g. cpu:0 and ref:0) layer by layer and reports the first layer
// whose outputs diverge beyond a tolerance.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "npy.hpp"
#include "shoal/shoal.hpp"

namespace shoal::cli {
namespace {

Command spec() {
  return Command("debug-compare",
                 "shoal debug-compare PROGRAM INPUT.npy... --devices A,B [--tolerance T] [--all]",
                 "Runs the first sample of the inputs through the program on two devices, "
                 "layer by layer, and reports the first layer whose outputs differ by more "
                 "than T times the largest magnitude of device A's output of that layer "
                 "(default 1e-4), with its error. Exit status 0 when no layer diverges, 1 "
                 "when one does.")
      .option("devices", 'd', "A,B", "the two devices, e.g. cpu:0,ref:0 (default)")
      .option("tolerance", 't', "T", "relative tolerance per layer (1e-4)")
      .flag("all", 0, "print every layer's error, not only the first divergence")
      .positionals(2, 64);
}

/// max |a - b| and max |a| over the float32 outputs of one layer; NaN in one
/// but not the other counts as infinite error.
void layer_error(const LayerOutputs& a, const LayerOutputs& b, double& err, double& mag) {
  err = 0;
  mag = 0;
  for (size_t o = 0; o < a.outputs.size() && o < b.outputs.size(); ++o) {
    const Tensor &x = a.outputs[o], &y = b.outputs[o];
    if (x.dtype() != DType::f32 || y.dtype() != DType::f32 || x.numel() != y.numel()) continue;
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double u = x.f32()[i], v = y.f32()[i];
      if (std::isnan(u) != std::isnan(v)) {
        err = INFINITY;
        continue;
      }
      if (std::isnan(u)) continue;
      if (std::isfinite(u)) mag = std::max(mag, std::fabs(u));
      if (u != v) err = std::max(err, std::fabs(u - v));
    }
  }
}

}  // namespace

int cmd_debug_compare(const std::vector<std::string>& argv) {
  const Command cmd = spec();
  const Args args = cmd.parse(argv);
  if (args.help) {
    std::fputs(cmd.help().c_str(), stdout);
    return kExitOk;
  }
  std::vector<std::string> names;
  {
    std::stringstream ss(args.value("devices", "cpu:0,ref:0"));
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) names.push_back(item);
  }
  if (names.size() != 2) throw UsageError("--devices expects two devices, e.g. cpu:0,ref:0");
  const std::string tol_text = args.value("tolerance", "1e-4");
  char* end = nullptr;
  const double tol = std::strtod(tol_text.c_str(), &end);
  if (tol_text.empty() || *end != '\0' || !(tol >= 0))
    throw UsageError("--tolerance expects a number >= 0, got '" + tol_text + "'");

  const Program program = Program::load(args.positional[0]);
  const std::vector<TensorInfo> infos = program.inputs();
  if (args.positional.size() - 1 != infos.size())
    throw UsageError("the program takes " + std::to_string(infos.size()) + " input(s), got " +
                     std::to_string(args.positional.size() - 1) + " file(s)");
  std::vector<npy::Array> arrays;
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < infos.size(); ++i) {
    arrays.push_back(npy::load(args.positional[i + 1]));
    const npy::Array& a = arrays.back();
    const int64_t per = infos[i].numel();
    if (infos[i].dtype != DType::f32 || a.numel() < per || per <= 0 || a.numel() % per)
      throw Error(ErrorKind::invalid_argument,
                  args.positional[i + 1] + " has shape " + shape_str(a.shape) + "; input '" +
                      infos[i].name + "' takes float32 samples of shape " +
                      shape_str(infos[i].shape));
    inputs.push_back(Tensor::view(const_cast<float*>(a.data.data()), infos[i].shape));
  }
  std::vector<std::vector<LayerOutputs>> runs;
  for (const std::string& name : names) {
    RuntimeOptions o;
    o.devices = {find_device(name)};
    o.share_devices = true;
    Runtime rt(program, o);
    runs.push_back(rt.run_layers(inputs));
  }
  const std::vector<LayerOutputs>&a = runs[0], &b = runs[1];
  std::printf("%s vs %s, relative tolerance %g, %zu layers\n", names[0].c_str(), names[1].c_str(),
              tol, a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    double err = 0, mag = 0;
    layer_error(a[i], b[i], err, mag);
    const double rel = err == 0 ? 0 : err / std::max(mag, 1e-30);
    const bool bad = rel > tol;
    if (args.has("all") || bad)
      std::printf("%s layer %zu %s '%s': max |diff| %.3g, max |%s| %.3g, relative %.3g\n",
                  bad ? "DIVERGES:" : "ok", i, a[i].op.c_str(), a[i].name.c_str(), err,
                  names[0].c_str(), mag, rel);
    if (bad) return kExitError;
  }
  std::printf("no layer diverges\n");
  return kExitOk;
}

}  // namespace shoal::cli
