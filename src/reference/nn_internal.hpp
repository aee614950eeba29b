// Private helpers of the neural-network operators (src/reference/nn*.cpp):
// operand access, dtype checks, constant inputs, and the per-family
// registration functions that ops::register_nn (nn.cpp) calls. The helpers
// shared with the other reference operators (fail, opt_input, read_ints,
// strides_of, make_spec, ...) come from ref_util.hpp.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/attrs.hpp"
#include "core/tensor.hpp"
#include "ops/op_table.hpp"
#include "reference/geometry.hpp"
#include "reference/ref_util.hpp"
#include "shoal/error.hpp"

namespace shoal::ref::nn {

using Infos = std::span<const ValueInfo>;
using Refs = std::span<const TensorRef>;

/// Required operand i; throws invalid_argument naming op and operand.
const ValueInfo& need(Infos in, size_t i, const std::string& op,
                      const std::string& what);

/// Throws unsupported unless v is float32 (the runtime dtype of these ops).
void require_f32(const std::string& op, const std::string& what,
                 const ValueInfo& v);
/// Required float32 operands 0 and 1 (e.g. Conv's X and W), checked in that
/// order: both present (need), then both float32.
struct OperandPair {
  const ValueInfo& first;
  const ValueInfo& second;
};
OperandPair need_f32_pair(Infos in, const std::string& op,
                          const std::string& first, const std::string& second);

/// Float contents of a tensor of any numeric dtype (integers: read_ints).
std::vector<double> floats_of(const TensorRef& t, const std::string& op,
                              const std::string& what);
/// Contents of a constant input that shape inference needs; throws
/// unsupported when the value is not known at compile time.
std::vector<int64_t> const_ints(const ValueInfo& v, const std::string& op,
                                const std::string& what);
std::vector<double> const_floats(const ValueInfo& v, const std::string& op,
                                 const std::string& what);

/// axis in [-rank, rank) -> [0, rank); invalid_argument otherwise.
int64_t norm_axis(const std::string& op, int64_t axis, int64_t rank,
                  const std::string& what = "axis");
std::string ints_str(const std::vector<int64_t>& v);
/// Throws internal unless out has the shape inference computed.
void check_out(const std::string& op, const TensorRef& out, const Shape& want);

/// WindowGeometry padded to exactly 3 spatial dims (missing leading dims get
/// size 1, stride 1, no pad), so kernels can use fixed 3-deep loops.
struct Win3 {
  int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
};
Win3 win3(const WindowGeometry& g);
/// The dims of a numpy matmul A x B (MatMul and its quantized forms).
struct MatMulDims {
  Shape batch;    // broadcast batch shape
  Shape a_batch;  // A's batch dims (rank of batch, 1 where broadcast)
  Shape b_batch;
  int64_t m = 1, k = 1, n = 1;
  Shape out;
};
/// Throws invalid_argument (naming `op`) when A and B do not multiply.
MatMulDims matmul_dims(const Shape& a, const Shape& b, const std::string& op = "MatMul");
/// Linear index into a tensor of batch shape `in` for batch position `pos`
/// of the broadcast batch shape (dims of size 1 broadcast).
int64_t batch_offset(const Shape& in, const Shape& pos);

/// [N, C_out, out...]: the output shape of a window op.
Shape window_out_shape(const WindowGeometry& g);

// Operator families, one per file.
void add_conv_ops(std::vector<OpSpec>& t);    // nn_conv.cpp
void add_pool_ops(std::vector<OpSpec>& t);    // nn_pool.cpp
void add_matmul_ops(std::vector<OpSpec>& t);  // nn_matmul.cpp
void add_einsum_ops(std::vector<OpSpec>& t);  // nn_einsum.cpp
void add_layernorm_ops(std::vector<OpSpec>& t);  // nn_layernorm.cpp
void add_reduce_ops(std::vector<OpSpec>& t);  // nn_reduce.cpp
void add_pad_ops(std::vector<OpSpec>& t);     // nn_pad.cpp
void add_resize_ops(std::vector<OpSpec>& t);  // nn_resize.cpp
void add_qlinear_ops(std::vector<OpSpec>& t); // nn_qlinear.cpp
void add_qlookup_ops(std::vector<OpSpec>& t);  // nn_qlookup.cpp

}  // namespace shoal::ref::nn
