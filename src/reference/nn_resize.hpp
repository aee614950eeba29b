// Resize and Upsample: what nn_resize.cpp (attributes and operands) hands to
// the kernel in nn_resize_kernel.cpp (coordinates, taps, the loop).
#pragma once

#include <string>
#include <vector>

#include "reference/nn_internal.hpp"

namespace shoal::ref::nn {

enum class ResizeMode { nearest, linear, cubic };

struct ResizePlan {
  ResizeMode mode = ResizeMode::nearest;
  std::string coord;    // coordinate_transformation_mode
  std::string nearest;  // nearest_mode, or "simple" (Upsample, Resize-10)
  float cubic_a = -0.75f;
  bool exclude_outside = false;  // cubic: taps outside the input get weight 0
  float extrapolation = 0.0f;    // tf_crop_and_resize: value outside the input
  std::vector<float> scales;     // per dim
  // tf_crop_and_resize: the region of the input, per dim, as fractions of
  // (input size - 1); [0, 1] for dims roi does not name.
  std::vector<float> roi_start, roi_end;
  Shape out;
};

/// The plan of a Resize or Upsample (`op`) with attributes `a` and operands
/// `in`: in[0]'s shape (its data is not read) and the values of the scales,
/// sizes and roi operands. Throws Error like the reference kernel.
ResizePlan resize_plan_of(const std::string& op, const Attrs& a, Refs in);

/// The taps of one dim: for output index o, n input indices and weights at
/// [o * n, o * n + n), and whether o maps outside the input
/// (tf_crop_and_resize: the whole output element is the extrapolation
/// value).
struct DimTaps {
  int n = 1;
  std::vector<int64_t> index;
  std::vector<float> weight;
  std::vector<char> outside;
  bool direct = true;  // every output has one tap of weight 1 first
};
DimTaps dim_taps(const ResizePlan& p, size_t d, int64_t in_len, int64_t out_len);

/// y = Resize(x) as planned: in[0] is x, out[0] y of shape p.out.
void resize_kernel(const std::string& op, const ResizePlan& p, Refs in, Refs out);

}  // namespace shoal::ref::nn
