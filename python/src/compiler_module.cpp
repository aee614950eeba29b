// shoal._shoal_compiler: the compiler half of include/shoal/shoal.hpp
// (shoal::compile, shoal::compile_bytes), linked to libshoal_compiler (ONNX,
// protobuf). shoal.compile imports it on first use, so that `import shoal`
// and running programs need only shoal._shoal and libshoal_runtime; where it
// is not installed, shoal.compile says which package to install.
//
// The programs it returns are shoal._shoal.Program objects (pybind11 shares
// registered types between modules): it imports shoal._shoal first.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "shoal/shoal.hpp"

namespace py = pybind11;

namespace {

using shoal_python::ByteView;
using shoal_python::to_str;

shoal::CompileOptions make_options(std::vector<int64_t> shape, int devices, int clusters,
                                   const std::string& mode, bool optimize, bool winograd,
                                   bool strict, const std::string& precision,
                                   const std::string& target, const py::object* log) {
  shoal::CompileOptions o;
  o.input_shape = std::move(shape);
  o.devices = devices;
  o.clusters = clusters;
  if (!shoal::mode_from_name(mode, o.mode))
    throw shoal::Error(shoal::ErrorKind::invalid_argument,
                       "mode must be 'auto', 'batch' or 'split', got '" + mode + "'");
  o.optimize = optimize;
  o.winograd = winograd;
  o.strict = strict;
  if (!shoal::precision_from_name(precision, o.precision))
    throw shoal::Error(shoal::ErrorKind::invalid_argument,
                       "precision must be 'f32' or 'bf16', got '" + precision + "'");
  o.target = target;
  if (log && !log->is_none()) {
    // Called with the GIL released, maybe from another thread. Captures a
    // raw pointer (copying the std::function must not touch refcounts); the
    // callable outlives the compile call that uses these options.
    o.log = [log](const std::string& line) {
      py::gil_scoped_acquire gil;
      try {
        (*log)(to_str(line));
      } catch (py::error_already_set& e) {
        e.discard_as_unraisable("shoal.compile log callback");
      }
    };
  }
  return o;
}

shoal::Program compile_file(const std::filesystem::path& path, std::vector<int64_t> shape,
                            int devices, int clusters, const std::string& mode, bool optimize,
                            bool winograd, bool strict, const std::string& precision,
                            const std::string& target, const py::object& log) {
  auto opts = make_options(std::move(shape), devices, clusters, mode, optimize, winograd, strict,
                           precision, target, &log);
  std::string p = path.string();
  py::gil_scoped_release nogil;
  return shoal::compile(p, opts);
}

shoal::Program compile_bytes(const py::object& data, std::vector<int64_t> shape, int devices,
                             int clusters, const std::string& mode, bool optimize, bool winograd,
                             bool strict, const std::string& precision, const std::string& target,
                             const py::object& log) {
  auto opts = make_options(std::move(shape), devices, clusters, mode, optimize, winograd, strict,
                           precision, target, &log);
  ByteView bytes(data);
  py::gil_scoped_release nogil;
  return shoal::compile_bytes(bytes.data(), bytes.size(), opts);
}

}  // namespace

PYBIND11_MODULE(_shoal_compiler, m) {
  m.doc() = "shoal's compiler; use shoal.compile instead.";
  py::module_::import("shoal._shoal");  // registers shoal.Program, returned here
  shoal_python::register_error_translator();

  m.def("compile_file", &compile_file, py::arg("path"), py::arg("shape"), py::arg("devices"),
        py::arg("clusters"), py::arg("mode"), py::arg("optimize"), py::arg("winograd"),
        py::arg("strict"), py::arg("precision"), py::arg("target"), py::arg("log").none(true));
  m.def("compile_bytes", &compile_bytes, py::arg("data"), py::arg("shape"), py::arg("devices"),
        py::arg("clusters"), py::arg("mode"), py::arg("optimize"), py::arg("winograd"),
        py::arg("strict"), py::arg("precision"), py::arg("target"), py::arg("log").none(true));
}
