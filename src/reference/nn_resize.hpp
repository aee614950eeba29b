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

/// y = Resize(x) as planned: in[0] is x, out[0] y of shape p.out.
void resize_kernel(const std::string& op, const ResizePlan& p, Refs in, Refs out);

}  // namespace shoal::ref::nn
