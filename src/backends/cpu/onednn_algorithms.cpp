// choose_conv_algorithms: the compiler measures, per 3x3 stride-1
// convolution, oneDNN's Winograd kernel against the direct one on this CPU
// and marks the layers where Winograd wins clearly.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "backends/cpu/onednn_kernels.hpp"
#include "reference/geometry.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

/// Whether Winograd can apply at all: 2-D, 3x3, stride 1, dilation 1, one
/// group, a constant weight.
bool candidate(const program::Instruction& ins, const program::ProgramData& p) {
  if (ins.op != "Conv" || ins.inputs.size() < 2 || ins.outputs.size() != 1) return false;
  const int32_t x = ins.inputs[0], w = ins.inputs[1];
  if (x < 0 || w < 0 || size_t(x) >= p.tensors.size() || size_t(w) >= p.tensors.size())
    return false;
  const program::TensorDesc &xd = p.tensors[size_t(x)], &wd = p.tensors[size_t(w)];
  if (xd.shape.size() != 4 || wd.shape.size() != 4 || wd.storage != program::Storage::weight)
    return false;
  if (wd.shape[2] != 3 || wd.shape[3] != 3) return false;
  try {
    const ref::WindowGeometry g = ref::conv_geometry(ins.attrs, xd.shape, wd.shape);
    return g.group == 1 && g.stride[0] == 1 && g.stride[1] == 1 && g.dilation[0] == 1 &&
           g.dilation[1] == 1;
  } catch (const Error&) {
    return false;
  }
}

/// Best time (ms) of `reps` runs of the instruction's oneDNN kernel on
/// random data; negative when oneDNN does not take it.
double time_kernel(const program::Instruction& ins, const program::ProgramData& p,
                   OneDnnContext& ctx, int reps) {
  std::unique_ptr<runtime::Kernel> k;
  try {
    k = make_onednn_kernel(ins, p, ctx);
  } catch (const Error&) {
    return -1;
  }
  if (!k) return -1;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> buffers;
  auto bind = [&](int32_t t) -> void* {
    if (t < 0) return nullptr;
    const program::TensorDesc& d = p.tensors[size_t(t)];
    if (d.storage == program::Storage::weight) return const_cast<uint8_t*>(p.weights) + d.offset;
    buffers.emplace_back(d.bytes / sizeof(float) + 1);
    for (float& v : buffers.back()) v = normal(rng);
    return buffers.back().data();
  };
  std::vector<void*> in, out;
  buffers.reserve(ins.inputs.size() + ins.outputs.size());
  for (int32_t t : ins.inputs) in.push_back(bind(t));
  for (int32_t t : ins.outputs) out.push_back(bind(t));
  dnnl::stream stream(ctx.engine);
  runtime::ExecContext ec{0, 1, &stream};
  double best = 1e300;
  for (int r = 0; r <= reps; ++r) {  // the first run warms up
    const auto t0 = std::chrono::steady_clock::now();
    k->execute(ec, in, out);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r) best = std::min(best, ms);
  }
  return best;
}

}  // namespace

int choose_conv_algorithms(program::ProgramData& p, double min_gain,
                           const std::function<void(const std::string&)>& log) {
  OneDnnContext ctx;
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);  // a cluster's view: one core
  int marked = 0, tried = 0;
  double direct_total = 0, chosen_total = 0;
  try {
    for (program::Instruction& ins : p.instructions) {
      if (!candidate(ins, p)) continue;
      program::Instruction wino = ins;
      wino.attrs.set(kWinogradAttr, int64_t(1));
      const double direct = time_kernel(ins, p, ctx, 3);
      const double winograd = time_kernel(wino, p, ctx, 3);
      if (direct <= 0) continue;
      ++tried;
      direct_total += direct;
      if (winograd > 0 && winograd <= (1.0 - min_gain) * direct) {
        ins.attrs.set(kWinogradAttr, int64_t(1));
        ++marked;
        chosen_total += winograd;
      } else {
        chosen_total += direct;
      }
    }
  } catch (...) {
    omp_set_num_threads(threads);
    throw;
  }
  omp_set_num_threads(threads);
  if (log && tried)
    log("winograd: " + std::to_string(marked) + " of " + std::to_string(tried) +
        " 3x3 stride-1 convolutions (measured on one core: " + std::to_string(direct_total) +
        " ms direct -> " + std::to_string(chosen_total) + " ms)");
  return marked;
}

}  // namespace shoal::cpu
