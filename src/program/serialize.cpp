// Writes a ProgramData as a program file (docs/PROGRAM_FORMAT.md).

#include <bit>
#include <type_traits>
#include <variant>

#include "program/byte_io.hpp"
#include "program/crc32c.hpp"
#include "program/format.hpp"
#include "program/program_data.hpp"
#include "shoal/error.hpp"
#include "shoal/version.h"

namespace shoal::program {
namespace {

// Weights and tensor attributes are stored as raw host bytes, and the format
// says little-endian: only little-endian hosts are supported.
static_assert(std::endian::native == std::endian::little,
              "the program format stores raw little-endian tensor bytes");

using format::AttrTag;

[[noreturn]] void fail(const std::string& what) {
  throw Error(ErrorKind::invalid_argument, "cannot serialize program: " + what);
}

void write_ids(ByteWriter& w, const std::vector<int32_t>& ids,
               const std::string& what) {
  w.count(ids.size(), what);
  for (int32_t id : ids) w.i32(id);
}

void write_shape(ByteWriter& w, const Shape& s, const std::string& what) {
  w.count(s.size(), what);
  for (int64_t d : s) w.i64(d);
}

void write_meta(ByteWriter& w, const ProgramData& p) {
  w.str(p.producer, "producer");
  w.str(p.model_name, "model name");
  w.str(p.target, "target");
  w.i32(int32_t(p.devices));
  w.i32(int32_t(p.clusters));
  w.u8(uint8_t(p.mode));
  w.u64(p.arena_bytes);
  write_ids(w, p.inputs, "program inputs");
  write_ids(w, p.outputs, "program outputs");
}

void write_tensors(ByteWriter& w, const ProgramData& p) {
  w.count(p.tensors.size(), "tensor list");
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const TensorDesc& t = p.tensors[i];
    std::string what = "tensor " + std::to_string(i) + " '" + t.name + "'";
    w.str(t.name, what + " name");
    w.u8(uint8_t(t.dtype));
    w.u8(uint8_t(t.storage));
    w.u8(uint8_t(t.layout));
    write_shape(w, t.shape, what + " shape");
    w.u64(t.offset);
    w.u64(t.bytes);
    w.blob(t.packing, what + " packing");
  }
}

void write_attr(ByteWriter& w, const AttrValue& v, const std::string& what) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          w.u8(uint8_t(AttrTag::int64));
          w.i64(x);
        } else if constexpr (std::is_same_v<T, float>) {
          w.u8(uint8_t(AttrTag::float32));
          w.f32(x);
        } else if constexpr (std::is_same_v<T, std::string>) {
          w.u8(uint8_t(AttrTag::string));
          w.str(x, what);
        } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
          w.u8(uint8_t(AttrTag::ints));
          w.count(x.size(), what);
          for (int64_t e : x) w.i64(e);
        } else if constexpr (std::is_same_v<T, std::vector<float>>) {
          w.u8(uint8_t(AttrTag::floats));
          w.count(x.size(), what);
          for (float e : x) w.f32(e);
        } else {
          static_assert(std::is_same_v<T, HostTensor>);
          w.u8(uint8_t(AttrTag::tensor));
          w.u8(uint8_t(x.dtype()));
          write_shape(w, x.shape(), what + " shape");
          w.u64(x.bytes());
          w.raw(x.data(), x.bytes());
        }
      },
      v);
}

void write_instructions(ByteWriter& w, const ProgramData& p) {
  w.count(p.instructions.size(), "instruction list");
  for (size_t i = 0; i < p.instructions.size(); ++i) {
    const Instruction& ins = p.instructions[i];
    std::string what =
        "instruction " + std::to_string(i) + " '" + ins.name + "'";
    w.str(ins.op, what + " op");
    w.str(ins.name, what + " name");
    write_ids(w, ins.inputs, what + " inputs");
    write_ids(w, ins.outputs, what + " outputs");
    w.f64(ins.flops);
    const auto& items = ins.attrs.items();
    w.count(items.size(), what + " attributes");
    for (const auto& [key, value] : items) {
      w.str(key, what + " attribute name");
      write_attr(w, value, what + " attribute '" + key + "'");
    }
  }
}

}  // namespace

namespace format {

std::vector<uint8_t> encode(const ProgramData& p) {
  // The weight bytes: `weights`, or owned_weights when no pointer is set.
  const uint8_t* weights = p.weights;
  uint64_t weights_bytes = p.weights_bytes;
  if (!weights && weights_bytes == 0 && !p.owned_weights.empty()) {
    weights = p.owned_weights.data();
    weights_bytes = p.owned_weights.size();
  }
  if (!weights && weights_bytes != 0)
    fail("weights_bytes is " + std::to_string(weights_bytes) +
         " but the weights pointer is null");

  std::vector<uint8_t> out;
  ByteWriter w(out);
  // Header and section table, filled in at the end.
  out.resize(format::kHeaderSize, 0);

  struct Range {
    uint64_t offset, size;
  };
  Range ranges[format::kSectionCount];
  auto section = [&](int i, uint64_t align, auto&& body) {
    w.pad_to(align);
    uint64_t start = w.size();
    body();
    ranges[i] = {start, w.size() - start};
  };
  section(0, format::kSectionAlign, [&] { write_meta(w, p); });
  section(1, format::kSectionAlign, [&] { write_tensors(w, p); });
  section(2, format::kSectionAlign, [&] { write_instructions(w, p); });
  section(3, kWeightAlign, [&] {
    out.reserve(out.size() + weights_bytes);
    if (weights_bytes) w.raw(weights, weights_bytes);
  });

  for (uint32_t i = 0; i < format::kSectionCount; ++i) {
    size_t e = format::kFixedHeaderSize + i * format::kSectionEntrySize;
    w.put_u32_at(e, uint32_t(format::kSectionOrder[i]));
    w.put_u32_at(e + 4, crc32c(out.data() + ranges[i].offset, ranges[i].size));
    w.put_u64_at(e + 8, ranges[i].offset);
    w.put_u64_at(e + 16, ranges[i].size);
  }
  std::memcpy(out.data(), format::kMagic, sizeof(format::kMagic));
  w.put_u32_at(format::kOffVersion, kFormatVersion);
  w.put_u32_at(format::kOffHeaderSize, uint32_t(format::kHeaderSize));
  w.put_u32_at(format::kOffFlags, 0);
  w.put_u32_at(format::kOffSectionCount, format::kSectionCount);
  w.put_u64_at(format::kOffFileSize, out.size());
  static_assert(SHOAL_VERSION_MAJOR < 256 && SHOAL_VERSION_MINOR < 256 && SHOAL_VERSION_PATCH < 256,
                "the header stores each version part in a byte");
  w.put_u32_at(format::kOffProducerVersion, uint32_t(SHOAL_VERSION_MAJOR) |
                                                uint32_t(SHOAL_VERSION_MINOR) << 8 |
                                                uint32_t(SHOAL_VERSION_PATCH) << 16);
  // The header CRC is computed with its own field still zero.
  w.put_u32_at(format::kOffHeaderCrc, crc32c(out.data(), format::kHeaderSize));
  return out;
}

}  // namespace format

std::vector<uint8_t> serialize(const ProgramData& p) {
  std::vector<uint8_t> out = format::encode(p);

  // Validate with the reader's rules, so serialize never writes a file that
  // deserialize would reject (ids, ranges, alignment, dtypes, shapes...).
  try {
    format::ParseOptions opts;
    opts.verify_checksums = false;
    opts.copy_weights = false;
    format::parse(out.data(), out.size(), opts);
  } catch (const Error& e) {
    throw Error(e.kind(), std::string("cannot serialize program: ") + e.what());
  }
  return out;
}

}  // namespace shoal::program
