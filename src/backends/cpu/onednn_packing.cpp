// Packing descriptions of prepacked weights, and unpack_weight. A oneDNN 2.6
// memory descriptor is a plain C struct; its fields are written one by one
// (with codes of our own for the data type and format) rather than as raw
// struct bytes, so the format does not depend on the struct's layout.
#include "backends/cpu/onednn_packing.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "backends/cpu/onednn_kernels.hpp"
#include "program/byte_io.hpp"
#include "shoal/error.hpp"

namespace shoal::cpu {
namespace onednn {
namespace {

constexpr char kMagic[4] = {'S', 'P', 'K', 'D'};  // shoal packing description
constexpr uint16_t kVersion = 2;  // 2: int8 weights (kKindOneDnnCopy, s8, extra data)
constexpr uint16_t kOldestVersion = 1;
constexpr uint8_t kKindOneDnn = 1;      // a oneDNN memory descriptor pair
constexpr uint8_t kKindOneDnnWino = 2;  // ... and a Winograd copy
constexpr uint8_t kKindOneDnnCopy = 3;  // ... and a blocked copy with extra data (version 2)
constexpr uint8_t kTransformNone = 0;   // the stored values are the plain ones
constexpr uint8_t kTransformScale = 1;  // ... times `scale`
constexpr uint8_t kDtypeF32 = 1;        // the ONNX code of float32
constexpr uint8_t kDtypeBf16 = 16;      // ... of bfloat16 (packed layouts only)
constexpr uint8_t kDtypeS8 = 3;         // ... of int8 (version 2)
// The extra data oneDNN's int8 weight layouts carry (compensation sums, a
// scale adjustment); only in a kKindOneDnnCopy's copy.
constexpr uint64_t kExtraFlags = dnnl_memory_extra_flag_compensation_conv_s8s8 |
                                 dnnl_memory_extra_flag_scale_adjust |
                                 dnnl_memory_extra_flag_compensation_conv_asymmetric_src;
constexpr uint8_t kFormatBlocked = 1;   // dnnl_blocked
constexpr int64_t kMaxDim = int64_t(1) << 40;

/// Bounds-checked reading of one description; errors name the tensor.
class Reader {
 public:
  explicit Reader(const program::TensorDesc& t) : t_(t) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::invalid_argument,
                "weight '" + t_.name + "': unreadable packing description (" +
                    std::to_string(t_.packing.size()) + " bytes, at byte " + std::to_string(pos_) +
                    "): " + what);
  }
  const uint8_t* take(size_t n) {
    if (t_.packing.size() - pos_ < n) fail("it ends early");
    const uint8_t* p = t_.packing.data() + pos_;
    pos_ += n;
    return p;
  }
  uint8_t u8() { return *take(1); }
  uint16_t u16() {
    const uint8_t* p = take(2);
    return uint16_t(p[0] | p[1] << 8);
  }
  float f32() {
    uint32_t v = program::load_u32(take(4));
    float f;
    std::memcpy(&f, &v, 4);
    return f;
  }
  uint64_t u64() { return program::load_u64(take(8)); }
  int64_t i64() { return int64_t(u64()); }
  bool done() const { return pos_ == t_.packing.size(); }

 private:
  const program::TensorDesc& t_;
  size_t pos_ = 0;
};

bool mul(uint64_t a, uint64_t b, uint64_t& r) { return !__builtin_mul_overflow(a, b, &r); }
bool add(uint64_t a, uint64_t b, uint64_t& r) { return !__builtin_add_overflow(a, b, &r); }

/// Elements spanned by a checked blocked descriptor (1 + the largest element
/// offset); false on overflow.
bool span_elems(const dnnl_memory_desc_t& d, uint64_t& n) {
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  uint64_t blk[DNNL_MAX_NDIMS], inner = 1;
  for (int i = 0; i < d.ndims; ++i) blk[i] = 1;
  for (int k = 0; k < b.inner_nblks; ++k) {
    if (!mul(blk[b.inner_idxs[k]], uint64_t(b.inner_blks[k]), blk[b.inner_idxs[k]]) ||
        !mul(inner, uint64_t(b.inner_blks[k]), inner))
      return false;
  }
  uint64_t last = inner - 1;
  for (int i = 0; i < d.ndims; ++i) {
    uint64_t outer = uint64_t(d.padded_dims[i]) / blk[i], step;
    if (!mul(outer - 1, uint64_t(b.strides[i]), step) || !add(last, step, last)) return false;
  }
  return add(last, 1, n);
}

uint8_t dtype_code(dnnl_data_type_t t) {
  return t == dnnl_bf16 ? kDtypeBf16 : t == dnnl_s8 ? kDtypeS8 : kDtypeF32;
}

void write_md(program::ByteWriter& w, const dnnl::memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  w.u8(uint8_t(d.ndims));
  w.u8(dtype_code(d.data_type));
  w.u8(kFormatBlocked);
  w.u8(uint8_t(b.inner_nblks));
  w.i64(d.offset0);
  for (int i = 0; i < d.ndims; ++i) {
    w.i64(d.dims[i]);
    w.i64(d.padded_dims[i]);
    w.i64(d.padded_offsets[i]);
    w.i64(b.strides[i]);
  }
  for (int k = 0; k < b.inner_nblks; ++k) {
    w.i64(b.inner_blks[k]);
    w.i64(b.inner_idxs[k]);
  }
  w.u64(d.extra.flags);
  if (d.extra.flags) {
    w.i64(d.extra.compensation_mask);
    w.f32(d.extra.scale_adjust);
    w.i64(d.extra.asymm_compensation_mask);
  }
}

/// What read_md accepts.
struct MdRules {
  bool bf16 = false;   // bf16 besides f32
  bool s8 = false;     // s8 besides f32
  bool extra = false;  // oneDNN's int8 extra data (kExtraFlags)
};

/// Reads one descriptor and checks that it describes a sane f32 (or, as
/// `rules` allow, bf16 or s8, with extra data) blocked layout of positive dims
/// (the data access of a reorder over it stays within span_elems elements;
/// get_size() adds the extra data).
dnnl::memory::desc read_md(Reader& r, const char* which, MdRules rules = {}) {
  auto bad = [&](const std::string& what) { r.fail(std::string(which) + " layout: " + what); };
  dnnl_memory_desc_t d;
  std::memset(&d, 0, sizeof d);
  dnnl_blocking_desc_t& b = d.format_desc.blocking;
  int nd = r.u8();
  if (nd < 1 || nd > DNNL_MAX_NDIMS) bad("rank " + std::to_string(nd));
  const uint8_t type = r.u8();
  if (type != kDtypeF32 && !(rules.bf16 && type == kDtypeBf16) && !(rules.s8 && type == kDtypeS8))
    bad(std::string("data type ") + std::to_string(type) + " is not f32" +
        (rules.bf16 ? " or bf16" : "") + (rules.s8 ? " or int8" : ""));
  if (r.u8() != kFormatBlocked) bad("format is not blocked");
  int nb = r.u8();
  if (nb > DNNL_MAX_NDIMS) bad(std::to_string(nb) + " inner blocks");
  d.ndims = nd;
  d.data_type = type == kDtypeBf16 ? dnnl_bf16 : type == kDtypeS8 ? dnnl_s8 : dnnl_f32;
  d.format_kind = dnnl_blocked;
  b.inner_nblks = nb;
  d.offset0 = r.i64();
  if (d.offset0 != 0) bad("offset0 is not 0");
  for (int i = 0; i < nd; ++i) {
    d.dims[i] = r.i64();
    d.padded_dims[i] = r.i64();
    d.padded_offsets[i] = r.i64();
    b.strides[i] = r.i64();
    if (d.dims[i] < 1 || d.dims[i] > kMaxDim)
      bad("dim " + std::to_string(i) + " is " + std::to_string(d.dims[i]));
    if (d.padded_dims[i] < d.dims[i] || d.padded_dims[i] > kMaxDim)
      bad("padded dim " + std::to_string(i) + " is " + std::to_string(d.padded_dims[i]));
    if (d.padded_offsets[i] != 0) bad("a padded offset is not 0");
    if (b.strides[i] < 0 || b.strides[i] > kMaxDim)
      bad("stride " + std::to_string(i) + " is " + std::to_string(b.strides[i]));
  }
  int64_t blk[DNNL_MAX_NDIMS];
  for (int i = 0; i < nd; ++i) blk[i] = 1;
  for (int k = 0; k < nb; ++k) {
    b.inner_blks[k] = r.i64();
    b.inner_idxs[k] = r.i64();
    if (b.inner_blks[k] < 1 || b.inner_blks[k] > kMaxDim || b.inner_idxs[k] < 0 ||
        b.inner_idxs[k] >= nd)
      bad("inner block " + std::to_string(k) + " is " + std::to_string(b.inner_blks[k]) +
          " of dim " + std::to_string(b.inner_idxs[k]));
    int64_t& bl = blk[b.inner_idxs[k]];
    if (__builtin_mul_overflow(bl, b.inner_blks[k], &bl) || bl > kMaxDim)
      bad("inner blocks overflow");
  }
  for (int i = 0; i < nd; ++i)
    if (d.padded_dims[i] % blk[i])
      bad("padded dim " + std::to_string(i) + " is not a multiple of its " + "blocks");
  d.extra.flags = r.u64();
  if (d.extra.flags != 0 && !rules.extra) bad("extra flags are set");
  if (d.extra.flags & ~kExtraFlags) bad("unknown extra flags " + std::to_string(d.extra.flags));
  if (d.extra.flags) {
    // Masks of dims (the compensation has one int32 per combination of the
    // masked dims: get_size() counts them).
    const int64_t all = (int64_t(1) << nd) - 1, cm = r.i64();
    d.extra.scale_adjust = r.f32();
    const int64_t am = r.i64();
    if (cm < 0 || cm > all || am < 0 || am > all) bad("an extra-data mask is out of range");
    const bool adjusted = d.extra.flags & dnnl_memory_extra_flag_scale_adjust;
    if (!std::isfinite(d.extra.scale_adjust) || (adjusted && d.extra.scale_adjust <= 0.0f))
      bad("the scale adjustment is not finite (and positive, when flagged)");
    d.extra.compensation_mask = int(cm);
    d.extra.asymm_compensation_mask = int(am);
  }
  uint64_t n;
  if (!span_elems(d, n)) bad("its size overflows");
  return dnnl::memory::desc(d);
}

void write_wino(program::ByteWriter& w, const dnnl::memory::desc& md, uint64_t offset) {
  const dnnl_wino_desc_t& x = md.data.format_desc.wino_desc;
  w.u8(uint8_t(x.wino_format));
  for (int v : {x.r, x.alpha, x.ic, x.oc, x.ic_block, x.oc_block, x.ic2_block, x.oc2_block})
    w.i64(v);
  w.f32(x.adj_scale);
  w.u64(uint64_t(x.size));
  w.u64(offset);
}

/// Reads the Winograd block: a descriptor of `plain`'s dims, and where its
/// bytes lie. Only compared with the descriptors oneDNN itself makes, never
/// handed to oneDNN, so the checks only keep the fields in range.
dnnl::memory::desc read_wino(Reader& r, const dnnl::memory::desc& plain, uint64_t& offset) {
  auto bad = [&](const std::string& what) { r.fail("Winograd layout: " + what); };
  dnnl_memory_desc_t d;
  std::memset(&d, 0, sizeof d);
  const dnnl_memory_desc_t& pl = plain.data;
  d.ndims = pl.ndims;
  d.data_type = dnnl_f32;
  d.format_kind = dnnl_format_kind_wino;
  for (int i = 0; i < pl.ndims; ++i) d.dims[i] = d.padded_dims[i] = pl.dims[i];
  dnnl_wino_desc_t& x = d.format_desc.wino_desc;
  const int format = r.u8();
  if (format < dnnl_wino_wei_aaOIoi || format > dnnl_wino_wei_OBaaIBOIio)
    bad("format " + std::to_string(format));
  x.wino_format = dnnl_wino_memory_format_t(format);
  for (int* f :
       {&x.r, &x.alpha, &x.ic, &x.oc, &x.ic_block, &x.oc_block, &x.ic2_block, &x.oc2_block}) {
    const int64_t v = r.i64();
    if (v < 1 || v > (int64_t(1) << 30)) bad("a block field is " + std::to_string(v));
    *f = int(v);
  }
  x.adj_scale = r.f32();
  if (!std::isfinite(x.adj_scale) || x.adj_scale == 0.0f) bad("scale is not finite and non-zero");
  const uint64_t size = r.u64();
  offset = r.u64();
  if (size == 0 || size > uint64_t(kMaxDim)) bad("size " + std::to_string(size));
  if (offset % program::kWeightAlign)
    bad("offset " + std::to_string(offset) + " is not a multiple of " +
        std::to_string(program::kWeightAlign));
  x.size = size_t(size);
  return dnnl::memory::desc(d);
}

}  // namespace

bool can_encode_wino(const dnnl::memory::desc& md, const dnnl::memory::desc& dims_of) {
  const dnnl_memory_desc_t &d = md.data, &p = dims_of.data;
  return d.format_kind == dnnl_format_kind_wino && d.data_type == dnnl_f32 && d.ndims == p.ndims &&
         std::equal(d.dims, d.dims + d.ndims, p.dims) && d.extra.flags == 0 && d.offset0 == 0 &&
         d.format_desc.wino_desc.size > 0;
}

bool same_wino(const dnnl::memory::desc& a, const dnnl::memory::desc& b) {
  const dnnl_memory_desc_t &d = a.data, &e = b.data;
  if (d.format_kind != dnnl_format_kind_wino || e.format_kind != dnnl_format_kind_wino ||
      d.data_type != e.data_type || d.ndims != e.ndims ||
      !std::equal(d.dims, d.dims + d.ndims, e.dims) || d.extra.flags != e.extra.flags)
    return false;
  const dnnl_wino_desc_t &x = d.format_desc.wino_desc, &y = e.format_desc.wino_desc;
  return x.wino_format == y.wino_format && x.r == y.r && x.alpha == y.alpha && x.ic == y.ic &&
         x.oc == y.oc && x.ic_block == y.ic_block && x.oc_block == y.oc_block &&
         x.ic2_block == y.ic2_block && x.oc2_block == y.oc2_block && x.adj_scale == y.adj_scale &&
         x.size == y.size;
}

bool can_encode_copy(const dnnl::memory::desc& md, const dnnl::memory::desc& dims_of) {
  const dnnl_memory_desc_t &d = md.data, &p = dims_of.data;
  return d.format_kind == dnnl_blocked && d.data_type == dnnl_s8 && d.ndims == p.ndims &&
         std::equal(d.dims, d.dims + d.ndims, p.dims) && (d.extra.flags & ~kExtraFlags) == 0 &&
         d.offset0 == 0;
}

bool can_encode(const dnnl::memory::desc& md, bool allow_bf16) {
  const dnnl_memory_desc_t& d = md.data;
  return d.ndims >= 1 && d.ndims <= DNNL_MAX_NDIMS &&
         (d.data_type == dnnl_f32 || (allow_bf16 && d.data_type == dnnl_bf16)) &&
         d.format_kind == dnnl_blocked && d.extra.flags == 0 && d.offset0 == 0;
}

std::vector<uint8_t> encode_packing(const Packing& p) {
  std::vector<uint8_t> out;
  out.reserve(512);  // also keeps GCC 12 from a -Wstringop-overflow false positive
  program::ByteWriter w(out);
  const bool wino = p.wino.data.format_kind == dnnl_format_kind_wino;
  const bool copy = p.copy.data.ndims > 0;
  // Version 1 where it says all (float weights): older builds read those.
  const uint16_t version = copy || p.plain.data.data_type == dnnl_s8 ? kVersion : kOldestVersion;
  w.raw(kMagic, sizeof kMagic);
  w.u8(uint8_t(version & 0xff));
  w.u8(uint8_t(version >> 8));
  w.u8(wino ? kKindOneDnnWino : copy ? kKindOneDnnCopy : kKindOneDnn);
  w.u8(p.scale == 1.0f ? kTransformNone : kTransformScale);
  w.f32(p.scale);
  write_md(w, p.plain);
  write_md(w, p.packed);
  if (wino) write_wino(w, p.wino, p.wino_offset);
  if (copy) {
    write_md(w, p.copy);
    w.u64(p.copy_offset);
  }
  return out;
}

Packing decode_packing(const program::TensorDesc& t) {
  Reader r(t);
  if (std::memcmp(r.take(sizeof kMagic), kMagic, sizeof kMagic) != 0)
    r.fail("no SPKD tag (not written by this backend)");
  uint16_t version = r.u16();
  if (version < kOldestVersion || version > kVersion)
    r.fail("version " + std::to_string(version) + ", this build reads " +
           std::to_string(kOldestVersion) + " to " + std::to_string(kVersion));
  const uint8_t kind = r.u8();
  if (kind != kKindOneDnn && kind != kKindOneDnnWino && !(version >= 2 && kind == kKindOneDnnCopy))
    r.fail("not a oneDNN layout");
  uint8_t transform = r.u8();
  Packing p;
  p.scale = r.f32();
  if (transform == kTransformNone
          ? p.scale != 1.0f
          : transform != kTransformScale || !std::isfinite(p.scale) || p.scale == 0.0f)
    r.fail("transformation " + std::to_string(transform) + " with scale " +
           std::to_string(p.scale));
  const bool int8 = t.dtype == DType::i8 && version >= 2;
  p.plain = read_md(r, "plain", {.s8 = int8});
  p.packed = read_md(r, "packed", {.bf16 = !int8, .s8 = int8});
  if (kind == kKindOneDnnWino) {
    if (p.scale != 1.0f) r.fail("a Winograd copy with a scale");
    if (p.packed.data.data_type != dnnl_f32) r.fail("a Winograd copy of bf16 weights");
    p.wino = read_wino(r, p.plain, p.wino_offset);
  }
  if (kind == kKindOneDnnCopy) {
    p.copy = read_md(r, "copy", {.s8 = int8, .extra = true});
    p.copy_offset = r.u64();
    if (p.copy_offset % program::kWeightAlign)
      r.fail("copy offset " + std::to_string(p.copy_offset) + " is not a multiple of " +
             std::to_string(program::kWeightAlign));
  }
  if (!r.done()) r.fail("trailing bytes");

  // Both views must be of the tensor: the same dims, as many elements as its
  // shape, the plain one dense without blocks, each inside the bytes it reads.
  const dnnl_memory_desc_t &pl = p.plain.data, &pk = p.packed.data;
  if (t.dtype != DType::f32 && !int8)
    r.fail("the tensor is " + std::string(dtype_name(t.dtype)) + ", not f32 or int8");
  const dnnl_data_type_t want = int8 ? dnnl_s8 : dnnl_f32;
  if (p.plain.data.data_type != want || (int8 && p.packed.data.data_type != want))
    r.fail("its layouts' data type is not the tensor's");
  if (pl.ndims != pk.ndims || !std::equal(pl.dims, pl.dims + pl.ndims, pk.dims))
    r.fail("the plain and packed layouts have different dims");
  uint64_t numel = 1;
  for (int i = 0; i < pl.ndims; ++i)
    if (!mul(numel, uint64_t(pl.dims[i]), numel)) r.fail("its dims overflow");
  if (numel != uint64_t(shape_numel(t.shape)))
    r.fail("its layouts hold " + std::to_string(numel) + " elements, the shape " +
           shape_str(t.shape) + " " + std::to_string(shape_numel(t.shape)));
  uint64_t span = 0;
  if (pl.format_desc.blocking.inner_nblks != 0 || !span_elems(pl, span) || span > numel)
    r.fail("the plain layout is not a dense view of the tensor");
  const uint64_t elem = pk.data_type == dnnl_bf16 ? 2 : pk.data_type == dnnl_s8 ? 1 : sizeof(float);
  if (!span_elems(pk, span) || span > t.bytes / elem || p.packed.get_size() > t.bytes)
    r.fail("the packed layout needs " + std::to_string(p.packed.get_size()) +
           " bytes, the tensor has " + std::to_string(t.bytes));
  if (kind == kKindOneDnnWino && (p.wino_offset < p.packed.get_size() || p.wino_offset > t.bytes ||
                                  t.bytes - p.wino_offset < p.wino.get_size()))
    r.fail("the Winograd copy (" + std::to_string(p.wino.get_size()) + " bytes at " +
           std::to_string(p.wino_offset) + ") overlaps the packed one or leaves the tensor's " +
           std::to_string(t.bytes) + " bytes");
  if (kind == kKindOneDnnCopy) {
    const dnnl_memory_desc_t& c = p.copy.data;
    if (c.ndims != pl.ndims || !std::equal(pl.dims, pl.dims + pl.ndims, c.dims))
      r.fail("the copy has other dims than the plain layout");
    if (!span_elems(c, span) || p.copy_offset < p.packed.get_size() || p.copy_offset > t.bytes ||
        t.bytes - p.copy_offset < p.copy.get_size())
      r.fail("the copy (" + std::to_string(p.copy.get_size()) + " bytes at " +
             std::to_string(p.copy_offset) + ") overlaps the packed one or leaves the tensor's " +
             std::to_string(t.bytes) + " bytes");
  }
  return p;
}

}  // namespace onednn

HostTensor unpack_weight(const program::TensorDesc& t, const uint8_t* bytes) {
  HostTensor out(t.dtype, t.shape);
  if (!bytes && (out.bytes() || t.bytes))
    throw Error(ErrorKind::invalid_argument, "weight '" + t.name + "': no bytes to unpack");
  if (t.layout != program::Layout::packed) {
    if (t.bytes < out.bytes())
      throw Error(ErrorKind::invalid_argument,
                  "weight '" + t.name + "' has " + std::to_string(t.bytes) + " bytes, its shape " +
                      shape_str(t.shape) + " needs " + std::to_string(out.bytes()));
    if (out.bytes()) std::memcpy(out.data(), bytes, out.bytes());
    return out;
  }
  onednn::Packing p = onednn::decode_packing(t);
  try {
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::memory src(p.packed, eng, const_cast<uint8_t*>(bytes));
    dnnl::memory dst(p.plain, eng, out.data());
    dnnl::stream s(eng);
    dnnl::reorder(src, dst).execute(s, src, dst);
    s.wait();
  } catch (const dnnl::error& e) {
    throw Error(ErrorKind::device, "weight '" + t.name + "': unpacking failed: " + e.what());
  }
  if (p.scale != 1.0f) {
    float* v = out.as<float>();
    for (int64_t i = 0; i < out.numel(); ++i) v[i] /= p.scale;
  }
  return out;
}

}  // namespace shoal::cpu
