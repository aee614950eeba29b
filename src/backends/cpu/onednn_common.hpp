// Internal helpers of the oneDNN kernels: the generic step-list kernel,
// operand access, memory descriptors and activation post-ops.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backends/cpu/onednn_kernels.hpp"
#include "reference/geometry.hpp"

namespace shoal::cpu::onednn {

using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using KernelPtr = std::unique_ptr<device::Kernel>;

/// The instruction being lowered, with checked access to its operands.
struct OpContext {
  const program::Instruction& ins;
  const program::ProgramData& prog;
  OneDnnContext& ctx;
  /// Threads of the cluster that will run the kernel (its OpenMP team).
  int threads = 1;

  int num_inputs() const { return int(ins.inputs.size()); }
  /// The descriptor of input i, or nullptr when absent (or beyond the list).
  const program::TensorDesc* in(int i) const;
  const program::TensorDesc& out(int i) const;
  /// The bytes of a weight tensor (checked against the weight section).
  const void* weight_data(const program::TensorDesc& t) const;
  /// "Conv 'name'", for messages.
  std::string what() const;
};

bool is_weight(const program::TensorDesc& t);
/// Reads a scalar f32 weight (Clip's min/max); false when not a constant f32.
bool read_scalar(const OpContext& oc, const program::TensorDesc* t, float& v);

/// Shape -> dims; a scalar becomes {1}.
dims to_dims(const Shape& s);
/// Dense row-major strides of `d`.
dims plain_strides(const dims& d);
/// f32 dense row-major descriptor.
dnnl::memory::desc plain_md(const dims& d);
/// f32 descriptor of operand `t` viewed with dims `d`, in the tensor's
/// layout: channels-last (N, spatial..., C) when the program says so and `d`
/// has the tensor's rank, else dense row-major.
dnnl::memory::desc user_md(const program::TensorDesc& t, const dims& d);
/// oneDNN's type for u8, i8, i32 (f32 for the rest), and user_md with the
/// tensor's own element type.
dt dnnl_type(DType t);
dnnl::memory::desc typed_md(const program::TensorDesc& t, const dims& d);
/// Whether two operands are stored in the same layout.
bool same_layout(const program::TensorDesc& a, const program::TensorDesc& b);
/// f32 descriptor with explicit strides.
dnnl::memory::desc strided_md(const dims& d, const dims& strides);
/// Descriptor letting the primitive choose the layout (f32 by default).
dnnl::memory::desc any_md(const dims& d, dt type = dt::f32);
/// The data type the instruction's heavy operands (source, weights) are
/// computed in: bf16 when the compiler asked for it (kPrecisionAttr), else
/// f32. Throws Error(unsupported) naming the layer and the missing
/// instruction set when this CPU cannot run bf16 (no silent emulation).
dt compute_type(const OpContext& oc);

/// A primitive attribute with a user-managed scratchpad (see DnnlKernel).
dnnl::primitive_attr base_attr();

/// One elementwise operation of an activation chain.
struct EltOp {
  dnnl::algorithm alg;
  float alpha = 0, beta = 0;
};
/// Expresses an activation as oneDNN eltwise operations (HardSigmoid needs
/// two). Returns false when oneDNN 2.6 cannot express it.
bool eltwise_chain(const ref::Activation& act, std::vector<EltOp>& ops);
/// Appends the activation as eltwise post-ops; false when not expressible.
bool append_activation(dnnl::post_ops& po, const ref::Activation& act);
/// The attribute of a fused op: base_attr with a sum post-op for the
/// residual `r` (when not null; it must have output 0's shape) and then the
/// instruction's fused activation (unless without_activation: a kernel
/// applying it itself). False when oneDNN cannot express it.
bool fused_attr(const OpContext& oc, const program::TensorDesc* r, dnnl::primitive_attr& attr,
                bool without_activation = false);

/// [N, C_out, out...], the output dims of a window op (Conv, pools);
/// throws invalid_argument when output 0 does not have them.
dims window_out_dims(const OpContext& oc, const ref::WindowGeometry& g);

/// A kernel that runs a fixed list of oneDNN primitives. Memories bound to
/// the instruction's operands get their data handles at each execute; temporary
/// memories and scratchpads live in a thread-local workspace shared by all
/// kernels running on the thread (kernels of one cluster run one at a time).
class DnnlKernel : public device::Kernel {
 public:
  using Args = std::unordered_map<int, dnnl::memory>;

  explicit DnnlKernel(const OpContext& oc) : engine_(oc.ctx.engine) {}

  /// A memory whose handle is in[index] (or out[index]) at execution, plus
  /// `offset` bytes.
  dnnl::memory bind_input(int index, const dnnl::memory::desc& md, size_t offset = 0);
  dnnl::memory bind_output(int index, const dnnl::memory::desc& md, size_t offset = 0);
  /// Input `index`, from byte `offset` on, as a memory of layout `md`: over
  /// the weight section when the operand is a weight, else bound at
  /// execution.
  dnnl::memory operand(const OpContext& oc, int index, const dnnl::memory::desc& md,
                       size_t offset = 0);
  /// A temporary memory in the thread-local workspace.
  dnnl::memory temp(const dnnl::memory::desc& md);
  /// Reserves `bytes` of the workspace for temporaries that share them (one
  /// buffer reused by steps in turn); returns the slot's offset.
  size_t reserve_temp(size_t bytes);
  /// A temporary memory at a reserved slot (md no larger than the slot).
  dnnl::memory temp_at(const dnnl::memory::desc& md, size_t slot);
  /// Keeps a shared packed weight alive as long as the kernel.
  void keep(std::shared_ptr<dnnl::memory> m) { kept_.push_back(std::move(m)); }

  /// Appends a primitive; adds its scratchpad argument.
  void add(dnnl::primitive p, const dnnl::primitive_desc_base& pd, Args args);
  /// Appends a reorder (a copy between layouts). With skip_if_same, the copy
  /// is skipped when both memories have the same data handle at execution.
  void add_reorder(const dnnl::memory& src, const dnnl::memory& dst, bool skip_if_same = false);
  void set_impl(const dnnl::primitive_desc_base& pd);
  /// Appends to the implementation's name (a step of the kernel's own).
  void add_to_impl(std::string_view what) { impl_ += what; }
  /// A step run on the host between the primitives (the CPU stream runs
  /// them in order, each to completion): fn(threads of the team running the
  /// kernel, the kernel's inputs, its outputs).
  using HostFn =
      std::function<void(int threads, std::span<void* const> in, std::span<void* const> out)>;
  void add_host(HostFn fn);

  void execute(device::ExecContext& ctx, std::span<void* const> in,
               std::span<void* const> out) override;
  std::string impl() const override { return impl_; }
  std::string precision() const override { return precision_; }

 private:
  struct Binding {
    dnnl::memory mem;
    int index;
    bool output;
    size_t offset;
  };
  struct Temp {
    dnnl::memory mem;
    size_t offset;
  };
  struct Step {
    dnnl::primitive prim;
    Args args;
    bool skip_if_same = false;
    dnnl::memory scratch;  // empty when none
    HostFn host;           // set for a host step (no primitive)
  };

  dnnl::engine engine_;
  std::vector<Binding> bindings_;
  std::vector<Temp> temps_;
  std::vector<Step> steps_;
  std::vector<std::shared_ptr<dnnl::memory>> kept_;
  size_t temp_bytes_ = 0;     // workspace bytes of the temporaries
  size_t scratch_bytes_ = 0;  // largest scratchpad, after the temporaries
  std::string impl_ = "onednn";
  std::string precision_ = "f32";
};

/// A kernel made of parts that write disjoint pieces of the outputs (bands
/// of output rows), run at once, one per thread of the cluster's OpenMP team.
/// Each part is single-threaded: its primitives were made while oneDNN saw
/// one thread, and oneDNN runs nested in the team's parallel region with one.
class TeamKernel : public device::Kernel {
 public:
  TeamKernel(const dnnl::engine& eng, std::vector<std::unique_ptr<DnnlKernel>> parts,
             std::string impl);
  void execute(device::ExecContext& ctx, std::span<void* const> in,
               std::span<void* const> out) override;
  std::string impl() const override { return impl_; }
  std::string precision() const override { return parts_.front()->precision(); }

 private:
  std::vector<std::unique_ptr<DnnlKernel>> parts_;
  std::vector<dnnl::stream> streams_;  // one per part
  std::string impl_;
};

/// While alive, oneDNN plans the primitives made on this thread for one
/// thread (it reads OpenMP's thread count when a primitive is made).
class OneThreadPlanning {
 public:
  OneThreadPlanning();
  ~OneThreadPlanning();
  OneThreadPlanning(const OneThreadPlanning&) = delete;
  OneThreadPlanning& operator=(const OneThreadPlanning&) = delete;

 private:
  int saved_;
};

/// Returns weight `t` (whose plain layout is `plain`) in layout `target`,
/// shared through ctx.packed_weight. `tag` distinguishes different logical
/// views of one tensor; the values are multiplied by `scale` when it is not 1.
/// When no conversion is needed the weight section is used in place. A weight
/// the compiler stored packed (layout packed, see prepack_weights) is used in
/// place when stored in `target`, else reordered once from its stored layout;
/// its packing must record the same `plain` view and `scale`.
std::shared_ptr<dnnl::memory> packed_weight(const OpContext& oc, const program::TensorDesc& t,
                                            const dnnl::memory::desc& plain,
                                            const dnnl::memory::desc& target,
                                            const std::string& tag, float scale = 1.0f);

/// Builders, one per op family; each returns nullptr for what it cannot do.
KernelPtr make_conv(const OpContext& oc);
/// shoal.PointwiseDepthwise: the 1x1 and depthwise convolutions in bands of
/// rows (onednn_pwdw.cpp).
KernelPtr make_pointwise_depthwise(const OpContext& oc);
KernelPtr make_conv_transpose(const OpContext& oc);
KernelPtr make_pool(const OpContext& oc);
KernelPtr make_global_pool(const OpContext& oc);
KernelPtr make_gemm(const OpContext& oc);
KernelPtr make_matmul(const OpContext& oc);
KernelPtr make_eltwise(const OpContext& oc);
KernelPtr make_batchnorm(const OpContext& oc);
KernelPtr make_binary(const OpContext& oc);
KernelPtr make_softmax(const OpContext& oc);
KernelPtr make_concat(const OpContext& oc);
/// QLinearConv: the int8 convolution (onednn_qconv.cpp); checks its own
/// operands (8-bit activations, constant int8 weights and parameters).
KernelPtr make_qlinear_conv(const OpContext& oc);
/// shoal.QMatMul and QLinearMatMul: the int8 matmul (onednn_qmatmul.cpp);
/// checks its own operands.
KernelPtr make_qmatmul(const OpContext& oc);

/// How a kernel uses its constant weight operand (input 1 of Conv,
/// ConvTranspose, Gemm and MatMul, input 3 of the int8 QLinearConv and
/// shoal.QMatMul; OpSpec::packed_weight): the tensor's plain bytes viewed as the
/// primitive's weights (`plain`: dims and strides), the layout the primitive
/// wants (`target`) and the factor folded into the values (Gemm's alpha).
/// Derived from the very primitive descriptor the kernel builds, so the
/// compiler can store the weight in `target` ahead of time.
struct WeightPlan {
  dnnl::memory::desc plain, target;
  float scale = 1.0f;
};
/// Fills `wp`; false when oneDNN does not take the instruction or its weight
/// is not a constant. May throw like the kernel builders.
bool conv_weight_plan(const OpContext& oc, bool transpose, WeightPlan& wp);
bool gemm_weight_plan(const OpContext& oc, WeightPlan& wp);
bool matmul_weight_plan(const OpContext& oc, WeightPlan& wp);
/// The int8 ops' (weight: input 3, int8; onednn_qconv.cpp, onednn_qmatmul.cpp).
bool qconv_weight_plan(const OpContext& oc, WeightPlan& wp);
bool qmatmul_weight_plan(const OpContext& oc, WeightPlan& wp);
/// Dispatches on the op, after the checks make_onednn_kernel makes: false
/// for instructions that would not get a oneDNN kernel with a packed weight.
bool weight_plan(const OpContext& oc, WeightPlan& wp);

}  // namespace shoal::cpu::onednn
