#include "frontend/onnx/tensor_proto.hpp"

#include <cstring>

#include "shoal/error.hpp"

namespace shoal::frontend {
namespace {

template <class Src, class Dst>
void copy_field(const google::protobuf::RepeatedField<Src>& f, HostTensor& t,
                const std::string& what) {
  if (int64_t(f.size()) != t.numel())
    throw Error(ErrorKind::invalid_argument,
                what + " holds " + std::to_string(f.size()) +
                    " values but its shape " + shape_str(t.shape()) +
                    " needs " + std::to_string(t.numel()));
  Dst* out = t.as<Dst>();
  for (int i = 0; i < f.size(); ++i) out[i] = static_cast<Dst>(f.Get(i));
}

/// Values stored in the typed field that holds `dtype`'s data.
uint64_t stored_values(const onnx::TensorProto& t, DType dtype) {
  switch (dtype) {
    case DType::f32: return uint64_t(t.float_data_size());
    case DType::f64: return uint64_t(t.double_data_size());
    case DType::i64: return uint64_t(t.int64_data_size());
    case DType::i32:
    case DType::i8:
    case DType::u8:
    case DType::boolean: return uint64_t(t.int32_data_size());
    case DType::undefined: break;
  }
  return 0;
}

}  // namespace

HostTensor tensor_from_proto(const onnx::TensorProto& t, const std::string& what) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    throw Error(ErrorKind::unsupported,
                what + " keeps its data in an external file; save the model "
                       "with all tensors inside (onnx.save(model, path, "
                       "save_as_external_data=False))");
  if (!dtype_valid(t.data_type()))
    throw Error(ErrorKind::unsupported,
                what + " has ONNX data type " + std::to_string(t.data_type()) +
                    ", which shoal does not support");
  Shape shape(t.dims().begin(), t.dims().end());
  for (int64_t d : shape)
    if (d < 0 || d > (int64_t(1) << 40))
      throw Error(ErrorKind::invalid_argument,
                  what + " has an invalid dimension in shape " + shape_str(shape));
  // The data must be there before anything is allocated: a few bytes of
  // model must not make the importer allocate gigabytes.
  const DType dtype = DType(t.data_type());
  uint64_t numel = 1, need = 0;
  bool overflow = false;
  for (int64_t d : shape) overflow = overflow || __builtin_mul_overflow(numel, uint64_t(d), &numel);
  overflow = overflow || __builtin_mul_overflow(numel, uint64_t(dtype_size(dtype)), &need);
  if (overflow || !shape_fits(shape, dtype))
    throw Error(ErrorKind::invalid_argument,
                what + " has shape " + shape_str(shape) +
                    ": too many elements (2^62 bytes or more, zero dims counted as one)");
  if (t.has_raw_data() ? t.raw_data().size() != need : stored_values(t, dtype) != numel)
    throw Error(ErrorKind::invalid_argument,
                what + " has " +
                    (t.has_raw_data() ? std::to_string(t.raw_data().size()) + " bytes of raw data"
                                      : std::to_string(stored_values(t, dtype)) + " values") +
                    "; shape " + shape_str(shape) + " of " + dtype_name(dtype) + " needs " +
                    (t.has_raw_data() ? std::to_string(need) + " bytes" : std::to_string(numel)));
  HostTensor out(dtype, shape);
  if (t.has_raw_data()) {
    if (t.raw_data().size() != out.bytes())
      throw Error(ErrorKind::invalid_argument,
                  what + " has " + std::to_string(t.raw_data().size()) +
                      " bytes of raw data; shape " + shape_str(shape) + " of " +
                      dtype_name(out.dtype()) + " needs " +
                      std::to_string(out.bytes()));
    if (out.bytes()) std::memcpy(out.data(), t.raw_data().data(), out.bytes());
    return out;
  }
  switch (out.dtype()) {
    case DType::f32: copy_field<float, float>(t.float_data(), out, what); break;
    case DType::f64: copy_field<double, double>(t.double_data(), out, what); break;
    case DType::i64: copy_field<int64_t, int64_t>(t.int64_data(), out, what); break;
    case DType::i32: copy_field<int32_t, int32_t>(t.int32_data(), out, what); break;
    case DType::i8: copy_field<int32_t, int8_t>(t.int32_data(), out, what); break;
    case DType::u8: copy_field<int32_t, uint8_t>(t.int32_data(), out, what); break;
    case DType::boolean: copy_field<int32_t, uint8_t>(t.int32_data(), out, what); break;
    case DType::undefined: break;
  }
  return out;
}

Attrs attrs_from_proto(const onnx::NodeProto& node, const std::string& what) {
  Attrs a;
  for (const auto& at : node.attribute()) {
    const std::string where = what + " attribute '" + at.name() + "'";
    switch (at.type()) {
      case onnx::AttributeProto::INT: a.set(at.name(), int64_t(at.i())); break;
      case onnx::AttributeProto::FLOAT: a.set(at.name(), at.f()); break;
      case onnx::AttributeProto::STRING: a.set(at.name(), at.s()); break;
      case onnx::AttributeProto::INTS:
        a.set(at.name(), std::vector<int64_t>(at.ints().begin(), at.ints().end()));
        break;
      case onnx::AttributeProto::FLOATS:
        a.set(at.name(), std::vector<float>(at.floats().begin(), at.floats().end()));
        break;
      case onnx::AttributeProto::TENSOR:
        a.set(at.name(), tensor_from_proto(at.t(), where));
        break;
      default:
        throw Error(ErrorKind::unsupported,
                    where + " has a kind (graph, strings, sparse tensor) that "
                            "shoal does not support");
    }
  }
  return a;
}

}  // namespace shoal::frontend
