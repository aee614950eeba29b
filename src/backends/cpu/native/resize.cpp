// Resize and Upsample of the spatial dims of a 4-D tensor (N and C kept), in
// plain or channels-last layout, with the reference kernel's plan and
// per-dim taps (reference/nn_resize.hpp: every mode, coordinate mode and
// tf_crop_and_resize), so both agree on which inputs and weights make each
// output. Channels-last: each output pixel is a weighted sum of up to 16
// input pixels' channel rows (Loops::mix). Plain: each output row mixes up to
// 4 input rows, then gathers its columns from that row.
#include <algorithm>

#include "backends/cpu/native/kernel.hpp"
#include "reference/nn_resize.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::native {
namespace {

using ref::nn::DimTaps;

struct ResizeGeometry {
  int64_t n = 0, c = 0, ih = 0, iw = 0, oh = 0, ow = 0;
  std::vector<int64_t> xs, ys;  // logical strides [N, C, H, W] in each layout
  DimTaps th, tw;
  float extrapolation = 0;
  bool crop = false;  // some output is outside the input (tf_crop_and_resize)
};

/// Whether every output o of a dim reads input o alone (weight 1; cubic
/// taps at integer positions have zero-weight neighbours).
bool identity(const DimTaps& t) {
  for (size_t o = 0; o < t.outside.size(); ++o) {
    if (t.outside[o]) return false;
    float self = 0;
    for (int k = 0; k < t.n; ++k) {
      const float w = t.weight[o * size_t(t.n) + size_t(k)];
      if (t.index[o * size_t(t.n) + size_t(k)] == int64_t(o))
        self += w;
      else if (w != 0.0f)
        return false;
    }
    if (self != 1.0f) return false;
  }
  return true;
}

bool outside(const ResizeGeometry& g, int64_t oh, int64_t ow) {
  return g.crop && (g.th.outside[size_t(oh)] || g.tw.outside[size_t(ow)]);
}

/// The taps of output row oh as row pointers from `first` (input row ih at
/// first + ih * row_stride) and weights; returns how many (zero weights
/// skipped).
int vertical_taps(const ResizeGeometry& g, const float* first, int64_t row_stride, int64_t oh,
                  const float** src, float* w) {
  int k = 0;
  for (int a = 0; a < g.th.n; ++a) {
    const float wa = g.th.weight[size_t(oh * g.th.n + a)];
    if (wa == 0.0f) continue;
    src[k] = first + g.th.index[size_t(oh * g.th.n + a)] * row_stride;
    w[k++] = wa;
  }
  return k;
}

/// Output row oh of sample n from a channels-last input: pixel ow's C
/// channels go to yr + ow * pixel_stride (contiguous).
void channels_last_row(const ResizeGeometry& g, const Loops& L, const float* x, float* yr,
                       int64_t pixel_stride, int64_t n, int64_t oh) {
  const float* rows[4];  // the input rows of this output row's vertical taps
  float wr[4];
  const int kr = vertical_taps(g, x + n * g.xs[0], g.xs[2], oh, rows, wr);
  const float* src[16];
  float w[16];
  for (int64_t ow = 0; ow < g.ow; ++ow) {
    float* out = yr + ow * pixel_stride;
    if (outside(g, oh, ow)) {
      std::fill(out, out + g.c, g.extrapolation);
      continue;
    }
    int k = 0;
    for (int a = 0; a < kr; ++a)
      for (int b = 0; b < g.tw.n; ++b) {
        const float wb = g.tw.weight[size_t(ow * g.tw.n + b)];
        if (wb == 0.0f) continue;
        src[k] = rows[a] + g.tw.index[size_t(ow * g.tw.n + b)] * g.xs[3];
        w[k++] = wr[a] * wb;
      }
    if (k == 0) {
      std::fill(out, out + g.c, 0.0f);
      continue;
    }
    L.mix(src, w, k, out, g.c);
  }
}

/// One output row from `row` (the input row after the vertical taps, iw
/// floats): out[ow * stride] for ow < ow.
void horizontal(const ResizeGeometry& g, const Loops& L, const float* row, float* out,
                int64_t stride, int64_t oh) {
  if (stride == 1) {
    L.gather_mix(row, g.tw.index.data(), g.tw.weight.data(), g.tw.n, out, g.ow);
  } else {
    const int nw = g.tw.n;
    for (int64_t ow = 0; ow < g.ow; ++ow) {
      float v = 0;
      for (int b = 0; b < nw; ++b)
        v += g.tw.weight[size_t(ow * nw + b)] * row[g.tw.index[size_t(ow * nw + b)]];
      out[ow * stride] = v;
    }
  }
  if (g.crop)
    for (int64_t ow = 0; ow < g.ow; ++ow)
      if (outside(g, oh, ow)) out[ow * stride] = g.extrapolation;
}

/// Output row oh of sample n from a channels-last input into a plain output
/// (a segmentation head's last Resize): the vertical taps over whole input
/// rows (iw * C contiguous), transposed to one row per channel, then the
/// horizontal taps per channel. buf holds 2 * iw * C floats.
void channels_last_to_plain_row(const ResizeGeometry& g, const Loops& L, const float* x, float* y,
                                int64_t n, int64_t oh, float* buf) {
  const float* src[4];
  float w[4];
  const int64_t len = g.iw * g.c;
  float* v = buf;
  float* t = buf + len;
  const int k = vertical_taps(g, x + n * g.xs[0], g.xs[2], oh, src, w);
  if (k == 0)
    std::fill(v, v + len, 0.0f);
  else
    L.mix(src, w, k, v, len);
  for (int64_t iw = 0; iw < g.iw; ++iw)
    for (int64_t c = 0; c < g.c; ++c) t[c * g.iw + iw] = v[iw * g.c + c];
  for (int64_t c = 0; c < g.c; ++c)
    horizontal(g, L, t + c * g.iw, y + n * g.ys[0] + c * g.ys[1] + oh * g.ys[2], g.ys[3], oh);
}

/// Output row oh of plane (n, c) in the plain layout; tmp holds iw floats.
void plain_row(const ResizeGeometry& g, const Loops& L, const float* x, float* y, int64_t n,
               int64_t c, int64_t oh, float* tmp) {
  const float* plane = x + n * g.xs[0] + c * g.xs[1];
  float* out = y + n * g.ys[0] + c * g.ys[1] + oh * g.ys[2];
  const float* src[4];
  float w[4];
  const int k = vertical_taps(g, plane, g.xs[2], oh, src, w);
  if (k == 0) {
    std::fill(tmp, tmp + g.iw, 0.0f);
  } else {
    L.mix(src, w, k, tmp, g.iw);
  }
  horizontal(g, L, tmp, out, g.ys[3], oh);
}

/// Calls row(r, scratch) for r < rows over the team, each thread with its
/// own scratch buffer of `floats` floats.
template <class Row>
void rows_with_scratch(int threads, int64_t rows, size_t floats, Row&& row) {
  if (threads > 1 && rows >= threads) {
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> scratch(floats);
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) row(r, scratch.data());
    }
  } else {
    std::vector<float> scratch(floats);
    for (int64_t r = 0; r < rows; ++r) row(r, scratch.data());
  }
}

}  // namespace

KernelPtr make_resize(const OpContext& oc) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc& y = oc.out(0);
  if (oc.ins.outputs.size() != 1 || !dense_f32(x) || !dense_f32(&y) || x->shape.size() != 4)
    return nullptr;
  // The plan from the constant operands (scales, sizes, roi), as the
  // reference kernel makes it; x's data is not read.
  std::vector<TensorRef> refs(size_t(oc.num_inputs()));
  static const float no_data = 0;
  refs[0] = TensorRef{DType::f32, x->shape, const_cast<float*>(&no_data)};
  for (int i = 1; i < oc.num_inputs(); ++i) {
    const program::TensorDesc* t = oc.in(i);
    if (!t) continue;
    if (!onednn::is_weight(*t)) return nullptr;
    refs[size_t(i)] = TensorRef{t->dtype, t->shape, const_cast<void*>(oc.weight_data(*t))};
  }
  const ref::nn::ResizePlan p = ref::nn::resize_plan_of(oc.ins.op, oc.ins.attrs, refs);
  if (p.out != y.shape)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", expected " +
                                                 shape_str(p.out));
  if (p.out[0] != x->shape[0] || p.out[1] != x->shape[1] || shape_numel(y.shape) == 0)
    return nullptr;  // resizes N or C: the reference kernel
  auto g = std::make_shared<ResizeGeometry>();
  g->n = x->shape[0];
  g->c = x->shape[1];
  g->ih = x->shape[2];
  g->iw = x->shape[3];
  g->oh = y.shape[2];
  g->ow = y.shape[3];
  g->xs = layout_strides(*x);
  g->ys = layout_strides(y);
  g->th = ref::nn::dim_taps(p, 2, g->ih, g->oh);
  g->tw = ref::nn::dim_taps(p, 3, g->iw, g->ow);
  for (size_t d = 0; d < 2; ++d)  // N and C map to themselves
    if (!identity(ref::nn::dim_taps(p, d, x->shape[d], y.shape[d]))) return nullptr;
  g->extrapolation = p.extrapolation;
  for (char o : g->th.outside) g->crop = g->crop || o;
  for (char o : g->tw.outside) g->crop = g->crop || o;
  // A channels-last input goes to a channels-last or a plain output; a plain
  // input to either (plain_row writes with the output's strides).
  const bool cl_in = x->layout == program::Layout::channels_last;
  const bool cl = cl_in && y.layout == program::Layout::channels_last;
  const bool cl_to_plain = cl_in && !cl;
  return std::make_unique<NativeKernel>(
      [g, cl, cl_to_plain](int threads, std::span<void* const> in, std::span<void* const> out) {
        const Loops& L = loops();
        const float* xp = cf32(in[0]);
        float* yp = f32(out[0]);
        if (cl) {
          parallel_rows(threads, g->n * g->oh, g->ow * g->c, [&](int64_t r) {
            const int64_t n = r / g->oh, oh = r % g->oh;
            channels_last_row(*g, L, xp, yp + n * g->ys[0] + oh * g->ys[2], g->ys[3], n, oh);
          });
          return;
        }
        if (cl_to_plain) {  // a segmentation head: whole input rows, then per channel
          rows_with_scratch(threads, g->n * g->oh, size_t(2 * g->iw * g->c),
                            [&](int64_t r, float* buf) {
                              channels_last_to_plain_row(*g, L, xp, yp, r / g->oh, r % g->oh, buf);
                            });
          return;
        }
        // A plain input (the strides say where each output element goes).
        rows_with_scratch(threads, g->n * g->c * g->oh, size_t(g->iw), [&](int64_t r, float* tmp) {
          const int64_t oh = r % g->oh, nc = r / g->oh;
          plain_row(*g, L, xp, yp, nc / g->c, nc % g->c, oh, tmp);
        });
      });
}

}  // namespace shoal::cpu::native
