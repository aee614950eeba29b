// Conv and ConvTranspose as oneDNN (de)convolutions. The primitive picks its
// blocked layouts (format any); the kernel reorders the plain input into a
// workspace buffer and the blocked result back to the plain output, skipping
// a reorder when the chosen layout is already plain. Weights are packed once
// per device, or stored packed by the compiler (see conv_weight_plan). Fused
// forms: y = act(conv(x) + bias + residual), with the residual (input 3) as a
// sum post-op over a destination pre-filled with it.
//
// On a cluster of several threads (a team), some convolutions of one sample
// (Winograd ones with small weights, 1x1 ones with a residual) are cut into
// bands of output rows, one single-threaded primitive per thread (see
// wants_bands and build_banded).
//
// A fused SiLU runs natively after the primitive, which computes without it
// (onednn_epilogue.hpp).
//
// A channel scale (input 4, passes::fuse_channel_scale) multiplies the
// weights instead of the input: each sample's run first writes its scaled
// copy of the packed weights, W'[m, c] = W[m, c] * s[c] (block by block:
// oneDNN's layouts keep 16-64 output channels of one input channel
// together), then runs a one-sample primitive on it.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "backends/cpu/native/loops.hpp"
#include "backends/cpu/onednn_common.hpp"
#include "backends/cpu/onednn_epilogue.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu::onednn {
namespace {

/// Weights of an ONNX Conv, [M, C/g, k...], as oneDNN (g,)o,i,k... dims.
void conv_weights(const ref::WindowGeometry& g, dims& wd, dims& ws) {
  int64_t oc = g.c_out / g.group, ic = g.c_in / g.group;
  wd = g.group > 1 ? dims{g.group, oc, ic} : dims{g.c_out, ic};
  wd.insert(wd.end(), g.kernel.begin(), g.kernel.end());
  ws = plain_strides(wd);  // ONNX's layout is the plain (g)oi... one
}

/// Weights of an ONNX ConvTranspose, [C, M/g, k...] = (g, i, o, k...), as
/// oneDNN (g,)o,i,k... dims with the strides of the ONNX layout.
void deconv_weights(const ref::WindowGeometry& g, dims& wd, dims& ws) {
  int64_t oc = g.c_out / g.group, ic = g.c_in / g.group, ks = 1;
  for (int64_t k : g.kernel) ks *= k;
  dims kd(g.kernel.begin(), g.kernel.end());
  dims kst = plain_strides(kd);
  if (g.group > 1) {
    wd = {g.group, oc, ic};
    ws = {ic * oc * ks, ks, oc * ks};
  } else {
    wd = {oc, ic};
    ws = {ks, oc * ks};
  }
  wd.insert(wd.end(), kd.begin(), kd.end());
  ws.insert(ws.end(), kst.begin(), kst.end());
}

/// The band of a convolution one thread of a team computes: output rows
/// [out0, out1) of its first spatial dimension, read from input rows
/// [in0, in1) padded by pad_begin and pad_end rows in place of the layer's
/// padding.
struct RowBand {
  int64_t out0 = 0, out1 = 0, in0 = 0, in1 = 0, pad_begin = 0, pad_end = 0;
};

/// Whether convolution `g` has no more weights than input elements (one
/// sample): large maps, few channels. Both F(4,3) (prefer_f43) and row bands
/// (wants_bands) pay there.
bool small_weights(const ref::WindowGeometry& g) {
  int64_t weights = g.c_out * (g.c_in / g.group), input = g.c_in;
  for (int i = 0; i < g.spatial(); ++i) {
    weights *= g.kernel[i];
    input *= g.in[i];
  }
  return weights <= input;
}

/// The alpha (tile size) of a Winograd primitive's weights: 4 for F(2x2,3x3),
/// 6 for F(4x4,3x3); 0 when not Winograd.
int wino_alpha(const dnnl::primitive_desc& pd) {
  const dnnl_memory_desc_t& w = pd.query_md(dnnl::query::weights_md).data;
  return w.format_kind == dnnl_format_kind_wino ? int(w.format_desc.wino_desc.alpha) : 0;
}

/// oneDNN has two Winograd kernels and picks F(2,3) for one sample on some
/// shapes. Where the weights are no larger than the input (large maps, few
/// channels) F(4,3) runs faster (4-14% on ResNet's 56x56 layers, one thread)
/// and its weights, which the program stores, serve stacks of samples too
/// (row bands get F(4,3) with another blocking and transform their own).
/// Elsewhere F(4,3)'s 2.25x larger weights are not worth it.
void prefer_f43(dnnl::primitive_desc& pd, const ref::WindowGeometry& g) {
  if (wino_alpha(pd) != 4 || !small_weights(g)) return;
  dnnl::primitive_desc other = pd;  // walks oneDNN's other implementations
  while (other.next_impl())
    if (wino_alpha(other) == 6) {
      pd = other;
      return;
    }
}

/// What a (de)convolution kernel derives from its instruction, up to the
/// primitive descriptor. The kernel and the compiler's weight prepacking both
/// get it from plan_conv, so the packed layout is the one the kernel wants.
/// `pd`'s implementation iterator refers to an op descriptor that is gone:
/// never call next_impl() on it (prefer_f43 walks while it lives).
struct ConvPlan {
  const program::TensorDesc *x = nullptr, *w = nullptr, *b = nullptr, *r = nullptr;
  const program::TensorDesc* s = nullptr;  // channel scale: a one-sample primitive
  dims xd, yd, wd, ws;  // source, destination, weights (dims, ONNX strides)
  dnnl::memory::desc bmd;
  dnnl::primitive_desc pd;
  ref::WindowGeometry g;
  bool epilogue = false;  // the activation runs natively after the primitive
};

/// Fills `out`; false when oneDNN does not take this (de)convolution. With
/// a band, the primitive computes just its rows.
bool plan_conv(const OpContext& oc, bool transpose, ConvPlan& out, const RowBand* band = nullptr) {
  const program::TensorDesc* x = oc.in(0);
  const program::TensorDesc* w = oc.in(1);
  const program::TensorDesc* b = oc.in(2);
  const program::TensorDesc* r = oc.in(3);
  const program::TensorDesc* s = oc.in(4);
  if (!x || !w || !is_weight(*w) || oc.num_inputs() > 5) return false;
  if (oc.ins.outputs.size() != 1) return false;
  size_t rank = x->shape.size();
  if (rank < 3 || rank > 5 || w->shape.size() != rank) return false;
  const Attrs& a = oc.ins.attrs;
  ref::WindowGeometry g = transpose ? ref::conv_transpose_geometry(a, x->shape, w->shape)
                                    : ref::conv_geometry(a, x->shape, w->shape);
  if (g.group < 1 || g.c_in % g.group || g.c_out % g.group) return false;
  if (s && (transpose || band || g.group != 1 || compute_type(oc) != dt::f32)) return false;

  dims yd = window_out_dims(oc, g);
  if (b && (b->shape.size() != 1 || b->shape[0] != g.c_out))
    throw Error(ErrorKind::invalid_argument, oc.what() + ": bias '" + b->name + "' has shape " +
                                                 shape_str(b->shape) + ", expected [" +
                                                 std::to_string(g.c_out) + "]");
  dims xd = to_dims(x->shape);
  native::UnaryOp native_act;
  const bool epilogue = !transpose && native_activation(a, native_act);
  dnnl::primitive_attr attr;
  if (!fused_attr(oc, r, attr, epilogue)) return false;

  dims wd, ws;
  (transpose ? deconv_weights : conv_weights)(g, wd, ws);
  dims strides(g.stride.begin(), g.stride.end());
  dims dil, pl(g.pad_begin.begin(), g.pad_begin.end()), pr;
  for (int64_t d : g.dilation) dil.push_back(d - 1);  // oneDNN: 0 = dense
  for (int i = 0; i < g.spatial(); ++i) {
    if (!transpose) {
      pr.push_back(g.pad_end[i]);
    } else {
      // oneDNN: out = (in-1)*s + (k-1)*d + 1 - pl - pr; output_padding and
      // output_shape end up in pr (possibly negative).
      int64_t full = (g.in[i] - 1) * g.stride[i] + (g.kernel[i] - 1) * g.dilation[i] + 1;
      pr.push_back(full - g.pad_begin[i] - g.out[i]);
    }
  }

  if (s) xd[0] = yd[0] = 1;  // run sample by sample, each with its own weights
  if (band) {
    xd[2] = band->in1 - band->in0;
    yd[2] = band->out1 - band->out0;
    pl[0] = band->pad_begin;
    pr[0] = band->pad_end;
  }
  // bf16 (when compiled so): source and weights in bf16, f32 accumulation,
  // bias and destination (the post-ops see f32 values).
  const dt type = compute_type(oc);
  dnnl::memory::desc xmd = any_md(xd, type), wmd = any_md(wd, type), ymd = any_md(yd);
  dnnl::memory::desc bmd = plain_md({g.c_out});
  const auto fwd = dnnl::prop_kind::forward_inference;
  const dnnl::engine& eng = oc.ctx.engine;
  dnnl::primitive_desc pd;
  if (transpose) {
    const auto alg = dnnl::algorithm::deconvolution_direct;
    auto d =
        b ? dnnl::deconvolution_forward::desc(fwd, alg, xmd, wmd, bmd, ymd, strides, dil, pl, pr)
          : dnnl::deconvolution_forward::desc(fwd, alg, xmd, wmd, ymd, strides, dil, pl, pr);
    dnnl::deconvolution_forward::primitive_desc p(d, attr, eng);
    pd = p;
  } else {
    auto make = [&](dnnl::algorithm alg) {
      auto d =
          b ? dnnl::convolution_forward::desc(fwd, alg, xmd, wmd, bmd, ymd, strides, dil, pl, pr)
            : dnnl::convolution_forward::desc(fwd, alg, xmd, wmd, ymd, strides, dil, pl, pr);
      dnnl::primitive_desc p = dnnl::convolution_forward::primitive_desc(d, attr, eng);
      // Walking to oneDNN's next implementation reads `d`: here, while alive.
      if (alg == dnnl::algorithm::convolution_winograd) prefer_f43(p, g);
      return p;
    };
    // The compiler marks the layers where Winograd measured faster
    // (choose_conv_algorithms); a CPU without it runs them directly.
    bool done = false;
    if (a.i(kWinogradAttr, 0) != 0 && type == dt::f32 && !s) {
      try {
        pd = make(dnnl::algorithm::convolution_winograd);
        done = true;
      } catch (const dnnl::error&) {
      }
    }
    if (!done) pd = make(dnnl::algorithm::convolution_direct);
  }
  out = ConvPlan{x, w, b, r, s, xd, yd, wd, ws, bmd, pd, g, epilogue};
  return true;
}

/// Appends to `k` the instruction's activation over rows [first, first +
/// piece[2]) of output 0 (all of it without a band), in place: per sample
/// (channels-last) or per sample and channel (plain) one contiguous run.
void add_epilogue(DnnlKernel& k, const OpContext& oc, const dims& piece, int64_t first) {
  native::UnaryOp f;
  if (!native_activation(oc.ins.attrs, f))
    throw Error(ErrorKind::internal, oc.what() + ": no native form of its activation");
  const program::TensorDesc& y = oc.out(0);
  const dims full = to_dims(y.shape);
  int64_t row = 1;  // elements of one row of one channel
  for (size_t i = 3; i < full.size(); ++i) row *= full[i];
  const int64_t n = full[0], c = full[1], height = full[2], rows = piece[2];
  Epilogue e(f);
  if (y.layout == program::Layout::channels_last)
    for (int64_t s = 0; s < n; ++s) e.add_run((s * height + first) * row * c, rows * row * c);
  else
    for (int64_t s = 0; s < n * c; ++s) e.add_run((s * height + first) * row, rows * row);
  k.add_to_impl("+native " + oc.ins.attrs.s("activation", "activation"));
  k.add_host([e = std::move(e)](int threads, std::span<void* const>, std::span<void* const> out) {
    e.apply(static_cast<float*>(out[0]), threads);
  });
}

/// The input channels of a packed weight, per block of `block` consecutive
/// values that share one (oneDNN's layouts keep 16-64 output channels of one
/// input channel together).
struct ChannelBlocks {
  int64_t block = 1;
  std::vector<int64_t> channel;  // c_in for the packed layout's padding
};

/// For each packed weight of planned convolution `p`, the input channel it
/// multiplies; `c_in` for the padding the packed layout adds (its weights are
/// zero, and a scale of 1 keeps them so). Consecutive runs of one channel
/// become blocks.
ChannelBlocks packed_channels(const OpContext& oc, const ConvPlan& p) {
  const dnnl::memory::desc plain = strided_md(p.wd, p.ws);
  const dnnl::memory::desc target = p.pd.query_md(dnnl::query::weights_md);
  const int64_t c_in = p.g.c_in, k_sz = int64_t(plain.get_size() / sizeof(float)) / p.g.c_out;
  std::vector<float> from(plain.get_size() / sizeof(float)), to(target.get_size() / sizeof(float));
  for (size_t i = 0; i < from.size(); ++i) from[i] = float((int64_t(i) % k_sz) / (k_sz / c_in) + 1);
  dnnl::memory src(plain, oc.ctx.engine, from.data()), dst(target, oc.ctx.engine, to.data());
  dnnl::stream st(oc.ctx.engine);
  dnnl::reorder(src, dst).execute(st, src, dst);
  st.wait();
  std::vector<int64_t> channel(to.size());
  for (size_t i = 0; i < to.size(); ++i) channel[i] = to[i] > 0 ? int64_t(to[i]) - 1 : c_in;
  ChannelBlocks cb;
  for (int64_t b : {64, 32, 16, 8, 4, 2}) {  // the longest aligned runs of one channel
    if (channel.size() % size_t(b)) continue;
    bool runs = true;
    for (size_t i = 0; i < channel.size() && runs; ++i) runs = channel[i] == channel[i - i % b];
    if (runs) {
      cb.block = b;
      break;
    }
  }
  for (size_t i = 0; i < channel.size(); i += size_t(cb.block)) cb.channel.push_back(channel[i]);
  return cb;
}

/// The temporaries a kernel's per-sample steps share.
struct SampleTemps {
  dnnl::memory src, dst, weights, scale;
  std::shared_ptr<const ChannelBlocks> channels;  // packed_channels
};

/// Appends to `k` a step writing sample `sample`'s scaled copy of packed
/// weight `packed` into temps.weights.
void add_weight_scaling(DnnlKernel& k, const OpContext& oc, const ConvPlan& p,
                        const dnnl::memory& packed, int64_t sample, SampleTemps& temps) {
  const dnnl::memory::desc& target = packed.get_desc();
  if (!temps.channels) {
    temps.channels = std::make_shared<const ChannelBlocks>(packed_channels(oc, p));
    temps.weights = k.temp(target);
    temps.scale = k.temp(plain_md({p.g.c_in + 1}));
  }
  const int64_t c = p.g.c_in;
  const int64_t from = p.s->shape[0] == 1 ? 0 : sample * c;  // s: [N or 1, C, 1...]
  const float* w = static_cast<const float*>(packed.get_data_handle());
  k.add_host([w, c, from, t = temps](int, std::span<void* const> in, std::span<void* const>) {
    float* sc = static_cast<float*>(t.scale.get_data_handle());
    std::memcpy(sc, static_cast<const float*>(in[4]) + from, size_t(c) * sizeof(float));
    sc[c] = 1.0f;  // the packed layout's padding
    const ChannelBlocks& cb = *t.channels;
    native::loops().scale_blocks(w, sc, cb.channel.data(), cb.block, int64_t(cb.channel.size()),
                                 static_cast<float*>(t.weights.get_data_handle()));
  });
}

/// Appends to `k` the steps of planned (de)convolution `p`: the source
/// reordered into the primitive's layout, the residual into the destination,
/// the primitive, and the destination reordered into the output. With a band,
/// the steps read and write just its rows of the operands; with a sample
/// (>= 0: a one-sample plan of a channel-scaled convolution), just its
/// sample, after scaling the weights, sharing `temps` with the other samples.
void add_conv_steps(DnnlKernel& k, const OpContext& oc, const ConvPlan& p, bool transpose,
                    const RowBand* band = nullptr, int64_t sample = -1,
                    SampleTemps* temps = nullptr) {
  const dnnl::primitive_desc& pd = p.pd;
  // An operand as the program lays it out, or rows [first, first + dims[2])
  // of it, or one sample: when they are contiguous (a sample; rows of one
  // sample, channels-last) a dense tensor from a byte offset on, which a
  // primitive may read or write in place, else a view of the whole.
  struct View {
    dnnl::memory::desc md;
    size_t offset = 0;
  };
  auto rows = [&](const program::TensorDesc& t, const dims& piece, int64_t first) {
    dnnl::memory::desc whole = user_md(t, to_dims(t.shape));
    if (sample >= 0)
      return View{user_md(t, piece), size_t(sample) * (whole.get_size() / size_t(t.shape[0]))};
    if (!band) return View{whole};
    if (piece[0] == 1 && t.layout == program::Layout::channels_last)
      return View{user_md(t, piece),
                  size_t(first * whole.data.format_desc.blocking.strides[2]) * sizeof(float)};
    dims at(piece.size(), 0);
    at[2] = first;
    return View{whole.submemory_desc(piece, at)};
  };
  DnnlKernel::Args args;
  // Source: the user tensor, reordered when the primitive wants a blocked
  // layout.
  const View xu = rows(*p.x, p.xd, band ? band->in0 : 0);
  dnnl::memory::desc src_md = pd.query_md(dnnl::query::src_md);
  if (src_md == xu.md) {
    args[DNNL_ARG_SRC] = k.operand(oc, 0, xu.md, xu.offset);
  } else {
    dnnl::memory user = k.operand(oc, 0, xu.md, xu.offset);
    if (temps && !temps->src) temps->src = k.temp(src_md);
    args[DNNL_ARG_SRC] = temps ? temps->src : k.temp(src_md);
    k.add_reorder(user, args[DNNL_ARG_SRC]);
  }
  auto packed = packed_weight(oc, *p.w, strided_md(p.wd, p.ws),
                              pd.query_md(dnnl::query::weights_md), transpose ? "deconv" : "conv");
  k.keep(packed);
  if (p.s) {
    if (!temps || sample < 0)
      throw Error(ErrorKind::internal, oc.what() + ": a channel scale runs sample by sample");
    add_weight_scaling(k, oc, p, *packed, sample, *temps);
    args[DNNL_ARG_WEIGHTS] = temps->weights;
  } else {
    args[DNNL_ARG_WEIGHTS] = *packed;
  }
  if (p.b) args[DNNL_ARG_BIAS] = k.operand(oc, 2, p.bmd);
  // Destination: blocked in the workspace, or the plain output itself. The
  // sum post-op adds what the destination holds: the residual.
  const int64_t out0 = band ? band->out0 : 0;
  const View yu = rows(oc.out(0), p.yd, out0);
  dnnl::memory::desc dst_md = pd.query_md(dnnl::query::dst_md);
  bool dst_plain = dst_md == yu.md;
  if (!dst_plain && temps && !temps->dst) temps->dst = k.temp(dst_md);
  dnnl::memory dst =
      dst_plain ? k.bind_output(0, yu.md, yu.offset) : (temps ? temps->dst : k.temp(dst_md));
  args[DNNL_ARG_DST] = dst;
  if (p.r) {
    const View ru = rows(*p.r, p.yd, out0);
    k.add_reorder(k.operand(oc, 3, ru.md, ru.offset), dst, /*skip_if_same=*/true);
  }
  k.add(dnnl::primitive(pd), pd, std::move(args));
  if (!dst_plain) k.add_reorder(dst, k.bind_output(0, yu.md, yu.offset));
  if (sample > 0) return;  // the first sample's steps named the kernel
  k.set_impl(pd);
  if (temps) k.add_to_impl("+scaled weights");
  if (p.epilogue && sample < 0) add_epilogue(k, oc, p.yd, out0);
}

KernelPtr build(const OpContext& oc, const ConvPlan& p, bool transpose) {
  auto k = std::make_unique<DnnlKernel>(oc);
  if (!p.s) {
    add_conv_steps(*k, oc, p, transpose);
    return k;
  }
  SampleTemps temps;
  const int64_t samples = oc.out(0).shape[0];
  for (int64_t i = 0; i < samples; ++i) add_conv_steps(*k, oc, p, transpose, nullptr, i, &temps);
  if (p.epilogue) add_epilogue(*k, oc, p.yd, 0);  // every sample's rows, whole
  return k;
}

bool is_winograd(const ConvPlan& p) { return wino_alpha(p.pd) != 0; }

/// Whether a team cuts convolution `whole` into row bands. Measured per
/// layer on two Zen 5 cores (docs/PERFORMANCE.md), by default:
/// - Winograd layers whose weights are no larger than their input (ResNet's
///   56x56 layers): bands run 2.0-2.2x faster than one thread, where oneDNN's
///   own threading gets 1.3-1.8x. With larger weights bands lose: each reads
///   all of them (a 14x14 layer with 256 channels ran slower on two bands
///   than on one thread).
/// - 1x1 stride-1 convolutions with a fused residual on 14+ rows (ResNet's
///   and MobileNetV2's projections): as fast as oneDNN's threading on a quiet
///   machine, up to 10% faster on a busy one; each band reads and writes its
///   rows of the channels-last operands in place.
/// oneDNN's threading of the other direct convolutions scales 1.8-1.9x and
/// beats bands, which lose 10-30% on 7x7 maps, strided and 3x3 layers.
/// Only one-sample kernels are cut (stacks of samples keep oneDNN's
/// threading). `force` (SHOAL_ROW_BANDS) all cuts every one-sample
/// convolution it can (tests), none none.
bool wants_bands(const ConvPlan& whole, RowBands force) {
  if (whole.xd[0] != 1 || whole.s) return false;  // measured on one sample only
  // Measured on f32 kernels only.
  if (whole.pd.src_desc().data_type() != dt::f32) return false;
  if (force == RowBands::all) return true;
  if (force == RowBands::none) return false;
  if (!is_winograd(whole)) {
    bool pointwise = true;
    for (int i = 0; i < whole.g.spatial(); ++i)
      pointwise = pointwise && whole.g.kernel[i] == 1 && whole.g.stride[i] == 1;
    return pointwise && whole.r && whole.g.out[0] >= 14;
  }
  return small_weights(whole.g);
}

/// Bands of `g`'s output rows for `threads` threads, starting at multiples
/// of `tile` (Winograd bands get the F(4,3) kernel, whose output tile is 4
/// rows), with the input rows each reads.
std::vector<RowBand> row_bands(const ref::WindowGeometry& g, int threads, int64_t tile) {
  std::vector<RowBand> bands;
  const int64_t height = g.out[0];
  const int64_t step = ((height + threads - 1) / threads + tile - 1) / tile * tile;
  for (int64_t r = 0; r < height; r += step) {
    RowBand b;
    b.out0 = r;
    b.out1 = std::min(height, r + step);
    // Input rows the band's outputs read, clipped to the input; what lies
    // outside is the layer's padding, now the band's.
    const int64_t lo = b.out0 * g.stride[0] - g.pad_begin[0];
    const int64_t hi =
        (b.out1 - 1) * g.stride[0] - g.pad_begin[0] + (g.kernel[0] - 1) * g.dilation[0] + 1;
    b.in0 = std::max<int64_t>(0, lo);
    b.in1 = std::min<int64_t>(g.in[0], hi);
    b.pad_begin = b.in0 - lo;
    b.pad_end = hi - b.in1;
    bands.push_back(b);
  }
  return bands;
}

/// Convolution `whole` as one band per thread of the team, or nullptr (then
/// oneDNN's threading runs the whole layer): when the rows do not give every
/// thread a band, a band would read only padding, or oneDNN declines a band.
KernelPtr build_banded(const OpContext& oc, const ConvPlan& whole) {
  std::vector<RowBand> bands = row_bands(whole.g, oc.threads, is_winograd(whole) ? 4 : 1);
  if (int(bands.size()) != oc.threads) return nullptr;
  for (const RowBand& b : bands)
    if (b.in1 <= b.in0) return nullptr;
  std::vector<std::unique_ptr<DnnlKernel>> parts;
  OneThreadPlanning one;  // each band runs on one thread
  try {
    for (const RowBand& b : bands) {
      ConvPlan p;
      if (!plan_conv(oc, false, p, &b)) return nullptr;
      auto k = std::make_unique<DnnlKernel>(oc);
      add_conv_steps(*k, oc, p, false, &b);
      parts.push_back(std::move(k));
    }
  } catch (const dnnl::error&) {
    return nullptr;
  }
  std::string impl = parts.front()->impl() + " x" + std::to_string(parts.size()) + " row bands";
  return std::make_unique<TeamKernel>(oc.ctx.engine, std::move(parts), std::move(impl));
}

}  // namespace

KernelPtr make_conv(const OpContext& oc) {
  ConvPlan p;
  if (!plan_conv(oc, false, p)) return nullptr;
  if (oc.threads > 1 && wants_bands(p, oc.ctx.row_bands))
    if (KernelPtr k = build_banded(oc, p)) return k;
  return build(oc, p, false);
}

KernelPtr make_conv_transpose(const OpContext& oc) {
  ConvPlan p;
  if (!plan_conv(oc, true, p)) return nullptr;
  return build(oc, p, true);
}

bool conv_weight_plan(const OpContext& oc, bool transpose, WeightPlan& wp) {
  ConvPlan p;
  if (!plan_conv(oc, transpose, p)) return false;
  wp.plain = strided_md(p.wd, p.ws);
  wp.target = p.pd.query_md(dnnl::query::weights_md);
  wp.scale = 1.0f;
  return true;
}

}  // namespace shoal::cpu::onednn
