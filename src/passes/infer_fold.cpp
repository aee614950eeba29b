#include <algorithm>
#include <vector>

#include "ops/op_table.hpp"
#include "passes/passes.hpp"
#include "shoal/error.hpp"

namespace shoal::passes {
namespace {

/// Folding a huge value would bloat the program; such nodes run at run time.
constexpr int64_t kMaxFoldBytes = int64_t(64) << 20;

bool foldable(const ops::OpSpec& spec, const ir::Graph& g, const ir::Node& n) {
  if (!spec.runtime) return true;  // e.g. Shape: compile time only
  for (int v : n.inputs)
    if (v >= 0 && !g.values[size_t(v)].is_const()) return false;
  return true;
}

}  // namespace

void infer_and_fold(ir::Graph& g, const Log& log) {
  int folded = 0;
  for (auto& n : g.nodes) {
    const ops::OpSpec* spec = ops::find_op(n.op);
    if (!spec)
      throw Error(ErrorKind::unsupported, g.describe(n) + ": unsupported operator");
    const int nin = int(n.inputs.size());
    if (nin < spec->min_inputs || nin > spec->max_inputs)
      throw Error(ErrorKind::invalid_argument,
                  g.describe(n) + " has " + std::to_string(nin) +
                      " inputs; expected " + std::to_string(spec->min_inputs) +
                      (spec->max_inputs != spec->min_inputs
                           ? " to " + std::to_string(spec->max_inputs)
                           : std::string()));
    std::vector<ops::ValueInfo> in;
    for (int v : n.inputs) {
      ops::ValueInfo vi;
      if (v < 0) {
        vi.present = false;
      } else {
        const ir::Value& val = g.values[size_t(v)];
        if (!val.shape_known)
          throw Error(ErrorKind::internal,
                      g.describe(n) + ": shape of input '" + val.name + "' unknown");
        vi.dtype = val.dtype;
        vi.shape = val.shape;
        vi.constant = val.is_const() ? &*val.constant : nullptr;
      }
      in.push_back(vi);
    }
    std::vector<ops::TypeShape> out;
    try {
      out = spec->infer(n.attrs, in);
    } catch (const Error& e) {
      throw Error(e.kind(), g.describe(n) + ": " + e.what());
    } catch (const std::exception& e) {
      throw Error(ErrorKind::invalid_argument, g.describe(n) + ": " + e.what());
    }
    if (out.size() < n.outputs.size()) {
      // Optional trailing outputs (e.g. Dropout's mask) are not produced.
      for (size_t i = out.size(); i < n.outputs.size(); ++i)
        if (n.outputs[i] >= 0)
          throw Error(ErrorKind::unsupported,
                      g.describe(n) + ": output " + std::to_string(i) +
                          " is not supported");
    }
    for (size_t i = 0; i < n.outputs.size() && i < out.size(); ++i) {
      if (n.outputs[i] < 0) continue;
      ir::Value& v = g.values[size_t(n.outputs[i])];
      v.dtype = out[i].dtype;
      v.shape = out[i].shape;
      v.shape_known = true;
      for (int64_t d : v.shape)
        if (d < 0)
          throw Error(ErrorKind::invalid_argument,
                      g.describe(n) + ": output '" + v.name + "' has shape " +
                          shape_str(v.shape));
      if (!shape_fits(v.shape, v.dtype))
        throw Error(ErrorKind::invalid_argument,
                    g.describe(n) + ": output '" + v.name + "' of shape " +
                        shape_str(v.shape) + " would have 2^62 bytes or more");
    }
    if (!foldable(*spec, g, n)) continue;
    int64_t bytes = 0;
    for (auto& o : out) bytes += shape_numel(o.shape) * int64_t(dtype_size(o.dtype));
    if (bytes > kMaxFoldBytes && spec->runtime) continue;
    std::vector<HostTensor> results;
    std::vector<TensorRef> in_refs, out_refs;
    // Compile-time-only ops (Shape, Size) may read a run-time input: its
    // type and shape are known, its data is not (and not needed).
    for (int v : n.inputs) {
      if (v < 0) {
        in_refs.push_back(TensorRef{});
        continue;
      }
      const ir::Value& val = g.values[size_t(v)];
      in_refs.push_back(val.is_const() ? val.constant->ref()
                                       : TensorRef{val.dtype, val.shape, nullptr});
    }
    for (const auto& o : out) results.emplace_back(o.dtype, o.shape);
    for (auto& r : results) out_refs.push_back(r.ref());
    try {
      spec->reference(n.attrs, in_refs, out_refs);
    } catch (const Error& e) {
      throw Error(e.kind(), g.describe(n) + ": " + e.what());
    }
    for (size_t i = 0; i < n.outputs.size() && i < results.size(); ++i)
      if (n.outputs[i] >= 0) g.values[size_t(n.outputs[i])].constant = std::move(results[i]);
    n.dead = true;
    ++folded;
  }
  for (auto& n : g.nodes) {
    if (n.dead) continue;
    const ops::OpSpec* spec = ops::find_op(n.op);
    if (!spec->runtime)
      throw Error(ErrorKind::unsupported,
                  g.describe(n) + " could not be computed at compile time");
  }
  g.compact();
  if (log) log("folded " + std::to_string(folded) + " nodes into constants");
}

}  // namespace shoal::passes
