// Graph passes. Each takes the graph in topological order and leaves it so.
#pragma once

#include <functional>
#include <string>

#include "ir/graph.hpp"

namespace shoal::passes {

using Log = std::function<void(const std::string&)>;

/// Infers every value's dtype and shape through the op table and folds every
/// node whose inputs are all known (constants, Shape of static tensors, the
/// exporters' Shape/Gather/Concat chains) into a constant.
void infer_and_fold(ir::Graph& g, const Log& log);
/// QDQ models: DequantizeLinear -> Conv [-> Relu|Clip] -> QuantizeLinear
/// becomes one int8 QLinearConv (fuse_qdq.cpp). Runs before infer_and_fold.
void fuse_qdq(ir::Graph& g, const Log& log);
/// DequantizeLinear(a), DequantizeLinear(b) -> Add [-> Relu|Clip] ->
/// QuantizeLinear, a and b of one shape, becomes one int8 shoal.QLinearAdd
/// (fuse_qdq.cpp). Runs after infer_and_fold (it needs the shapes).
void fuse_qdq_add(ir::Graph& g, const Log& log);
/// Float32 functions of one 8-bit tensor (elementwise ops on its per-tensor
/// DequantizeLinear: SiLU, Sigmoid, ...) read by a QuantizeLinear, by a
/// GlobalAveragePool -> QuantizeLinear, or by a Mul -> QuantizeLinear become
/// table lookups: shoal.QLinearLookup, shoal.QLinearGlobalAveragePool,
/// shoal.QLinearMul; DequantizeLinear'd inputs of a MaxPool or Concat read by
/// a QuantizeLinear make it pool or join the bytes (fuse_qdq_lookup.cpp).
/// Runs after fuse_qdq_add.
void fuse_qdq_lookup(ir::Graph& g, const Log& log);
/// Removes nodes that no output depends on, before anything infers, folds or
/// fuses them (remove_dead_and_identity repeats it after the rewrites).
void remove_unused(ir::Graph& g, const Log& log);
/// Removes nodes that no output depends on, and Identity/Dropout nodes and
/// Pads that pad nothing.
void remove_dead_and_identity(ir::Graph& g, const Log& log);
/// A Reshape of a batch-carrying value whose constant target shape starts
/// with the batch, 1, as exporters write it at batch 1, gets 0 there (ONNX:
/// copy the input's dim 0): the same at batch 1, and samples can then be
/// stacked through it (ViT's patch flattening).
void batch_generic_reshapes(ir::Graph& g, const Log& log);
/// Folds an inference BatchNormalization into the preceding Conv or Gemm.
void fold_batchnorm(ir::Graph& g, const Log& log);
/// Replaces a channel Concat read only by a 1x1 Conv (possibly through a
/// MaxPool) by partial convolutions over its parts, summed.
void split_concat_conv(ir::Graph& g, const Log& log);
/// A two-operand float32 Einsum that is a (batched) matrix product ->
/// Transpose/Reshape around one MatMul (src/passes/einsum.cpp); the others
/// stay and run the reference kernel.
void lower_einsum(ir::Graph& g, const Log& log);
/// ReduceL2/L1/SumSquare/LogSum -> an elementwise op and ReduceSum, which
/// have fast kernels (src/passes/lower_reduce.cpp).
void lower_reductions(ir::Graph& g, const Log& log);
/// A Pad of zeros around the spatial dims read only by an AveragePool that
/// counts padding -> the pool's pads, count_include_pad=1
/// (src/passes/fold_pad.cpp).
void fold_pad_into_pool(ir::Graph& g, const Log& log);
/// Rewrites the decomposed forms exporters write as one node each:
/// Mul(x, Sigmoid(x)) -> shoal.Silu, Mul(x, HardSigmoid(x)) -> HardSwish,
/// Erf's GELU -> Gelu, and ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div
/// [/Mul/Add] over trailing axes -> LayerNormalization.
void recognize_composites(ir::Graph& g, const Log& log);
/// MatMul(A, constant B) + constant bias of N values -> MatMul with the bias
/// as input 2; an int8 shoal.QMatMul with a float32 result takes such a bias
/// as its post_bias (input 9).
void fuse_matmul_bias(ir::Graph& g, const Log& log);
/// Fuses a residual Add into the Conv producing one of its operands, then
/// activations into the Conv/Gemm/MatMul (or float-result shoal.QMatMul)
/// producing their input.
void fuse_residual_add(ir::Graph& g, const Log& log);
void fuse_activations(ir::Graph& g, const Log& log);
/// An inference BatchNormalization (with its fused activation) whose input
/// is a channel Concat read by nothing else becomes the Concat's per-channel
/// affine map: the Concat writes act(x * scale + shift) (attributes
/// affine_scale, affine_shift), one pass instead of a copy and a
/// normalization (DenseNet's blocks).
void fuse_concat_batchnorm(ir::Graph& g, const Log& log);

/// A 1x1 Conv whose output (over 1.5 MiB a sample) only a depthwise Conv
/// reads -> one shoal.PointwiseDepthwise (src/passes/fuse_pwdw.cpp), which
/// the CPU kernel runs in bands of rows, the expanded tensor kept in cache.
void fuse_pointwise_depthwise(ir::Graph& g, const Log& log);
/// Mul(x, s), s a run-time per-channel scale [N or 1, C, 1, 1] of x read
/// only by a Conv with at most half as many weights as x has elements per
/// sample (a squeeze-excitation's scale and the
/// block's projection) -> the Conv's input 4: the kernel scales the weights
/// instead (src/passes/fuse_channel_scale.cpp).
void fuse_channel_scale(ir::Graph& g, const Log& log);
/// Gather (constant 1-D indices) of a Concat along the same axis ->
/// shoal.ConcatGather over the Concat's inputs, and Slices along that axis
/// of one -> shoal.ConcatGathers of the indices they select: a channel
/// shuffle in one copy (src/passes/fuse_concat_gather.cpp).
void fuse_concat_gather(ir::Graph& g, const Log& log);
/// Marks 4-D activations passed only between kernels that prefer the
/// channels-last layout (NHWC), so that no reorder happens between them.
/// Graph inputs and outputs, and anything a view or another op reads, stay
/// plain NCHW.
void assign_layouts(ir::Graph& g, const Log& log);

/// Helpers shared by the passes.
bool is_graph_output(const ir::Graph& g, int value);
/// Replaces every use of value `from` by value `to` (nodes and outputs).
void replace_uses(ir::Graph& g, int from, int to);
/// The constant float32 parameters of an inference BatchNormalization: one
/// value per channel each (c of them).
struct BatchNormParams {
  const HostTensor *scale = nullptr, *bias = nullptr, *mean = nullptr, *var = nullptr;
  int64_t c = 0;
};
/// Whether `bn` is an inference BatchNormalization (no training mode, no
/// statistics output used) whose four parameters are float32 constants of
/// one length; fills `p`.
bool inference_batchnorm(const ir::Graph& g, const ir::Node& bn, BatchNormParams& p);
/// Adds a constant value holding `data` (its dtype and shape); returns its id.
int add_constant(ir::Graph& g, std::string name, HostTensor data);
/// Adds a run-time float32 value of a known `shape`; returns its id.
int add_f32_value(ir::Graph& g, std::string name, Shape shape);

}  // namespace shoal::passes
