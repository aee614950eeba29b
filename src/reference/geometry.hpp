// Window geometry of convolutions and pools, computed in one place for the
// shape inference, the reference kernels and the oneDNN kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "core/attrs.hpp"

namespace shoal::ref {

/// Resolved geometry over the spatial dims (1-3 of them).
struct WindowGeometry {
  int64_t n = 0, c_in = 0, c_out = 0, group = 1;
  std::vector<int64_t> in;        // input spatial sizes
  std::vector<int64_t> out;       // output spatial sizes
  std::vector<int64_t> kernel;    // kernel spatial sizes
  std::vector<int64_t> stride;
  std::vector<int64_t> dilation;  // 1 = dense
  std::vector<int64_t> pad_begin, pad_end;
  std::vector<int64_t> output_padding;  // ConvTranspose only
  int spatial() const { return int(in.size()); }
};

/// Conv: x [N,C,spatial...], w [M, C/group, k...]. Resolves auto_pad
/// (NOTSET, VALID, SAME_UPPER, SAME_LOWER). Throws Error(invalid_argument)
/// for zero/negative strides, kernels larger than the padded input, channel
/// mismatches.
WindowGeometry conv_geometry(const Attrs& a, const Shape& x, const Shape& w);
/// ConvTranspose: x [N,C,...], w [C, M/group, k...]; honours output_shape,
/// output_padding.
WindowGeometry conv_transpose_geometry(const Attrs& a, const Shape& x,
                                       const Shape& w);
/// MaxPool / AveragePool: kernel_shape required; ceil_mode honoured.
WindowGeometry pool_geometry(const Attrs& a, const Shape& x);

/// Fused activation, as the compiler's fusion pass writes it on Conv, Gemm
/// and MatMul: attrs "activation" (ONNX op name, "" = none),
/// "activation_alpha", "activation_beta". The semantics of a fused node are
/// y = act(op(...) + bias + residual).
enum class Act { none, relu, leaky_relu, clip, sigmoid, tanh, hard_sigmoid,
                 hard_swish, elu, silu, gelu };
struct Activation {
  Act kind = Act::none;
  float alpha = 0, beta = 0;  // LeakyRelu/Elu alpha; Clip min/max; HardSigmoid;
                              // Gelu: alpha 1 = tanh approximation
  float operator()(float x) const;
};
Activation activation_from_attrs(const Attrs& a);
/// shoal.PointwiseDepthwise: the attributes of its 1x1 convolution (the
/// activation it holds as pw_activation*, nothing else).
Attrs pointwise_attrs(const Attrs& a);
/// The Activation of a standalone activation op (e.g. op "Clip" with its
/// attributes/constant inputs already turned into alpha/beta).
Activation activation_of(const std::string& op, float alpha, float beta);
/// Default alpha/beta of each activation op as ONNX defines them.
void activation_defaults(const std::string& op, float& alpha, float& beta);
bool is_fusable_activation(const std::string& op);

}  // namespace shoal::ref
