// MaxPool over channels-last float32 tensors: each output pixel is the
// channel-wise maximum of its window's input pixels, C contiguous values
// each (max_taps), the windows' valid taps found once per kernel. oneDNN
// 2.6's pooling, tuned for blocked layouts, took 1.3-1.5x longer on these
// (SqueezeNet's 111x111x64 pool: 0.187 against 0.144 ms, bound by reading
// its input from beyond L2).
#include <limits>

#include "backends/cpu/native/kernel.hpp"
#include "reference/geometry.hpp"

namespace shoal::cpu::native {

WindowTaps window_taps(const ref::WindowGeometry& g) {
  const int64_t c = g.c_in, h = g.in[0], w = g.in[1], oh = g.out[0], ow = g.out[1];
  WindowTaps t;
  t.first.assign(size_t(oh * ow) + 1, 0);
  for (int64_t p = 0; p < oh; ++p)
    for (int64_t q = 0; q < ow; ++q) {
      for (int64_t a = 0; a < g.kernel[0]; ++a) {
        const int64_t i = p * g.stride[0] - g.pad_begin[0] + a * g.dilation[0];
        if (i < 0 || i >= h) continue;
        for (int64_t b = 0; b < g.kernel[1]; ++b) {
          const int64_t j = q * g.stride[1] - g.pad_begin[1] + b * g.dilation[1];
          if (j >= 0 && j < w) t.offsets.push_back((i * w + j) * c);
        }
      }
      t.first[size_t(p * ow + q) + 1] = int64_t(t.offsets.size());
    }
  return t;
}

KernelPtr make_maxpool(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  if (!dense_f32(x) || oc.num_inputs() != 1 || x->layout != program::Layout::channels_last ||
      x->shape.size() != 4)
    return nullptr;
  for (size_t i = 1; i < oc.ins.outputs.size(); ++i)
    if (oc.ins.outputs[i] >= 0) return nullptr;  // Indices: the reference kernel
  const program::TensorDesc& y = oc.out(0);
  if (!dense_f32(&y) || y.layout != program::Layout::channels_last) return nullptr;
  const ref::WindowGeometry g = ref::pool_geometry(oc.ins.attrs, x->shape);
  const Shape want = {g.n, g.c_in, g.out[0], g.out[1]};
  if (y.shape != want || g.n == 0 || g.c_in == 0) return nullptr;  // the reference kernel names it
  const int64_t c = g.c_in, pixels = g.out[0] * g.out[1];
  const int64_t in_sample = g.in[0] * g.in[1] * c, out_sample = pixels * c;
  WindowTaps taps = window_taps(g);
  return std::make_unique<NativeKernel>(
      [offsets = std::move(taps.offsets), first = std::move(taps.first), pixels, in_sample,
       out_sample, c, n = g.n](int threads, std::span<void* const> in, std::span<void* const> out) {
        const Loops& L = loops();
        const float* xp = cf32(in[0]);
        float* yp = f32(out[0]);
        parallel_rows(threads, n * pixels, c, [&](int64_t r) {
          const int64_t s = r / pixels, p = r % pixels;
          const int64_t t0 = first[size_t(p)], t1 = first[size_t(p) + 1];
          L.max_taps(xp + s * in_sample, offsets.data() + t0, int(t1 - t0),
                     yp + s * out_sample + p * c, c);
        });
      });
}

}  // namespace shoal::cpu::native
