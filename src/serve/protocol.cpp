#include "serve/protocol.hpp"

#include <charconv>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

namespace shoal::serve {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& message) { throw HttpError(400, message); }

struct DatatypeName {
  DType dtype;
  const char* name;
};
constexpr DatatypeName kDatatypes[] = {
    {DType::f32, "FP32"}, {DType::f64, "FP64"}, {DType::i64, "INT64"},    {DType::i32, "INT32"},
    {DType::i8, "INT8"},  {DType::u8, "UINT8"}, {DType::boolean, "BOOL"},
};

// The sample shape of a model tensor: its shape without the batch dim.
Shape sample_shape(const Shape& info_shape) {
  if (!info_shape.empty() && info_shape[0] == 1)
    return Shape(info_shape.begin() + 1, info_shape.end());
  return info_shape;
}

std::string shape_text(const Shape& sample) {
  std::string s = "[N";
  for (int64_t d : sample) s += "," + std::to_string(d);
  return s + "]";
}

std::string names(const std::vector<TensorInfo>& infos) {
  std::string s;
  for (const TensorInfo& t : infos) s += (s.empty() ? "'" : ", '") + t.name + "'";
  return s;
}

const json* member(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// "parameters" of an object (a JSON object when present).
const json* parameters(const json& object, const std::string& what) {
  const json* p = member(object, "parameters");
  if (p && !p->is_object()) bad(what + ": \"parameters\" must be an object");
  return p;
}

bool bool_parameter(const json* params, const char* key, bool fallback, const std::string& what) {
  if (!params) return fallback;
  const json* v = member(*params, key);
  if (!v) return fallback;
  if (!v->is_boolean()) bad(what + ": parameter \"" + key + "\" must be true or false");
  return v->get<bool>();
}

int64_t nonnegative_integer(const json& v, const std::string& what) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) bad(what + " is too large");
    return int64_t(u);
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return v.get<int64_t>();
  bad(what + " must be a non-negative integer");
}

// Writes JSON number `v` as element `i` of `out` (dtype `t`).
void put_element(const json& v, DType t, uint8_t* out, size_t i, const std::string& what) {
  auto fail = [&] {
    bad(what + ": element " + std::to_string(i) + " is not a valid " + datatype_name(t) + " value");
  };
  auto integer = [&](int64_t lo, int64_t hi) -> int64_t {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(hi)) fail();
      return int64_t(u);
    }
    if (!v.is_number_integer()) fail();
    const int64_t x = v.get<int64_t>();
    if (x < lo || x > hi) fail();
    return x;
  };
  switch (t) {
    case DType::f32: {
      if (!v.is_number()) fail();
      const float x = float(v.get<double>());
      std::memcpy(out + i * 4, &x, 4);
      return;
    }
    case DType::f64: {
      if (!v.is_number()) fail();
      const double x = v.get<double>();
      std::memcpy(out + i * 8, &x, 8);
      return;
    }
    case DType::i64: {
      const int64_t x =
          integer(std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max());
      std::memcpy(out + i * 8, &x, 8);
      return;
    }
    case DType::i32: {
      const int32_t x = int32_t(
          integer(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
      std::memcpy(out + i * 4, &x, 4);
      return;
    }
    case DType::i8:
      out[i] = uint8_t(int8_t(integer(-128, 127)));
      return;
    case DType::u8:
      out[i] = uint8_t(integer(0, 255));
      return;
    case DType::boolean:
      if (!v.is_boolean()) fail();
      out[i] = v.get<bool>() ? 1 : 0;
      return;
    case DType::undefined:
      break;
  }
  fail();
}

// Flattens "data" into `out`: flat (any count, checked by the caller), or
// nested as deep as the shape, each level an array of shape[depth] arrays
// or, at the last dim, of shape[depth] numbers.
void flatten(const json& data, const Shape& shape, size_t depth, DType t, uint8_t* out, size_t& n,
             size_t total, const std::string& what) {
  const bool nested = !data.empty() && data[0].is_array();
  if ((nested || depth > 0) && (depth >= shape.size() || int64_t(data.size()) != shape[depth] ||
                                (!nested && depth + 1 != shape.size())))
    bad(what + ": nested \"data\" does not match shape " + shape_str(shape));
  for (const json& v : data) {
    if (v.is_array() != nested) bad(what + ": \"data\" mixes arrays and numbers at one level");
    if (nested) {
      flatten(v, shape, depth + 1, t, out, n, total, what);
      continue;
    }
    if (n >= total)
      bad(what + ": \"data\" holds more than the " + std::to_string(total) + " elements of shape " +
          shape_str(shape));
    put_element(v, t, out, n, what);
    ++n;
  }
}

// One input from its JSON object; binary data comes from `binary` at
// `offset`, which advances.
/// The values of nested JSON arrays (non-array members count one each).
size_t leaf_count(const json& j) {
  if (!j.is_array()) return 1;
  size_t n = 0;
  for (const json& e : j) n += leaf_count(e);
  return n;
}

void decode_input(const json& in, const TensorInfo& info, std::string_view binary, size_t& offset,
                  bool have_binary, InputTensor& out) {
  const std::string what = "input '" + info.name + "'";
  const json* dt = member(in, "datatype");
  if (!dt || !dt->is_string()) bad(what + ": \"datatype\" (a string) is missing");
  DType dtype;
  if (!datatype_from_name(dt->get_ref<const std::string&>(), dtype))
    bad(what + ": unsupported datatype '" + dt->get<std::string>() + "'");
  if (dtype != info.dtype)
    bad(what + " has datatype " + datatype_name(info.dtype) + ", got " + dt->get<std::string>());

  const json* sh = member(in, "shape");
  if (!sh || !sh->is_array()) bad(what + ": \"shape\" (an array) is missing");
  const Shape sample = sample_shape(info.shape);
  Shape shape;
  for (size_t d = 0; d < sh->size(); ++d)
    shape.push_back(nonnegative_integer((*sh)[d], what + ": shape dim " + std::to_string(d)));
  bool ok = shape.size() == sample.size() + 1 && shape[0] >= 1;
  for (size_t d = 0; ok && d < sample.size(); ++d) ok = shape[d + 1] == sample[d];
  if (!ok)
    bad(what + " must have shape " + shape_text(sample) + " (N >= 1 samples), got " +
        shape_str(shape));
  const size_t esize = dtype_size(dtype);
  const size_t per_sample = size_t(shape_numel(sample)) * esize;
  // N is bounded by what the body can hold; this keeps the byte count exact.
  const size_t limit = std::numeric_limits<size_t>::max() / 2;
  if (per_sample > 0 && uint64_t(shape[0]) > limit / per_sample)
    bad(what + ": shape " + shape_str(shape) + " is too large");
  const size_t bytes = per_sample * size_t(shape[0]);
  out.shape = shape;
  out.bytes = bytes;

  const json* params = parameters(in, what);
  const json* bsize = params ? member(*params, "binary_data_size") : nullptr;
  const json* data = member(in, "data");
  if (bsize) {
    if (!have_binary)
      bad(what +
          " has \"binary_data_size\" but the request has no binary data "
          "(Inference-Header-Content-Length header)");
    if (data) bad(what + " has both \"data\" and \"binary_data_size\"");
    const int64_t size = nonnegative_integer(*bsize, what + ": \"binary_data_size\"");
    if (uint64_t(size) != bytes)
      bad(what + ": \"binary_data_size\" is " + std::to_string(size) + " bytes; shape " +
          shape_str(shape) + " of " + datatype_name(dtype) + " needs " + std::to_string(bytes));
    if (bytes > binary.size() - offset)
      bad(what + ": the binary data is truncated: " + std::to_string(bytes) + " bytes needed, " +
          std::to_string(binary.size() - offset) + " left");
    out.data = reinterpret_cast<const uint8_t*>(binary.data()) + offset;
    offset += bytes;
    return;
  }
  if (!data) bad(what + ": neither \"data\" nor a \"binary_data_size\" parameter");
  if (!data->is_array()) bad(what + ": \"data\" must be an array");
  const size_t total = bytes / esize;
  // Counted before the buffer is sized: a shape may claim far more elements
  // than the request holds (fuzz: [1888888888888888, 2] ran out of memory).
  const size_t have = leaf_count(*data);
  if (have != total)
    bad(what + ": \"data\" holds " + std::to_string(have) + " elements; shape " +
        shape_str(shape) + " needs " + std::to_string(total));
  out.owned.assign(bytes, 0);
  size_t n = 0;
  flatten(*data, shape, 0, dtype, out.owned.data(), n, total, what);
  if (n != total)
    bad(what + ": \"data\" holds " + std::to_string(n) + " elements; shape " + shape_str(shape) +
        " needs " + std::to_string(total));
  out.data = out.owned.data();
}

json tensor_header(const std::string& name, DType dtype, const Shape& shape) {
  return json{{"name", name}, {"datatype", datatype_name(dtype)}, {"shape", shape}};
}

template <typename T>
json json_values(const void* p, size_t n) {
  json a = json::array();
  const T* v = static_cast<const T*>(p);
  for (size_t i = 0; i < n; ++i) a.push_back(v[i]);
  return a;
}

json json_data(const Tensor& t) {
  const size_t n = size_t(t.numel());
  switch (t.dtype()) {
    case DType::f32:
      return json_values<float>(t.data(), n);
    case DType::f64:
      return json_values<double>(t.data(), n);
    case DType::i64:
      return json_values<int64_t>(t.data(), n);
    case DType::i32:
      return json_values<int32_t>(t.data(), n);
    case DType::i8:
      return json_values<int8_t>(t.data(), n);
    case DType::u8:
      return json_values<uint8_t>(t.data(), n);
    case DType::boolean: {
      json a = json::array();
      const uint8_t* v = static_cast<const uint8_t*>(t.data());
      for (size_t i = 0; i < n; ++i) a.push_back(v[i] != 0);
      return a;
    }
    case DType::undefined:
      break;
  }
  throw Error(ErrorKind::internal, "an output without a dtype");
}

json tensors_metadata(const std::vector<TensorInfo>& infos) {
  json a = json::array();
  for (const TensorInfo& t : infos) {
    Shape s = batch_shape(t.shape, -1);
    a.push_back(tensor_header(t.name, t.dtype, s));
  }
  return a;
}

}  // namespace

const char* datatype_name(DType dtype) noexcept {
  for (const DatatypeName& d : kDatatypes)
    if (d.dtype == dtype) return d.name;
  return "UNDEFINED";
}

bool datatype_from_name(std::string_view name, DType& dtype) noexcept {
  for (const DatatypeName& d : kDatatypes)
    if (name == d.name) {
      dtype = d.dtype;
      return true;
    }
  return false;
}

Shape batch_shape(const Shape& info_shape, int64_t n) {
  Shape s = sample_shape(info_shape);
  s.insert(s.begin(), n);
  return s;
}

size_t parse_header_length(std::string_view value, size_t body_size) {
  size_t n = 0;
  const char* end = value.data() + value.size();
  const auto r = std::from_chars(value.data(), end, n);
  if (value.empty() || r.ec != std::errc() || r.ptr != end)
    bad("Inference-Header-Content-Length must be a decimal byte count, got '" + std::string(value) +
        "'");
  if (n > body_size)
    bad("Inference-Header-Content-Length is " + std::to_string(n) + " but the body has only " +
        std::to_string(body_size) + " bytes");
  return n;
}

InferRequest decode_infer_request(std::string_view body, std::optional<size_t> header_length,
                                  const std::vector<TensorInfo>& inputs,
                                  const std::vector<TensorInfo>& outputs) {
  const size_t json_size = header_length ? *header_length : body.size();
  if (json_size > body.size()) bad("Inference-Header-Content-Length is larger than the body");
  const std::string_view text = body.substr(0, json_size);
  const std::string_view binary = body.substr(json_size);
  json doc;
  try {
    doc = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    bad(std::string("malformed JSON: ") + e.what());
  }
  if (!doc.is_object()) bad("the request must be a JSON object");

  InferRequest req;
  if (const json* id = member(doc, "id")) {
    if (!id->is_string()) bad("\"id\" must be a string");
    req.id = id->get<std::string>();
  }
  const json* request_params = parameters(doc, "the request");

  const json* ins = member(doc, "inputs");
  if (!ins || !ins->is_array()) bad("\"inputs\" (an array) is missing");
  req.inputs.resize(inputs.size());
  std::vector<bool> seen(inputs.size(), false);
  size_t offset = 0;
  for (const json& in : *ins) {
    if (!in.is_object()) bad("each of \"inputs\" must be an object");
    const json* name = member(in, "name");
    if (!name || !name->is_string()) bad("an input has no \"name\"");
    const std::string& n = name->get_ref<const std::string&>();
    size_t k = 0;
    while (k < inputs.size() && inputs[k].name != n) ++k;
    if (k == inputs.size())
      bad("unknown input '" + n + "'; the model's inputs are " + names(inputs));
    if (seen[k]) bad("input '" + n + "' is given twice");
    seen[k] = true;
    decode_input(in, inputs[k], binary, offset, header_length.has_value(), req.inputs[k]);
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (!seen[k]) bad("input '" + inputs[k].name + "' is missing");
    const int64_t n = req.inputs[k].shape[0];
    if (k > 0 && n != req.batch)
      bad("all inputs must have the same batch size; input '" + inputs[k].name + "' has " +
          std::to_string(n) + ", input '" + inputs[0].name + "' " + std::to_string(req.batch));
    req.batch = n;
  }
  if (offset != binary.size())
    bad("the binary data has " + std::to_string(binary.size()) + " bytes; the inputs' " +
        "\"binary_data_size\" parameters add up to " + std::to_string(offset));

  const bool all_binary =
      bool_parameter(request_params, "binary_data_output", false, "the request");
  const json* outs = member(doc, "outputs");
  if (outs && !outs->is_array()) bad("\"outputs\" must be an array");
  if (!outs || outs->empty()) {
    for (size_t k = 0; k < outputs.size(); ++k) {
      req.outputs.push_back(k);
      req.binary.push_back(all_binary);
    }
    return req;
  }
  for (const json& o : *outs) {
    if (!o.is_object()) bad("each of \"outputs\" must be an object");
    const json* name = member(o, "name");
    if (!name || !name->is_string()) bad("an output has no \"name\"");
    const std::string& n = name->get_ref<const std::string&>();
    size_t k = 0;
    while (k < outputs.size() && outputs[k].name != n) ++k;
    if (k == outputs.size())
      bad("unknown output '" + n + "'; the model's outputs are " + names(outputs));
    const std::string what = "output '" + n + "'";
    req.outputs.push_back(k);
    req.binary.push_back(bool_parameter(parameters(o, what), "binary_data", all_binary, what));
  }
  return req;
}

EncodedResponse encode_infer_response(const std::string& model_name, const InferRequest& request,
                                      const std::vector<Tensor>& outputs,
                                      const std::vector<TensorInfo>& infos) {
  json doc = {{"model_name", model_name}, {"model_version", "1"}};
  if (!request.id.empty()) doc["id"] = request.id;
  json outs = json::array();
  std::vector<const Tensor*> binary;
  for (size_t i = 0; i < request.outputs.size(); ++i) {
    const size_t k = request.outputs[i];
    const Tensor& t = outputs.at(k);
    json o = tensor_header(infos.at(k).name, t.dtype(), t.shape());
    if (request.binary[i]) {
      o["parameters"] = {{"binary_data_size", t.bytes()}};
      binary.push_back(&t);
    } else {
      o["data"] = json_data(t);
    }
    outs.push_back(std::move(o));
  }
  doc["outputs"] = std::move(outs);
  EncodedResponse r;
  r.body = doc.dump(-1, ' ', false, json::error_handler_t::replace);
  r.header_length = r.body.size();
  r.binary = !binary.empty();
  size_t extra = 0;
  for (const Tensor* t : binary) extra += t->bytes();
  r.body.reserve(r.body.size() + extra);
  for (const Tensor* t : binary) r.body.append(static_cast<const char*>(t->data()), t->bytes());
  return r;
}

std::string model_metadata(const std::string& name, const std::vector<TensorInfo>& inputs,
                           const std::vector<TensorInfo>& outputs) {
  const json doc = {{"name", name},
                    {"versions", {"1"}},
                    {"platform", "shoal"},
                    {"inputs", tensors_metadata(inputs)},
                    {"outputs", tensors_metadata(outputs)}};
  return doc.dump();
}

std::string error_body(const std::string& message) {
  return json{{"error", message}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace shoal::serve
