// prepack_weights: the compiler stores the weights of Conv, ConvTranspose,
// Gemm and MatMul (and the int8 QLinearConv and shoal.QMatMul) in the layout
// their oneDNN kernels want, so that loading a program does no repacking. The
// layout comes from the primitive descriptor the kernel itself builds
// (weight_plan), on the compiling machine's CPU.
#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "backends/cpu/onednn_common.hpp"
#include "backends/cpu/onednn_packing.hpp"
#include "ops/op_table.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace {

using program::Layout;
using program::ProgramData;
using program::Storage;
using program::TensorDesc;

uint64_t align_up(uint64_t n) {
  return (n + program::kWeightAlign - 1) / program::kWeightAlign * program::kWeightAlign;
}

/// Weight tensors whose bytes overlap another weight tensor's (a dedup or
/// view): packing one would change the other's bytes.
std::vector<bool> shared_weights(const ProgramData& p) {
  std::vector<int> ids;
  for (size_t i = 0; i < p.tensors.size(); ++i)
    if (p.tensors[i].storage == Storage::weight && p.tensors[i].bytes) ids.push_back(int(i));
  std::sort(ids.begin(), ids.end(),
            [&](int a, int b) { return p.tensors[a].offset < p.tensors[b].offset; });
  std::vector<bool> shared(p.tensors.size(), false);
  uint64_t end = 0;
  int last = -1;  // the tensor reaching furthest so far
  for (int id : ids) {
    const TensorDesc& t = p.tensors[id];
    if (last >= 0 && t.offset < end) shared[id] = shared[last] = true;
    if (last < 0 || t.offset + t.bytes > end) {
      end = t.offset + t.bytes;
      last = id;
    }
  }
  return shared;
}

/// A weight converted to its kernel's layout.
struct Packed {
  int tensor;
  std::vector<uint8_t> bytes, packing;
};

/// Packs weight `id` (OpSpec::packed_weight of `ins`) when its kernel wants
/// another layout or a folded scale; false when it stays as it is.
bool pack_one(const program::Instruction& ins, const ProgramData& p, int id, OneDnnContext& ctx,
              const uint8_t* base, Packed& out) {
  const TensorDesc& t = p.tensors[size_t(id)];
  onednn::OpContext oc{ins, p, ctx};
  onednn::WeightPlan wp;
  try {
    if (!onednn::weight_plan(oc, wp)) return false;
  } catch (const dnnl::error&) {
    return false;  // no oneDNN kernel: the reference one uses plain weights
  } catch (const Error&) {
    return false;  // the kernel would fail the same way at load; not ours
  }
  if (wp.plain == wp.target && wp.scale == 1.0f) return false;
  const bool int8 = t.dtype == DType::i8;
  if (!int8 && !onednn::can_encode(wp.plain)) return false;
  const dnnl::engine& eng = ctx.engine;
  dnnl::memory src(wp.plain, eng, const_cast<uint8_t*>(base + t.offset));
  dnnl::stream s(eng);
  auto reorder_to = [&](const dnnl::memory::desc& md, uint8_t* at) {
    dnnl::memory dst(md, eng, at);
    dnnl::primitive_attr attr;
    if (wp.scale != 1.0f) attr.set_output_scales(0, {wp.scale});
    dnnl::reorder(dnnl::reorder::primitive_desc(src, dst, attr)).execute(s, src, dst);
    s.wait();
  };
  out.tensor = id;
  // Winograd and int8 layouts (the latter carry extra data: compensation
  // sums): oneDNN cannot reorder out of them, so the plain bytes stay (for
  // another CPU, a stacked kernel wanting other blocks, and the reference
  // kernels) and the transformed copy follows them: the kernel uses it in
  // place instead of transforming the weights at every load.
  const bool wino = !int8 && wp.scale == 1.0f && onednn::can_encode_wino(wp.target, wp.plain);
  if (int8 && (wp.scale != 1.0f || !onednn::can_encode_copy(wp.target, wp.plain))) return false;
  onednn::Packing pk;
  pk.plain = wp.plain;
  if (wino || int8) {
    const uint64_t plain_bytes = wp.plain.get_size(), at = align_up(plain_bytes);
    out.bytes.assign(at + wp.target.get_size(), 0);
    std::memcpy(out.bytes.data(), base + t.offset, plain_bytes);
    reorder_to(wp.target, out.bytes.data() + at);
    pk.packed = wp.plain;
    (wino ? pk.wino : pk.copy) = wp.target;
    (wino ? pk.wino_offset : pk.copy_offset) = at;
    out.packing = onednn::encode_packing(pk);
    return true;
  }
  if (!onednn::can_encode(wp.target, /*allow_bf16=*/true)) return false;
  out.bytes.assign(wp.target.get_size(), 0);
  reorder_to(wp.target, out.bytes.data());
  pk.packed = wp.target;
  pk.scale = wp.scale;
  out.packing = onednn::encode_packing(pk);
  return true;
}

/// Rebuilds the weight section with the packed bytes in place of the plain
/// ones; tensors sharing the very same bytes keep sharing them.
void rebuild_section(ProgramData& p, const uint8_t* base, uint64_t size,
                     const std::vector<Packed>& packed) {
  std::vector<const Packed*> packed_of(p.tensors.size(), nullptr);
  for (const Packed& k : packed) packed_of[size_t(k.tensor)] = &k;
  std::vector<int> ids;
  for (size_t i = 0; i < p.tensors.size(); ++i)
    if (p.tensors[i].storage == Storage::weight) ids.push_back(int(i));
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int a, int b) { return p.tensors[a].offset < p.tensors[b].offset; });
  std::vector<uint8_t> out;
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> placed;  // old -> new
  for (int id : ids) {
    TensorDesc& t = p.tensors[size_t(id)];
    if (const Packed* k = packed_of[size_t(id)]) {
      uint64_t at = align_up(out.size());
      out.resize(at);
      out.insert(out.end(), k->bytes.begin(), k->bytes.end());
      t.offset = at;
      t.bytes = k->bytes.size();
      t.layout = Layout::packed;
      t.packing = k->packing;
      continue;
    }
    const std::pair<uint64_t, uint64_t> range{t.offset, t.bytes};
    auto it = placed.find(range);
    if (it != placed.end()) {
      t.offset = it->second;
      continue;
    }
    if (t.offset > size || size - t.offset < t.bytes)
      throw Error(ErrorKind::internal, "weight '" + t.name + "' lies outside the weight section");
    uint64_t at = align_up(out.size());
    out.resize(at);
    out.insert(out.end(), base + t.offset, base + t.offset + t.bytes);
    placed.emplace(range, at);
    t.offset = at;
  }
  p.owned_weights = std::move(out);
  p.weights = p.owned_weights.data();
  p.weights_bytes = p.owned_weights.size();
}

}  // namespace

void prepack_weights(ProgramData& p, const std::function<void(const std::string&)>& log) {
  const uint8_t* base = p.weights ? p.weights : p.owned_weights.data();
  const uint64_t size = p.weights ? p.weights_bytes : p.owned_weights.size();
  // Candidates: a weight read by exactly one instruction (as its input 1)
  // and nothing else; graph outputs are copied out as plain bytes.
  std::vector<int> uses(p.tensors.size(), 0);
  for (const program::Instruction& ins : p.instructions)
    for (int32_t t : ins.inputs)
      if (t >= 0 && size_t(t) < p.tensors.size()) ++uses[size_t(t)];
  for (int32_t t : p.outputs)
    if (t >= 0 && size_t(t) < p.tensors.size()) uses[size_t(t)] += 2;
  const std::vector<bool> shared = shared_weights(p);

  OneDnnContext ctx;
  std::vector<Packed> packed;
  uint64_t plain_bytes = 0, packed_bytes = 0;
  int candidates = 0;
  for (const program::Instruction& ins : p.instructions) {
    const ops::OpSpec* spec = ops::find_op(ins.op);
    if (!spec || spec->packed_weight < 0 || ins.inputs.size() <= size_t(spec->packed_weight))
      continue;
    const int id = ins.inputs[size_t(spec->packed_weight)];
    if (id < 0 || size_t(id) >= p.tensors.size()) continue;
    const TensorDesc& t = p.tensors[size_t(id)];
    // float32 weights; int8 ones of the int8 ops (input 3)
    const bool int8 = t.dtype == DType::i8 && spec->packed_weight == 3;
    const uint64_t logical = uint64_t(shape_numel(t.shape)) * (int8 ? 1 : sizeof(float));
    if (t.storage != Storage::weight || t.layout != Layout::plain ||
        (t.dtype != DType::f32 && !int8) || logical == 0 || t.offset > size ||
        size - t.offset < logical)
      continue;
    ++candidates;
    if (uses[size_t(id)] != 1 || shared[size_t(id)]) continue;
    Packed k;
    if (!pack_one(ins, p, id, ctx, base, k)) continue;
    plain_bytes += logical;
    packed_bytes += k.bytes.size();
    packed.push_back(std::move(k));
  }
  if (packed.empty()) {
    if (log)
      log("prepacked no weights (" + std::to_string(candidates) +
          " conv/matmul weights, none needing another layout)");
    return;
  }
  const uint64_t before = size;
  rebuild_section(p, base, size, packed);
  if (log)
    log("prepacked " + std::to_string(packed.size()) + " of " + std::to_string(candidates) +
        " conv/matmul weights for oneDNN: " + std::to_string(plain_bytes) + " plain bytes -> " +
        std::to_string(packed_bytes) + " packed; weight section " + std::to_string(before) +
        " -> " + std::to_string(p.weights_bytes) + " bytes");
}

}  // namespace shoal::cpu
