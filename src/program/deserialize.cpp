// Reads and validates a program file (docs/PROGRAM_FORMAT.md). Every read is
// bounds-checked; every error is Error(invalid_argument) naming the offset.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "program/byte_io.hpp"
#include "program/crc32c.hpp"
#include "program/format.hpp"
#include "program/program_data.hpp"
#include "shoal/error.hpp"
#include "shoal/version.h"

namespace shoal::program {
namespace {

using format::AttrTag;
using format::SectionKind;

std::string num(uint64_t v) { return std::to_string(v); }

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

[[noreturn]] void fail(const std::string& what) { throw Error(ErrorKind::invalid_argument, what); }

[[noreturn]] void fail_at(uint64_t at, const std::string& what) {
  fail("invalid program file at offset " + num(at) + ": " + what);
}

[[noreturn]] void truncated(uint64_t at, uint64_t expected, const std::string& of, uint64_t size) {
  uint64_t has = size > at ? size - at : 0;
  fail("truncated at offset " + num(at) + ": expected " + num(expected) + " bytes of " + of +
       ", file has " + num(has) + " from there (" + num(size) + " in all)");
}

struct Section {
  SectionKind kind;
  uint32_t crc;
  uint64_t offset, size;
  const char* name() const { return format::section_name(kind); }
};

// Limits a TensorDesc's byte range must stay within.
struct Regions {
  uint64_t arena_bytes = 0;
  uint64_t weights_bytes = 0;
};

// --- header -----------------------------------------------------------------

// "0.1.0" from the producer version bytes at kOffProducerVersion.
std::string producer_version(const uint8_t* b) {
  const uint8_t* v = b + format::kOffProducerVersion;
  return num(v[0]) + "." + num(v[1]) + "." + num(v[2]);
}

// "format versions 1 to 2" (or "format version 2"): what this shoal loads.
std::string loadable_versions() {
  if (kOldestFormatVersion == kFormatVersion) return "format version " + num(kFormatVersion);
  return "format versions " + num(kOldestFormatVersion) + " to " + num(kFormatVersion);
}

struct Header {
  uint32_t version = 0;
  std::string producer_version;  // "" in version 1
  std::vector<Section> sections;
};

// Checks magic, version, header fields and header checksum; returns the
// version and the section table, validated against the file's bounds.
Header read_header(const uint8_t* b, uint64_t size, bool verify_checksums) {
  uint64_t n = std::min<uint64_t>(size, sizeof(format::kMagic));
  if (std::memcmp(b, format::kMagic, n) != 0)
    fail(
        "not a shoal program file: bad magic at offset 0 (expected "
        "\"SHOALPRG\")");
  if (size < format::kOffVersion + 4) truncated(0, format::kFixedHeaderSize, "header", size);
  Header h;
  const uint32_t version = h.version = load_u32(b + format::kOffVersion);
  if (version > kFormatVersion) {
    // Every version from 2 on keeps the writer's version at the same place.
    const std::string writer = size >= format::kOffProducerVersion + 4
                                   ? " (written by shoal " + producer_version(b) + ")"
                                   : "";
    fail("program format version " + num(version) + writer + " is newer than this shoal " +
         SHOAL_VERSION + " loads (" + loadable_versions() +
         "); recompile the model with this shoal, or upgrade shoal (version at offset " +
         num(format::kOffVersion) + ")");
  }
  if (version < kOldestFormatVersion)
    fail("program format version " + num(version) + " is older than this shoal " + SHOAL_VERSION +
         " loads (" + loadable_versions() + "); recompile the model (version at offset " +
         num(format::kOffVersion) + ")");
  if (size < format::kFixedHeaderSize) truncated(0, format::kFixedHeaderSize, "header", size);

  uint32_t count = load_u32(b + format::kOffSectionCount);
  if (count != format::kSectionCount)
    fail_at(format::kOffSectionCount, "section count is " + num(count) + ", format version " +
                                          num(version) + " has " + num(format::kSectionCount));
  uint32_t header_size = load_u32(b + format::kOffHeaderSize);
  if (header_size != format::kHeaderSize)
    fail_at(format::kOffHeaderSize,
            "header size is " + num(header_size) + ", expected " + num(format::kHeaderSize));
  if (size < header_size)
    truncated(format::kFixedHeaderSize, header_size - format::kFixedHeaderSize, "section table",
              size);

  if (verify_checksums) {
    uint32_t stored = load_u32(b + format::kOffHeaderCrc);
    static const uint8_t kZero[4] = {0, 0, 0, 0};
    uint32_t crc = crc32c(b, format::kOffHeaderCrc);
    crc = crc32c(kZero, 4, crc);
    crc = crc32c(b + format::kOffHeaderCrc + 4, header_size - format::kOffHeaderCrc - 4, crc);
    if (crc != stored)
      fail("checksum mismatch in the header (offset 0, " + num(header_size) + " bytes): stored " +
           hex32(stored) + ", computed " + hex32(crc) + "; the file is corrupt");
  }
  uint32_t flags = load_u32(b + format::kOffFlags);
  if (flags != 0) fail_at(format::kOffFlags, "unknown header flags " + hex32(flags));
  if (version == 1) {
    uint32_t reserved = load_u32(b + format::kOffProducerVersion);
    if (reserved != 0)
      fail_at(format::kOffProducerVersion,
              "reserved header field is " + hex32(reserved) + ", expected 0 in format version 1");
  } else {
    if (b[format::kOffProducerVersion + 3] != 0)
      fail_at(format::kOffProducerVersion + 3, "the byte after the producer version is " +
                                                   num(b[format::kOffProducerVersion + 3]) +
                                                   ", expected 0");
    h.producer_version = producer_version(b);
  }
  uint64_t file_size = load_u64(b + format::kOffFileSize);

  std::vector<Section>& sections = h.sections;
  sections.resize(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t e = format::kFixedHeaderSize + i * format::kSectionEntrySize;
    uint32_t kind = load_u32(b + e);
    SectionKind want = format::kSectionOrder[i];
    if (kind != uint32_t(want))
      fail_at(e, "section table entry " + num(i) + " has kind " + num(kind) + ", expected " +
                     num(uint32_t(want)) + " (" + format::section_name(want) + ")");
    sections[i] = {want, load_u32(b + e + 4), load_u64(b + e + 8), load_u64(b + e + 16)};
  }

  // Truncation: name the first section the file is too short for.
  if (size < file_size) {
    for (const Section& s : sections)
      if (s.offset > size || s.size > size - s.offset)
        truncated(s.offset, s.size, std::string("section ") + s.name(), size);
    fail("truncated at offset " + num(size) + ": the header says the file has " + num(file_size) +
         " bytes, it has " + num(size));
  }
  if (size > file_size)
    fail_at(file_size, "the header says the file has " + num(file_size) + " bytes, it has " +
                           num(size) + " (trailing data)");

  // Layout: in order, in bounds, aligned, no overlap, zero padding between.
  uint64_t prev_end = header_size;
  for (uint32_t i = 0; i < count; ++i) {
    const Section& s = sections[i];
    uint64_t e = format::kFixedHeaderSize + i * format::kSectionEntrySize;
    if (s.offset > file_size || s.size > file_size - s.offset)
      fail_at(e + 8, std::string("section ") + s.name() + " (offset " + num(s.offset) + ", " +
                         num(s.size) + " bytes) is out of bounds of the " + num(file_size) +
                         "-byte file");
    uint64_t align = s.kind == SectionKind::weights ? kWeightAlign : format::kSectionAlign;
    if (s.offset % align)
      fail_at(e + 8, std::string("section ") + s.name() + " offset " + num(s.offset) +
                         " is not a multiple of " + num(align));
    if (s.offset < prev_end)
      fail_at(e + 8, std::string("section ") + s.name() + " at offset " + num(s.offset) +
                         " overlaps what precedes it (ends at " + num(prev_end) + ")");
    for (uint64_t k = prev_end; k < s.offset; ++k)
      if (b[k]) fail_at(k, "padding byte before section " + std::string(s.name()) + " is not zero");
    prev_end = s.offset + s.size;
  }
  if (prev_end != file_size)
    fail_at(prev_end,
            num(file_size - prev_end) + " bytes after the last section belong to no section");

  if (verify_checksums) {
    for (const Section& s : sections) {
      uint32_t crc = crc32c(b + s.offset, s.size);
      if (crc != s.crc)
        fail("checksum mismatch in section " + std::string(s.name()) + " (offset " + num(s.offset) +
             ", " + num(s.size) + " bytes): stored " + hex32(s.crc) + ", computed " + hex32(crc) +
             "; the file is corrupt");
    }
  }
  return h;
}

// --- META -------------------------------------------------------------------

std::vector<int32_t> read_ids(ByteReader& r, const char* what) {
  uint32_t n = r.count(what, 4);
  std::vector<int32_t> ids(n);
  for (auto& id : ids) id = r.i32(what);
  return ids;
}

// Where META's id lists start, to check them once the tensors are known.
struct MetaIds {
  uint64_t inputs_at = 0, outputs_at = 0;
};

MetaIds read_meta(ByteReader& r, ProgramData& p) {
  p.producer = r.str("producer");
  p.model_name = r.str("model name");
  p.target = r.str("target");
  uint64_t at = r.offset();
  int32_t devices = r.i32("devices");
  if (devices < 1 || devices > format::kMaxDevices)
    r.fail(at, "device count " + std::to_string(devices) + " is not in [1, " +
                   num(format::kMaxDevices) + "]");
  at = r.offset();
  int32_t clusters = r.i32("clusters");
  if (clusters < 0 || clusters > format::kMaxClusters)
    r.fail(at, "cluster count " + std::to_string(clusters) + " is not in [0, " +
                   num(format::kMaxClusters) + "]");
  at = r.offset();
  uint8_t mode = r.u8("mode");
  if (mode > 2) r.fail(at, "mode is " + num(mode) + ", expected 0 (batch), 1 (split) or 2 (auto)");
  at = r.offset();
  uint64_t arena = r.u64("arena_bytes");
  if (arena > format::kMaxArenaBytes)
    r.fail(at, "arena_bytes " + num(arena) + " is absurdly large (limit " +
                   num(format::kMaxArenaBytes) + ")");
  p.devices = devices;
  p.clusters = clusters;
  p.mode = Mode(mode);
  p.arena_bytes = arena;
  MetaIds ids;
  ids.inputs_at = r.offset();
  p.inputs = read_ids(r, "program inputs");
  ids.outputs_at = r.offset();
  p.outputs = read_ids(r, "program outputs");
  return ids;
}

// Checks ids read at `at` (by read_ids: a u32 count, then 4 bytes each)
// against [min_id, n).
void check_ids(const ByteReader& r, uint64_t at, const std::vector<int32_t>& ids, int32_t min_id,
               size_t n, const char* what) {
  for (size_t k = 0; k < ids.size(); ++k)
    if (ids[k] < min_id || (ids[k] >= 0 && uint64_t(ids[k]) >= n))
      r.fail(at + 4 + 4 * k, std::string(what) + " " + num(k) + " is tensor id " +
                                 std::to_string(ids[k]) + ", out of range [" +
                                 std::to_string(min_id) + ", " + num(n) + ")");
}

// --- TENSORS ----------------------------------------------------------------

// Reads rank and dims; checks dims >= 0 and that numel * elem_size fits.
// Returns the logical byte size.
uint64_t read_shape(ByteReader& r, DType dtype, Shape& shape) {
  uint64_t at = r.offset();
  uint32_t rank = r.count("rank", 8);
  if (rank > format::kMaxRank)
    r.fail(at, "rank " + num(rank) + " exceeds the limit of " + num(format::kMaxRank));
  shape.resize(rank);
  uint64_t numel = 1, nonzero = 1;
  bool overflow = false;
  for (uint32_t k = 0; k < rank; ++k) {
    uint64_t dim_at = r.offset();
    int64_t d = r.i64("dimension");
    if (d < 0) r.fail(dim_at, "dimension " + num(k) + " is negative (" + std::to_string(d) + ")");
    shape[k] = d;
    overflow = overflow || __builtin_mul_overflow(numel, uint64_t(d), &numel);
    // Zero dims counted as one: no partial product of the dims (shape_numel
    // multiplies in order) may overflow either, whatever comes after it.
    overflow = overflow ||
               __builtin_mul_overflow(nonzero, uint64_t(std::max<int64_t>(d, 1)), &nonzero) ||
               nonzero > format::kMaxTensorBytes;
  }
  uint64_t elem = dtype_size(dtype);
  uint64_t bytes = 0;
  // numel itself must fit an int64 (shape_numel), even for 0-byte dtypes.
  if (overflow || numel > format::kMaxTensorBytes || __builtin_mul_overflow(numel, elem, &bytes) ||
      bytes > format::kMaxTensorBytes)
    r.fail(at, "shape " + shape_str(shape) + " overflows (element count or size " + "beyond 2^62)");
  return bytes;
}

DType read_dtype(ByteReader& r, bool allow_undefined) {
  uint64_t at = r.offset();
  uint8_t code = r.u8("dtype");
  if (!dtype_valid(code) && !(allow_undefined && code == 0))
    r.fail(at, "dtype code " + num(code) + " is not a valid dtype");
  return DType(code);
}

TensorDesc read_tensor(ByteReader& r, const Regions& regions) {
  TensorDesc t;
  t.name = r.str("tensor name");
  r.set_item(r.item() + " '" + t.name + "'");
  t.dtype = read_dtype(r, false);
  uint64_t at = r.offset();
  uint8_t storage = r.u8("storage");
  if (storage > 1) r.fail(at, "storage code " + num(storage) + " is invalid");
  t.storage = Storage(storage);
  at = r.offset();
  uint8_t layout = r.u8("layout");
  if (layout > 2) r.fail(at, "layout code " + num(layout) + " is invalid");
  t.layout = Layout(layout);
  uint64_t logical = read_shape(r, t.dtype, t.shape);
  uint64_t offset_at = r.offset();
  t.offset = r.u64("offset");
  uint64_t bytes_at = r.offset();
  t.bytes = r.u64("byte size");
  uint64_t packing_at = r.offset();
  t.packing = r.blob("packing");

  if (t.layout != Layout::packed && t.bytes < logical)
    r.fail(bytes_at, "reserves " + num(t.bytes) + " bytes but its shape " + shape_str(t.shape) +
                         " of " + dtype_name(t.dtype) + " needs " + num(logical));
  if (t.layout != Layout::packed && !t.packing.empty())
    r.fail(packing_at,
           "a plain tensor has " + num(t.packing.size()) + " bytes of packing description");
  bool weight = t.storage == Storage::weight;
  uint64_t limit = weight ? regions.weights_bytes : regions.arena_bytes;
  const char* region = weight ? "the weight section" : "the arena";
  if (t.offset > limit || t.bytes > limit - t.offset)
    r.fail(offset_at, "bytes [" + num(t.offset) + ", +" + num(t.bytes) + ") lie outside " + region +
                          " (" + num(limit) + " bytes)");
  if (weight && t.offset % kWeightAlign)
    r.fail(offset_at,
           "weight offset " + num(t.offset) + " is not a multiple of " + num(kWeightAlign));
  // Kernels read and write elements in place: an activation starts at a
  // multiple of its element size (the compiler places them 64-aligned).
  const uint64_t elem = dtype_size(t.dtype);
  if (!weight && elem > 1 && t.offset % elem)
    r.fail(offset_at, "arena offset " + num(t.offset) + " is not a multiple of the " + num(elem) +
                          "-byte size of its " + dtype_name(t.dtype) + " elements");
  return t;
}

void read_tensors(ByteReader& r, ProgramData& p, const Regions& regions) {
  // Smallest tensor: name len 4, 3 codes, rank 4, offset 8, bytes 8, packing 4.
  uint32_t n = r.count("tensor count", 31);
  p.tensors.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    r.set_item("tensor " + num(i));
    p.tensors.push_back(read_tensor(r, regions));
  }
  r.set_item("");
}

// --- INSTRUCTIONS -----------------------------------------------------------

AttrValue read_attr(ByteReader& r) {
  uint64_t at = r.offset();
  uint8_t tag = r.u8("attribute tag");
  switch (AttrTag(tag)) {
    case AttrTag::int64:
      return r.i64("int attribute");
    case AttrTag::float32:
      return r.f32("float attribute");
    case AttrTag::string:
      return r.str("string attribute");
    case AttrTag::ints: {
      uint32_t n = r.count("ints attribute length", 8);
      std::vector<int64_t> v(n);
      for (auto& e : v) e = r.i64("ints attribute");
      return v;
    }
    case AttrTag::floats: {
      uint32_t n = r.count("floats attribute length", 4);
      std::vector<float> v(n);
      for (auto& e : v) e = r.f32("floats attribute");
      return v;
    }
    case AttrTag::tensor: {
      DType dtype = read_dtype(r, true);
      Shape shape;
      uint64_t logical = read_shape(r, dtype, shape);
      uint64_t bytes_at = r.offset();
      uint64_t bytes = r.u64("tensor attribute byte size");
      if (bytes != logical)
        r.fail(bytes_at, "tensor attribute has " + num(bytes) + " bytes, its shape " +
                             shape_str(shape) + " of " + dtype_name(dtype) + " needs " +
                             num(logical));
      const uint8_t* data = r.take(bytes, "tensor attribute data");
      // HostTensor's own size limit (it would throw out_of_memory).
      uint64_t numel = uint64_t(shape_numel(shape));
      if (numel > (uint64_t(1) << 40) / std::max<uint64_t>(1, dtype_size(dtype)))
        r.fail(at, "tensor attribute of shape " + shape_str(shape) + " has too many elements");
      HostTensor t(dtype, std::move(shape));
      if (bytes) std::memcpy(t.data(), data, bytes);
      return t;
    }
  }
  r.fail(at, "attribute tag " + num(tag) + " is invalid");
}

void read_instructions(ByteReader& r, ProgramData& p) {
  size_t nt = p.tensors.size();
  // Smallest: op 4, name 4, inputs 4, outputs 4, flops 8, attr count 4.
  uint32_t n = r.count("instruction count", 28);
  p.instructions.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    r.set_item("instruction " + num(i));
    Instruction ins;
    ins.op = r.str("op name");
    ins.name = r.str("node name");
    std::string item = "instruction " + num(i) + " " + ins.op + " '" + ins.name + "'";
    r.set_item(item);
    uint64_t at = r.offset();
    ins.inputs = read_ids(r, "inputs");
    check_ids(r, at, ins.inputs, -1, nt, "input");
    at = r.offset();
    ins.outputs = read_ids(r, "outputs");
    check_ids(r, at, ins.outputs, 0, nt, "output");
    at = r.offset();
    ins.flops = r.f64("flops");
    if (!std::isfinite(ins.flops) || ins.flops < 0)
      r.fail(at, "flops " + std::to_string(ins.flops) + " is not a finite non-negative number");
    // Smallest attribute: name len 4, tag 1, payload 4.
    uint32_t na = r.count("attribute count", 9);
    for (uint32_t k = 0; k < na; ++k) {
      at = r.offset();
      std::string key = r.str("attribute name");
      r.set_item(item + ", attribute '" + key + "'");
      if (ins.attrs.has(key)) r.fail(at, "duplicate attribute");
      ins.attrs.set(key, read_attr(r));
      r.set_item(item);
    }
    p.instructions.push_back(std::move(ins));
  }
  r.set_item("");
}

void expect_end(const ByteReader& r) {
  if (r.left()) r.fail(r.offset(), num(r.left()) + " unexpected bytes at the end of the section");
}

}  // namespace

namespace format {

std::shared_ptr<ProgramData> parse(const uint8_t* bytes, size_t size, const ParseOptions& options) {
  if (!bytes && size) throw Error(ErrorKind::invalid_argument, "program bytes: null pointer");
  static const uint8_t kEmpty[1] = {0};
  if (!bytes) bytes = kEmpty;
  Header h = read_header(bytes, size, options.verify_checksums);
  const std::vector<Section>& s = h.sections;
  const Section& meta = s[0];
  const Section& tensors = s[1];
  const Section& instructions = s[2];
  const Section& weights = s[3];

  auto p = std::make_shared<ProgramData>();
  p->version = h.version;
  p->producer_version = h.producer_version;

  ByteReader rm(bytes, meta.offset, meta.offset + meta.size, meta.name());
  MetaIds meta_ids = read_meta(rm, *p);
  expect_end(rm);

  Regions regions{p->arena_bytes, weights.size};
  ByteReader rt(bytes, tensors.offset, tensors.offset + tensors.size, tensors.name());
  read_tensors(rt, *p, regions);
  expect_end(rt);

  // Program inputs/outputs are checked now that the tensor count is known.
  check_ids(rm, meta_ids.inputs_at, p->inputs, 0, p->tensors.size(), "program input");
  check_ids(rm, meta_ids.outputs_at, p->outputs, 0, p->tensors.size(), "program output");

  ByteReader ri(bytes, instructions.offset, instructions.offset + instructions.size,
                instructions.name());
  read_instructions(ri, *p);
  expect_end(ri);

  p->weights_bytes = weights.size;
  if (!options.copy_weights) {
    p->weights = bytes + weights.offset;
    p->keepalive = options.keepalive;
  } else if (weights.size) {
    // Over-allocate so that `weights` can start 64-aligned inside the vector.
    p->owned_weights.resize(weights.size + kWeightAlign - 1);
    uintptr_t addr = reinterpret_cast<uintptr_t>(p->owned_weights.data());
    size_t pad = (kWeightAlign - addr % kWeightAlign) % kWeightAlign;
    std::memcpy(p->owned_weights.data() + pad, bytes + weights.offset, weights.size);
    p->weights = p->owned_weights.data() + pad;
  }
  return p;
}

}  // namespace format

std::shared_ptr<ProgramData> deserialize(const uint8_t* bytes, size_t size,
                                         std::shared_ptr<void> keepalive) {
  format::ParseOptions opts;
  opts.copy_weights = keepalive == nullptr;
  opts.keepalive = std::move(keepalive);
  return format::parse(bytes, size, opts);
}

}  // namespace shoal::program
