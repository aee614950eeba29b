// The Open Inference Protocol (KServe v2) over REST: decoding an infer
// request (JSON tensors and the binary tensor data extension) against a
// model's inputs, and encoding the response. Pure functions over bytes, no
// HTTP and no runtime, so the fuzz target (fuzz/fuzz_serve_request.cpp) runs
// exactly what the server runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "shoal/shoal.hpp"

namespace shoal::serve {

/// A request the server refuses, with the HTTP status it answers
/// (400 bad request, 404 unknown model, 413 too large, 503 overloaded or not
/// ready) and a message for {"error": "..."}.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  int status() const noexcept { return status_; }

 private:
  int status_;
};

/// The protocol's name of a dtype ("FP32", "INT64", "BOOL", ...).
const char* datatype_name(DType dtype) noexcept;
/// The dtype the protocol calls `name`; false for names shoal has no dtype
/// for (FP16, BYTES, ...).
bool datatype_from_name(std::string_view name, DType& dtype) noexcept;

/// The shape of `info` (one sample, batch dim 1) for a batch of n.
Shape batch_shape(const Shape& info_shape, int64_t n);

/// One input of a request, in the model's dtype and C order. Its bytes are
/// either a view into the request body (the binary extension: no copy) or
/// owned (decoded from JSON numbers).
struct InputTensor {
  Shape shape;  ///< [N, ...the model's sample shape]
  const uint8_t* data = nullptr;
  size_t bytes = 0;
  std::vector<uint8_t> owned;
};

/// A decoded infer request. Views into the body stay valid while the body
/// lives.
struct InferRequest {
  std::string id;                   ///< echoed in the response when given
  std::vector<InputTensor> inputs;  ///< one per model input, in the model's order
  int64_t batch = 0;                ///< N, the same for every input
  std::vector<size_t> outputs;      ///< model outputs to return, in the order asked
  std::vector<bool> binary;         ///< per returned output: binary extension or JSON
};

/// Parses the Inference-Header-Content-Length header; HttpError 400 on
/// anything but a decimal number no larger than body_size.
size_t parse_header_length(std::string_view value, size_t body_size);

/// Decodes the body of POST /v2/models/NAME/infer. `header_length` is the
/// Inference-Header-Content-Length value when the header was sent: the
/// first header_length bytes are the JSON, the rest the binary tensor data
/// of the inputs with a "binary_data_size" parameter, in input order.
/// Every name, datatype, shape, element count and byte count is checked
/// against `inputs`/`outputs`; anything wrong is HttpError 400 naming it.
InferRequest decode_infer_request(std::string_view body, std::optional<size_t> header_length,
                                  const std::vector<TensorInfo>& inputs,
                                  const std::vector<TensorInfo>& outputs);

/// An encoded infer response: `body` is the JSON, followed by the binary
/// data of the outputs asked as binary; header_length is the JSON's size
/// (sent as Inference-Header-Content-Length when binary is true).
struct EncodedResponse {
  std::string body;
  size_t header_length = 0;
  bool binary = false;
};

/// Encodes the response to `request` from the model's outputs for it (each
/// with leading dim request.batch).
EncodedResponse encode_infer_response(const std::string& model_name, const InferRequest& request,
                                      const std::vector<Tensor>& outputs,
                                      const std::vector<TensorInfo>& infos);

/// GET /v2/models/NAME: {"name", "versions", "platform", "inputs", "outputs"}
/// with each tensor's shape as [-1, ...] (the batch dim is variable).
std::string model_metadata(const std::string& name, const std::vector<TensorInfo>& inputs,
                           const std::vector<TensorInfo>& outputs);

/// {"error": message} as JSON text.
std::string error_body(const std::string& message);

}  // namespace shoal::serve
