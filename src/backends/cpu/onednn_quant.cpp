#include "backends/cpu/onednn_quant.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "backends/cpu/omp_team.hpp"

namespace shoal::cpu::onednn {
namespace {

class RequantizeKernel final : public device::Kernel {
 public:
  RequantizeKernel(std::unique_ptr<DnnlKernel> inner, DType type, int32_t zp, int64_t n)
      : inner_(std::move(inner)), type_(type), zp_(zp), buf_(size_t(n)) {}
  void execute(device::ExecContext& ctx, std::span<void* const> in,
               std::span<void* const> out) override {
    void* tmp[1] = {buf_.data()};
    inner_->execute(ctx, in, tmp);
    const int threads = team_threads(ctx.threads);
    if (type_ == DType::u8)
      store(static_cast<uint8_t*>(out[0]), threads);
    else
      store(static_cast<int8_t*>(out[0]), threads);
  }
  std::string impl() const override { return inner_->impl(); }
  std::string precision() const override { return inner_->precision(); }

 private:
  template <class Q>
  void store(Q* y, [[maybe_unused]] int threads) const {  // clang: used by OpenMP only
    const float lo = float(std::numeric_limits<Q>::min()) - float(zp_);
    const float hi = float(std::numeric_limits<Q>::max()) - float(zp_);
    const float* v = buf_.data();
    const int64_t n = int64_t(buf_.size());
    const int32_t zp = zp_;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      float t = std::min(hi, std::max(lo, v[i]));
      t = (t + 12582912.0f) - 12582912.0f;  // round half to even (|t| <= 2^22)
      y[i] = Q(int32_t(t) + zp);
    }
  }
  std::unique_ptr<DnnlKernel> inner_;
  DType type_;
  int32_t zp_;
  std::vector<float> buf_;
};

}  // namespace

bool is_int8_weight(const program::TensorDesc& t) {
  return is_weight(t) && t.dtype == DType::i8 &&
         (t.layout == program::Layout::plain || t.layout == program::Layout::packed);
}

dnnl::memory::desc int8_plain(const dims& wd) {
  return dnnl::memory::desc(wd, dt::s8, plain_strides(wd));
}

bool read_floats(const OpContext& oc, const program::TensorDesc* t, std::vector<float>& v) {
  if (!t || !is_weight(*t) || t->dtype != DType::f32 || t->layout != program::Layout::plain)
    return false;
  v.resize(size_t(shape_numel(t->shape)));
  std::memcpy(v.data(), oc.weight_data(*t), v.size() * sizeof(float));
  return !v.empty();
}

bool read_ints(const OpContext& oc, const program::TensorDesc* t, std::vector<int32_t>& v) {
  if (!t || !is_weight(*t) || t->layout != program::Layout::plain) return false;
  const int64_t n = shape_numel(t->shape);
  const void* p = oc.weight_data(*t);
  v.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    switch (t->dtype) {
      case DType::u8:
        v[size_t(i)] = static_cast<const uint8_t*>(p)[i];
        break;
      case DType::i8:
        v[size_t(i)] = static_cast<const int8_t*>(p)[i];
        break;
      default:
        return false;
    }
  }
  return !v.empty();
}

std::unique_ptr<device::Kernel> requantize_after(std::unique_ptr<DnnlKernel> inner, DType type,
                                                 int32_t zero_point, int64_t n) {
  return std::make_unique<RequantizeKernel>(std::move(inner), type, zero_point, n);
}

}  // namespace shoal::cpu::onednn
