// The kernel object every native builder returns, and operand helpers.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "backends/cpu/native/loops.hpp"
#include "backends/cpu/native/nest.hpp"
#include "backends/cpu/omp_team.hpp"
#include "backends/cpu/onednn_common.hpp"
#include "device/kernel.hpp"

namespace shoal::cpu::native {

using onednn::KernelPtr;
using onednn::OpContext;

/// Runs fn(threads, in, out); impl() is "native:<isa>".
class NativeKernel final : public device::Kernel {
 public:
  using Fn =
      std::function<void(int threads, std::span<void* const> in, std::span<void* const> out)>;
  explicit NativeKernel(Fn fn) : fn_(std::move(fn)), impl_(std::string("native:") + loops().isa) {}
  void execute(device::ExecContext& ctx, std::span<void* const> in,
               std::span<void* const> out) override {
    fn_(team_threads(ctx.threads), in, out);
  }
  std::string impl() const override { return impl_; }
  std::string precision() const override { return precision_; }
  void set_precision(std::string p) { precision_ = std::move(p); }

 private:
  Fn fn_;
  std::string impl_;
  std::string precision_ = "f32";
};

/// Calls f(r) for rows r < rows of `n` elements each, shared over the team
/// when there is enough work.
template <class F>
void parallel_rows(int threads, int64_t rows, int64_t n, F&& f) {
  if (threads > 1 && rows >= threads && rows * n >= (int64_t(1) << 14)) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < rows; ++r) f(r);
  } else {
    for (int64_t r = 0; r < rows; ++r) f(r);
  }
}

/// An f32 operand in plain or channels-last layout (what native kernels take).
inline bool dense_f32(const program::TensorDesc* t) {
  return t && t->dtype == DType::f32 &&
         (t->layout == program::Layout::plain || t->layout == program::Layout::channels_last);
}

inline float* f32(void* p) { return static_cast<float*>(p); }
inline const float* cf32(void* p) { return static_cast<const float*>(p); }

/// The values of an int64 or int32 constant operand (axes, Slice bounds,
/// Gather indices); `t` must be a weight of one of those dtypes.
std::vector<int64_t> const_index_values(const OpContext& oc, const program::TensorDesc& t);

/// The Unary of a fused activation attribute (Unary::copy for none); false
/// for one the native loops do not compute (GELU's tanh form).
bool fused_unary(const Attrs& a, UnaryOp& f);

/// y = act(x * scale + shift) per channel (dim 1) from inputs 0..parts-1
/// laid one after another along the channels of output 0 (one part: an
/// inference BatchNormalization; several: a Concat that took one).
/// scale_shift holds C scales, then C shifts. nullptr when a part's rows are
/// not contiguous in y.
KernelPtr channel_affine_kernel(const OpContext& oc, int parts, const UnaryOp& act,
                                std::vector<float> scale_shift);

/// Builders, one per family (elementwise.cpp, reduce.cpp, copy.cpp, pad.cpp).
KernelPtr make_unary(const OpContext& oc);
KernelPtr make_binary(const OpContext& oc);
KernelPtr make_reduce(const OpContext& oc);
KernelPtr make_layernorm(const OpContext& oc);
KernelPtr make_batchnorm(const OpContext& oc);
KernelPtr make_resize(const OpContext& oc);
KernelPtr make_quantize(const OpContext& oc);     // quantize.cpp: QuantizeLinear
KernelPtr make_dequantize(const OpContext& oc);   // ... DequantizeLinear
KernelPtr make_qlinear_add(const OpContext& oc);  // ... shoal.QLinearAdd
KernelPtr make_qlinear_lookup(const OpContext& oc);  // qlookup.cpp: shoal.QLinearLookup
KernelPtr make_qlinear_gap(const OpContext& oc);     // ... shoal.QLinearGlobalAveragePool
KernelPtr make_qlinear_avgpool(const OpContext& oc);  // ... shoal.QLinearAveragePool
KernelPtr make_qlinear_mul(const OpContext& oc);     // ... shoal.QLinearMul
KernelPtr make_softmax(const OpContext& oc);
KernelPtr make_transpose(const OpContext& oc);
KernelPtr make_slice(const OpContext& oc);
KernelPtr make_concat(const OpContext& oc);
KernelPtr make_split(const OpContext& oc);
KernelPtr make_gather(const OpContext& oc);
KernelPtr make_concat_gather(const OpContext& oc);
/// The valid taps of a 2-D window over one channels-last sample (c values a
/// pixel): output pixel p's taps are offsets[first[p] .. first[p + 1]), in
/// the window's order, as element offsets (pool.cpp).
struct WindowTaps {
  std::vector<int64_t> offsets, first;
};
WindowTaps window_taps(const ref::WindowGeometry& g);
KernelPtr make_maxpool(const OpContext& oc);  // pool.cpp
KernelPtr make_pad(const OpContext& oc);     // pad.cpp
KernelPtr make_expand(const OpContext& oc);  // pad.cpp

}  // namespace shoal::cpu::native
