#include "backends/cpu/onednn_common.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "backends/cpu/onednn_packing.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {

std::shared_ptr<dnnl::memory> OneDnnContext::packed_weight(
    const std::string& key, const std::function<dnnl::memory()>& make) {
  // Packing runs under the lock: it happens once per weight at init, and
  // holding the lock keeps two clusters from packing the same weight twice.
  std::lock_guard<std::mutex> lock(mu_);
  auto it = packed_.find(key);
  if (it != packed_.end()) return it->second;
  auto m = std::make_shared<dnnl::memory>(make());
  packed_bytes_ += m->get_desc().get_size();
  packed_.emplace(key, m);
  return m;
}

size_t OneDnnContext::packed_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return packed_bytes_;
}

namespace onednn {
namespace {

constexpr size_t kAlign = 64;

size_t round_up(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

/// The calling thread's workspace, grown on demand. Its contents only live
/// during one kernel execution.
char* thread_workspace(size_t bytes) {
  struct Workspace {
    void* p = nullptr;
    size_t n = 0;
    ~Workspace() { std::free(p); }
  };
  thread_local Workspace ws;
  if (ws.n < bytes) {
    std::free(ws.p);
    ws.p = nullptr;
    ws.n = 0;
    size_t n = round_up(bytes);
    ws.p = std::aligned_alloc(kAlign, n);
    if (!ws.p)
      throw Error(ErrorKind::out_of_memory, "oneDNN workspace of " + std::to_string(n) + " bytes");
    ws.n = n;
  }
  return static_cast<char*>(ws.p);
}

/// A string identifying a memory descriptor's layout, for packed-weight keys.
std::string desc_key(const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  std::ostringstream os;
  os << int(d.data_type) << ':';
  for (int i = 0; i < d.ndims; ++i) os << d.dims[i] << ',';
  os << "f" << int(d.format_kind);
  if (d.format_kind == dnnl_blocked) {
    const auto& b = d.format_desc.blocking;
    os << 's';
    for (int i = 0; i < d.ndims; ++i) os << b.strides[i] << ',';
    os << 'b';
    for (int i = 0; i < b.inner_nblks; ++i) os << b.inner_idxs[i] << 'x' << b.inner_blks[i] << ',';
  } else if (d.format_kind == dnnl_format_kind_wino) {
    // Winograd weights: 2x3 and 4x3 kernels (chosen per batch size) want
    // different layouts of the same dims.
    const auto& w = d.format_desc.wino_desc;
    os << 'w' << int(w.wino_format) << ',' << w.r << ',' << w.alpha << ',' << w.ic << ',' << w.oc
       << ',' << w.ic_block << ',' << w.oc_block << ',' << w.ic2_block << ',' << w.oc2_block << ','
       << w.adj_scale << ',' << w.size;
  } else if (d.format_kind != dnnl_format_kind_undef) {
    // Anything else: every byte of the descriptor.
    const auto* bytes = reinterpret_cast<const unsigned char*>(&d);
    os << 'r';
    for (size_t i = 0; i < sizeof d; ++i) os << std::hex << unsigned(bytes[i]) << std::dec;
  }
  os << 'e' << unsigned(d.extra.flags);
  return os.str();
}

}  // namespace

const program::TensorDesc* OpContext::in(int i) const {
  if (i < 0 || i >= int(ins.inputs.size())) return nullptr;
  int id = ins.inputs[i];
  if (id < 0) return nullptr;
  if (size_t(id) >= prog.tensors.size())
    throw Error(ErrorKind::invalid_argument, what() + ": input " + std::to_string(i) +
                                                 " names tensor " + std::to_string(id) + " of " +
                                                 std::to_string(prog.tensors.size()));
  return &prog.tensors[id];
}

const program::TensorDesc& OpContext::out(int i) const {
  if (i < 0 || i >= int(ins.outputs.size()) || ins.outputs[i] < 0 ||
      size_t(ins.outputs[i]) >= prog.tensors.size())
    throw Error(ErrorKind::invalid_argument,
                what() + ": output " + std::to_string(i) + " is missing");
  return prog.tensors[ins.outputs[i]];
}

const void* OpContext::weight_data(const program::TensorDesc& t) const {
  const uint8_t* base = prog.weights;
  uint64_t size = prog.weights_bytes;
  if (!base && !prog.owned_weights.empty()) {
    base = prog.owned_weights.data();
    size = prog.owned_weights.size();
  }
  // A packed weight spans its reserved bytes (checked against its layout by
  // decode_packing); a plain one its logical size.
  uint64_t need = t.layout == program::Layout::packed
                      ? t.bytes
                      : uint64_t(shape_numel(t.shape)) * dtype_size(t.dtype);
  if (!base || t.offset > size || size - t.offset < need)
    throw Error(ErrorKind::invalid_argument,
                what() + ": weight '" + t.name + "' (offset " + std::to_string(t.offset) + ", " +
                    std::to_string(need) + " bytes) lies outside the weight section of " +
                    std::to_string(size) + " bytes");
  return base + t.offset;
}

std::string OpContext::what() const { return ins.op + " '" + ins.name + "'"; }

bool is_weight(const program::TensorDesc& t) { return t.storage == program::Storage::weight; }

bool read_scalar(const OpContext& oc, const program::TensorDesc* t, float& v) {
  if (!t || !is_weight(*t) || t->dtype != DType::f32 || shape_numel(t->shape) != 1) return false;
  std::memcpy(&v, oc.weight_data(*t), sizeof(float));
  return true;
}

dims to_dims(const Shape& s) {
  if (s.empty()) return {1};
  return dims(s.begin(), s.end());
}

dims plain_strides(const dims& d) {
  dims st(d.size());
  int64_t acc = 1;
  for (size_t i = d.size(); i-- > 0;) {
    st[i] = acc;
    acc *= std::max<int64_t>(d[i], 1);
  }
  return st;
}

dnnl::memory::desc plain_md(const dims& d) {
  return dnnl::memory::desc(d, dt::f32, plain_strides(d));
}

dnnl::memory::desc user_md(const program::TensorDesc& t, const dims& d) {
  if (t.layout != program::Layout::channels_last || d.size() < 3 || d.size() != t.shape.size())
    return plain_md(d);
  // Strides of the (N, spatial..., C) order, expressed per logical dim.
  dims st(d.size());
  dnnl::memory::dim acc = 1;
  st[1] = acc;
  acc *= std::max<int64_t>(d[1], 1);
  for (size_t i = d.size(); i-- > 2;) {
    st[i] = acc;
    acc *= std::max<int64_t>(d[i], 1);
  }
  st[0] = acc;
  return dnnl::memory::desc(d, dt::f32, st);
}

dt dnnl_type(DType t) {
  switch (t) {
    case DType::u8:
      return dt::u8;
    case DType::i8:
      return dt::s8;
    case DType::i32:
      return dt::s32;
    default:
      return dt::f32;
  }
}

dnnl::memory::desc typed_md(const program::TensorDesc& t, const dims& d) {
  const dnnl::memory::desc f = user_md(t, d);
  const auto& st = f.data.format_desc.blocking.strides;
  return dnnl::memory::desc(d, dnnl_type(t.dtype), dims(st, st + d.size()));
}

bool same_layout(const program::TensorDesc& a, const program::TensorDesc& b) {
  return a.layout == b.layout;
}

dnnl::memory::desc strided_md(const dims& d, const dims& strides) {
  return dnnl::memory::desc(d, dt::f32, strides);
}

dnnl::memory::desc any_md(const dims& d, dt type) { return dnnl::memory::desc(d, type, tag::any); }

dt compute_type(const OpContext& oc) {
  if (!runs_bf16(oc.ins)) return dt::f32;
  const std::string missing = bf16_unavailable();
  if (!missing.empty())
    throw Error(ErrorKind::unsupported,
                oc.what() + " was compiled for bf16, which cannot run here: " + missing);
  return dt::bf16;
}

dnnl::primitive_attr base_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

bool eltwise_chain(const ref::Activation& act, std::vector<EltOp>& ops) {
  using A = ref::Act;
  using alg = dnnl::algorithm;
  switch (act.kind) {
    case A::none:
      return true;
    case A::relu:
      ops.push_back({alg::eltwise_relu, 0, 0});
      return true;
    case A::leaky_relu:
      ops.push_back({alg::eltwise_relu, act.alpha, 0});
      return true;
    case A::clip:
      ops.push_back({alg::eltwise_clip, act.alpha, act.beta});
      return true;
    case A::sigmoid:
      ops.push_back({alg::eltwise_logistic, 0, 0});
      return true;
    case A::tanh:
      ops.push_back({alg::eltwise_tanh, 0, 0});
      return true;
    case A::elu:
      ops.push_back({alg::eltwise_elu, act.alpha, 0});
      return true;
    case A::hard_sigmoid:
      // max(0, min(1, alpha*x + beta)): oneDNN 2.6 has no hardsigmoid.
      ops.push_back({alg::eltwise_linear, act.alpha, act.beta});
      ops.push_back({alg::eltwise_clip, 0.0f, 1.0f});
      return true;
    case A::hard_swish: {
      // oneDNN 2.6's hardswish is x * relu6(x + 3) / 6, ONNX's fixed form.
      bool unset = act.alpha == 0 && act.beta == 0;
      bool onnx = std::fabs(act.alpha - 1.0f / 6) < 1e-6f && std::fabs(act.beta - 0.5f) < 1e-6f;
      if (!unset && !onnx) return false;
      ops.push_back({alg::eltwise_hardswish, 0, 0});
      return true;
    }
    case A::silu:
      ops.push_back({alg::eltwise_swish, 1.0f, 0});
      return true;
    case A::gelu:
      ops.push_back({act.alpha != 0 ? alg::eltwise_gelu_tanh : alg::eltwise_gelu_erf, 0, 0});
      return true;
  }
  return false;
}

bool append_activation(dnnl::post_ops& po, const ref::Activation& act) {
  std::vector<EltOp> ops;
  if (!eltwise_chain(act, ops)) return false;
  for (const EltOp& e : ops) po.append_eltwise(1.0f, e.alg, e.alpha, e.beta);
  return true;
}

bool fused_attr(const OpContext& oc, const program::TensorDesc* r, dnnl::primitive_attr& attr,
                bool without_activation) {
  const program::TensorDesc& y = oc.out(0);
  if (r && r->shape != y.shape)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": residual '" + r->name + "' has shape " +
                                                 shape_str(r->shape) + ", expected " +
                                                 shape_str(y.shape));
  dnnl::post_ops po;
  if (r) po.append_sum(1.0f);
  if (!without_activation && !append_activation(po, ref::activation_from_attrs(oc.ins.attrs)))
    return false;
  attr = base_attr();
  attr.set_post_ops(po);
  return true;
}

dims window_out_dims(const OpContext& oc, const ref::WindowGeometry& g) {
  const program::TensorDesc& y = oc.out(0);
  dims yd = {g.n, g.c_out};
  yd.insert(yd.end(), g.out.begin(), g.out.end());
  if (to_dims(y.shape) != yd)
    throw Error(ErrorKind::invalid_argument, oc.what() + ": output '" + y.name + "' has shape " +
                                                 shape_str(y.shape) + ", the geometry gives " +
                                                 shape_str(Shape(yd.begin(), yd.end())));
  return yd;
}

// --- DnnlKernel --------------------------------------------------------------

dnnl::memory DnnlKernel::bind_input(int index, const dnnl::memory::desc& md, size_t offset) {
  dnnl::memory m(md, engine_, DNNL_MEMORY_NONE);
  bindings_.push_back({m, index, false, offset});
  return m;
}

dnnl::memory DnnlKernel::bind_output(int index, const dnnl::memory::desc& md, size_t offset) {
  dnnl::memory m(md, engine_, DNNL_MEMORY_NONE);
  bindings_.push_back({m, index, true, offset});
  return m;
}

dnnl::memory DnnlKernel::operand(const OpContext& oc, int index, const dnnl::memory::desc& md,
                                 size_t offset) {
  const program::TensorDesc* t = oc.in(index);
  if (t && is_weight(*t))
    return dnnl::memory(md, engine_,
                        static_cast<uint8_t*>(const_cast<void*>(oc.weight_data(*t))) + offset);
  return bind_input(index, md, offset);
}

dnnl::memory DnnlKernel::temp(const dnnl::memory::desc& md) {
  return temp_at(md, reserve_temp(md.get_size()));
}

size_t DnnlKernel::reserve_temp(size_t bytes) {
  const size_t at = temp_bytes_;
  temp_bytes_ += round_up(bytes);
  return at;
}

dnnl::memory DnnlKernel::temp_at(const dnnl::memory::desc& md, size_t slot) {
  dnnl::memory m(md, engine_, DNNL_MEMORY_NONE);
  temps_.push_back({m, slot});
  return m;
}

void DnnlKernel::add(dnnl::primitive p, const dnnl::primitive_desc_base& pd, Args args) {
  Step s;
  s.prim = std::move(p);
  s.args = std::move(args);
  dnnl::memory::desc sd = pd.scratchpad_desc();
  if (!sd.is_zero() && sd.get_size() > 0) {
    s.scratch = dnnl::memory(sd, engine_, DNNL_MEMORY_NONE);
    s.args[DNNL_ARG_SCRATCHPAD] = s.scratch;
    scratch_bytes_ = std::max(scratch_bytes_, round_up(sd.get_size()));
  }
  steps_.push_back(std::move(s));
}

void DnnlKernel::add_reorder(const dnnl::memory& src, const dnnl::memory& dst, bool skip_if_same) {
  dnnl::reorder::primitive_desc pd(src, dst, base_attr());
  add(dnnl::reorder(pd), pd, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
  steps_.back().skip_if_same = skip_if_same;
}

void DnnlKernel::add_host(HostFn fn) {
  Step s;
  s.host = std::move(fn);
  steps_.push_back(std::move(s));
}

void DnnlKernel::set_impl(const dnnl::primitive_desc_base& pd) {
  impl_ = std::string("onednn:") + pd.impl_info_str();
  const dt src = pd.src_desc().data_type();
  precision_ = src == dt::bf16 ? "bf16" : src == dt::u8 || src == dt::s8 ? "int8" : "f32";
}

void DnnlKernel::execute(device::ExecContext& ctx, std::span<void* const> in,
                         std::span<void* const> out) {
  auto* stream = static_cast<dnnl::stream*>(ctx.backend_state);
  if (!stream)
    throw Error(ErrorKind::internal, "oneDNN kernel " + impl_ + " executed without a dnnl::stream");
  for (const Binding& b : bindings_) {
    std::span<void* const> ops = b.output ? out : in;
    if (size_t(b.index) >= ops.size() || ops[b.index] == nullptr)
      throw Error(ErrorKind::internal, "oneDNN kernel " + impl_ + ": " +
                                           (b.output ? "output " : "input ") +
                                           std::to_string(b.index) + " was not given");
    b.mem.set_data_handle(static_cast<uint8_t*>(ops[b.index]) + b.offset);
  }
  if (temp_bytes_ + scratch_bytes_ > 0) {
    char* base = thread_workspace(temp_bytes_ + scratch_bytes_);
    for (const Temp& t : temps_) t.mem.set_data_handle(base + t.offset);
    for (const Step& s : steps_)
      if (s.scratch) s.scratch.set_data_handle(base + temp_bytes_);
  }
  try {
    for (Step& s : steps_) {
      if (s.host) {
        s.host(ctx.threads, in, out);
        continue;
      }
      if (s.skip_if_same &&
          s.args.at(DNNL_ARG_FROM).get_data_handle() == s.args.at(DNNL_ARG_TO).get_data_handle())
        continue;
      s.prim.execute(*stream, s.args);
    }
    stream->wait();
  } catch (const dnnl::error& e) {
    throw Error(ErrorKind::device, "oneDNN kernel " + impl_ + " failed: " + e.what());
  }
}

// --- packed weights
// ------------------------------------------------------------

std::shared_ptr<dnnl::memory> packed_weight(const OpContext& oc, const program::TensorDesc& t,
                                            const dnnl::memory::desc& plain,
                                            const dnnl::memory::desc& target,
                                            const std::string& tag, float scale) {
  const dnnl::engine& eng = oc.ctx.engine;
  void* data = const_cast<void*>(oc.weight_data(t));
  dnnl::memory::desc from = plain;  // the layout of the stored bytes
  std::ostringstream key;
  key << t.name << '@' << t.offset << '|' << tag << '|' << desc_key(target);
  if (t.layout == program::Layout::packed) {
    // Stored packed by the compiler, with any scale already applied: used in
    // place (no copy, no cache entry) when in the layout wanted here, else
    // (the program was compiled for another CPU) reordered once.
    Packing p = decode_packing(t);
    if (p.plain != plain || p.scale != scale)
      throw Error(ErrorKind::invalid_argument,
                  oc.what() + ": weight '" + t.name +
                      "' was packed for another use of it (its packing "
                      "records another view or scale)");
    if (p.packed == target) return std::make_shared<dnnl::memory>(target, eng, data);
    if (same_wino(p.wino, target))  // the stored Winograd copy
      return std::make_shared<dnnl::memory>(target, eng,
                                            static_cast<uint8_t*>(data) + p.wino_offset);
    if (p.copy.data.ndims > 0 && p.copy == target)  // the stored int8 copy
      return std::make_shared<dnnl::memory>(target, eng,
                                            static_cast<uint8_t*>(data) + p.copy_offset);
    from = p.packed;
    scale = 1.0f;
    key << "|from=" << desc_key(from);
  } else if (plain == target && scale == 1.0f) {
    return std::make_shared<dnnl::memory>(plain, eng, data);
  }
  if (scale != 1.0f) key << "|scale=" << scale;
  return oc.ctx.packed_weight(key.str(), [&] {
    dnnl::memory src(from, eng, data);
    dnnl::memory dst(target, eng);
    dnnl::primitive_attr attr;
    if (scale != 1.0f) attr.set_output_scales(0, {scale});
    dnnl::stream s(eng);
    dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, attr)).execute(s, src, dst);
    s.wait();
    return dst;
  });
}

}  // namespace onednn
}  // namespace shoal::cpu
