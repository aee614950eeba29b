// shoal::parse_shape: input shapes as users write them. In the runtime
// library (a plain text parser), so that tools and the Python package have it
// without the compiler.
#include <sstream>
#include <string>
#include <vector>

#include "shoal/shoal.hpp"

namespace shoal {

Shape parse_shape(const std::string& text) {
  auto fail = [&]() -> Error {
    return Error(ErrorKind::invalid_argument,
                 "bad input shape '" + text +
                     "': expected WxHxC (e.g. 224x224x3) or N,C,H,W (e.g. 1,3,224,224)");
  };
  const char sep = text.find('x') != std::string::npos ? 'x' : ',';
  std::vector<int64_t> dims;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, sep)) {
    if (part.empty() || part.find_first_not_of(" 0123456789") != std::string::npos) throw fail();
    try {
      dims.push_back(std::stoll(part));
    } catch (...) {
      throw fail();
    }
    if (dims.back() <= 0 || dims.back() > (int64_t(1) << 31)) throw fail();
  }
  if (dims.empty()) throw fail();
  if (sep == 'x') {  // WxHxC -> [1, C, H, W]
    if (dims.size() != 3) throw fail();
    return {1, dims[2], dims[1], dims[0]};
  }
  return dims;
}

}  // namespace shoal
