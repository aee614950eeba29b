// `shoal quantize MODEL.onnx --calibration X.npy -o OUT.qdq.onnx ...`: the
// quantizer lives in the Python package (shoal.quantization, on the onnx
// Python package; see docs/QUANTIZATION.md); this replaces the process with
// `python3 -m shoal.quantization ARGV...`.
#include <string>
#include <vector>

#include "cli.hpp"

namespace shoal::cli {

int cmd_quantize(const std::vector<std::string>& argv) {
  return forward_to_python("shoal.quantization", "Python 3 with numpy and python3-onnx", argv);
}

}  // namespace shoal::cli
