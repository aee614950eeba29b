// shoal._shoal: a thin pybind11 binding of the runtime half of
// include/shoal/shoal.hpp (programs, runtimes, devices, operators, version);
// it links libshoal_runtime only, so that a worker needs no compiler. The
// compiler's functions are shoal._shoal_compiler (compiler_module.cpp),
// which shoal.compile imports when first used.
//
// Conveniences (model/shape argument forms, input normalisation, the public
// Runtime wrapper) live in python/shoal/__init__.py. This file only converts
// types, releases the GIL around long calls, keeps raw buffers safe (every
// array handed to C++ is made contiguous and aligned; what the model expects
// of it is Program::check_inputs' to say), and translates shoal::Error into
// the classes of python/shoal/errors.py (common.hpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <exception>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "shoal/shoal.hpp"

namespace py = pybind11;

namespace {

using shoal::DType;
using shoal::Error;
using shoal::ErrorKind;
using shoal_python::ByteView;
using shoal_python::to_str;

std::string py_shape_str(const shoal::Shape& s) {
  std::ostringstream o;
  o << '(';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  if (s.size() == 1) o << ',';
  o << ')';
  return o.str();
}

py::tuple shape_tuple(const shoal::Shape& s) {
  py::tuple t(s.size());
  for (size_t i = 0; i < s.size(); ++i) t[i] = py::int_(s[i]);
  return t;
}

py::dtype numpy_dtype(DType t) {
  if (t == DType::undefined) throw Error(ErrorKind::internal, "tensor with undefined dtype");
  return py::dtype(std::string(shoal::dtype_name(t)));
}

py::bytes to_pybytes(const std::vector<uint8_t>& v) {
  return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
}

std::string program_repr(const shoal::Program& p) {
  if (!p) return "<shoal.Program (empty)>";
  auto list = [](const std::vector<shoal::TensorInfo>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) s += ", ";
      s += v[i].name + ":" + shoal::shape_str(v[i].shape) + ":" + shoal::dtype_name(v[i].dtype);
    }
    return s + "]";
  };
  std::ostringstream o;
  o << "<shoal.Program inputs=" << list(p.inputs()) << " outputs=" << list(p.outputs())
    << " devices=" << p.devices() << " clusters=" << p.clusters()
    << " mode=" << shoal::mode_name(p.mode()) << " instructions=" << p.num_instructions()
    << " arena_bytes=" << p.arena_bytes() << " weight_bytes=" << p.weight_bytes() << ">";
  return o.str();
}

const shoal::Program& checked(const shoal::Program& p) {
  if (!p) throw Error(ErrorKind::invalid_argument, "empty shoal.Program");
  return p;
}

// Wraps a numpy array in a Tensor view (`arr` must stay referenced while the
// view is used): conversion only. What the model expects (count, dtype,
// shape, batch) is checked once, in C++ (Program::check_inputs, which every
// run runs); an array whose element type shoal has no DType
// for (float16, byte-swapped, object, strings) cannot be wrapped at all.
shoal::Tensor input_view(py::array& arr, const std::string& name, shoal::DType want) {
  const std::string got = py::str(arr.dtype());
  shoal::DType dtype = shoal::DType::undefined;
  for (shoal::DType d : {shoal::DType::f32, shoal::DType::u8, shoal::DType::i8, shoal::DType::i32,
                         shoal::DType::i64, shoal::DType::boolean, shoal::DType::f64})
    if (got == shoal::dtype_name(d)) dtype = d;
  if (dtype == shoal::DType::undefined)
    throw Error(ErrorKind::dtype,
                "input '" + name + "' must be " + shoal::dtype_name(want) + ", got " + got);
  // Copies strided or misaligned arrays (kernels assume aligned elements).
  constexpr int kAligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  if ((arr.flags() & (py::array::c_style | kAligned)) != (py::array::c_style | kAligned))
    arr = py::array(py::module_::import("numpy").attr("require")(arr, py::none(), "CA"));
  return shoal::Tensor::view(const_cast<void*>(arr.data()), dtype,
                             shoal::Shape(arr.shape(), arr.shape() + arr.ndim()));
}

// Wraps a sequence of arrays, one per model input, in views. `keep` holds the
// (possibly converted) arrays while the views are used.
std::vector<shoal::Tensor> input_views(const shoal::Program& program, const py::sequence& xs,
                                       std::vector<py::array>& keep) {
  const std::vector<shoal::TensorInfo> infos = program.inputs();
  std::vector<shoal::Tensor> in;
  for (size_t i = 0; i < size_t(py::len(xs)); ++i) {
    const std::string name = i < infos.size() ? infos[i].name : std::to_string(i);
    py::object item = xs[i];
    if (!py::isinstance<py::array>(item))
      throw Error(ErrorKind::invalid_argument,
                  "input '" + name + "': expected a numpy array, got " +
                      std::string(py::str(item.get_type().attr("__name__"))));
    keep.push_back(py::reinterpret_borrow<py::array>(item));
    in.push_back(
        input_view(keep.back(), name, i < infos.size() ? infos[i].dtype : shoal::DType::f32));
  }
  return in;
}

// Output tensors -> numpy arrays sharing their buffers.
py::list output_arrays(std::vector<shoal::Tensor>& out) {
  py::list result;
  for (shoal::Tensor& t : out) {
    // The array shares the tensor's buffer; the capsule keeps it alive.
    auto* owner = new shoal::Tensor(std::move(t));
    py::capsule base(owner, [](void* o) { delete static_cast<shoal::Tensor*>(o); });
    result.append(py::array(numpy_dtype(owner->dtype()), owner->shape(), {}, owner->data(), base));
  }
  return result;
}

// f(inputs) on views of `xs`, without the GIL (the views' arrays are kept,
// and released after the GIL is back).
template <class F>
auto on_inputs(shoal::Runtime& rt, const py::sequence& xs, F f) {
  std::vector<py::array> keep;
  std::vector<shoal::Tensor> in = input_views(rt.program(), xs, keep);
  py::gil_scoped_release nogil;
  return f(in);
}

py::list run(shoal::Runtime& rt, const py::sequence& xs) {
  std::vector<shoal::Tensor> out = on_inputs(rt, xs, [&](const auto& in) { return rt.run(in); });
  return output_arrays(out);
}

// Every layer's outputs for the first sample: [(name, op, [arrays])].
py::list run_layers(shoal::Runtime& rt, const py::sequence& xs) {
  std::vector<shoal::LayerOutputs> layers =
      on_inputs(rt, xs, [&](const auto& in) { return rt.run_layers(in); });
  py::list out;
  for (shoal::LayerOutputs& l : layers)
    out.append(py::make_tuple(l.name, l.op, output_arrays(l.outputs)));
  return out;
}

// put/get: timeouts in milliseconds, < 0 = no limit.
bool put(shoal::Runtime& rt, const py::sequence& xs, uint64_t tag, double timeout_ms) {
  std::vector<py::array> keep;
  std::vector<shoal::Tensor> in = input_views(rt.program(), xs, keep);
  py::gil_scoped_release nogil;  // put copies the inputs before returning
  return rt.put(in, tag, timeout_ms);
}

// Tags are < kNoTag; the value marks "get() failed before taking a result".
constexpr uint64_t kNoTag = ~uint64_t(0);

// Returns None on timeout, else (outputs, tag). When the taken input failed,
// raises its error with the attribute `_shoal_tag` set to the input's tag.
py::object get(shoal::Runtime& rt, double timeout_ms) {
  std::vector<shoal::Tensor> out;
  uint64_t tag = kNoTag;
  bool ok = false;
  std::exception_ptr failed;
  try {
    py::gil_scoped_release nogil;
    ok = rt.get(out, tag, timeout_ms);
  } catch (...) {
    if (tag == kNoTag) throw;  // nothing taken (e.g. nothing pending)
    failed = std::current_exception();
  }
  if (failed) {
    std::string message = "internal error";
    int kind = int(ErrorKind::internal);
    try {
      std::rethrow_exception(failed);
    } catch (const Error& e) {
      message = e.what();
      kind = int(e.kind());
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
    }
    py::object exc = shoal_python::shoal_exception(kind, message);
    exc.attr("_shoal_tag") = py::int_(tag);
    shoal_python::set_python_error(exc);
    throw py::error_already_set();
  }
  if (!ok) return py::none();
  return py::make_tuple(output_arrays(out), py::int_(tag));
}

py::list profile(const shoal::Runtime& rt) {
  py::list l;
  for (const shoal::LayerProfile& lp : rt.profile()) {
    py::dict d;
    d["name"] = to_str(lp.name);
    d["op"] = to_str(lp.op);
    d["impl"] = to_str(lp.impl);
    d["precision"] = to_str(lp.precision);
    d["ms"] = lp.ms;
    d["flops"] = lp.flops;
    d["calls"] = lp.calls;
    l.append(d);
  }
  return l;
}

}  // namespace

PYBIND11_MODULE(_shoal, m) {
  m.doc() = "shoal's C++ core; use the `shoal` package instead.";

  shoal_python::register_error_translator();

  // ErrorKind values, so that tests can check errors.py's table covers them.
  py::dict kinds;
  for (ErrorKind k : {ErrorKind::invalid_argument, ErrorKind::unsupported, ErrorKind::out_of_memory,
                      ErrorKind::device, ErrorKind::internal, ErrorKind::dtype})
    kinds[py::int_(int(k))] = shoal::error_kind_name(k);
  m.attr("ERROR_KINDS") = kinds;

  m.def("version", [] { return std::string(shoal::version()); });
  m.def(
      "parse_shape", [](const std::string& text) { return shape_tuple(shoal::parse_shape(text)); },
      py::arg("text"));

  py::class_<shoal::TensorInfo>(m, "TensorInfo")
      .def_property_readonly("name", [](const shoal::TensorInfo& t) { return to_str(t.name); })
      .def_property_readonly("shape",
                             [](const shoal::TensorInfo& t) { return shape_tuple(t.shape); })
      .def_property_readonly("dtype",
                             [](const shoal::TensorInfo& t) { return numpy_dtype(t.dtype); })
      .def_property_readonly("numel", &shoal::TensorInfo::numel)
      .def("__repr__", [](const shoal::TensorInfo& t) {
        return "TensorInfo(name='" + t.name + "', shape=" + py_shape_str(t.shape) +
               ", dtype=" + shoal::dtype_name(t.dtype) + ")";
      });

  py::class_<shoal::Program>(m, "Program")
      .def_static(
          "load",
          [](const std::filesystem::path& path) {
            std::string p = path.string();
            py::gil_scoped_release nogil;
            return shoal::Program::load(p);
          },
          py::arg("path"), "Loads a program file.")
      .def_static(
          "from_bytes",
          [](const py::object& data) {
            ByteView bytes(data);
            py::gil_scoped_release nogil;
            return shoal::Program::from_bytes(bytes.data(), bytes.size());
          },
          py::arg("data"), "Parses a program from bytes (see to_bytes).")
      .def(
          "save",
          [](const shoal::Program& p, const std::filesystem::path& path) {
            std::string s = path.string();
            checked(p);
            py::gil_scoped_release nogil;
            p.save(s);
          },
          py::arg("path"))
      .def("to_bytes",
           [](const shoal::Program& p) {
             std::vector<uint8_t> v;
             {
               checked(p);
               py::gil_scoped_release nogil;
               v = p.to_bytes();
             }
             return to_pybytes(v);
           })
      .def_property_readonly("inputs", [](const shoal::Program& p) { return checked(p).inputs(); })
      .def_property_readonly("outputs",
                             [](const shoal::Program& p) { return checked(p).outputs(); })
      .def(
          "output_size",
          [](const shoal::Program& p, size_t i) {
            const shoal::Program& q = checked(p);
            if (i >= q.outputs().size())
              throw Error(ErrorKind::invalid_argument,
                          "output index " + std::to_string(i) + " out of range: the model has " +
                              std::to_string(q.outputs().size()) + " output(s)");
            return q.output_size(i);
          },
          py::arg("i") = 0)
      .def_property_readonly("devices",
                             [](const shoal::Program& p) { return checked(p).devices(); })
      .def_property_readonly("clusters",
                             [](const shoal::Program& p) { return checked(p).clusters(); })
      .def_property_readonly("split", [](const shoal::Program& p) { return checked(p).split(); })
      .def_property_readonly(
          "mode",
          [](const shoal::Program& p) { return std::string(shoal::mode_name(checked(p).mode())); })
      .def_property_readonly("arena_bytes",
                             [](const shoal::Program& p) { return checked(p).arena_bytes(); })
      .def_property_readonly("weight_bytes",
                             [](const shoal::Program& p) { return checked(p).weight_bytes(); })
      .def_property_readonly("num_instructions",
                             [](const shoal::Program& p) { return checked(p).num_instructions(); })
      .def(
          "check_inputs",
          [](const shoal::Program& p, const py::sequence& xs) {
            std::vector<py::array> keep;
            return checked(p).check_inputs(input_views(p, xs, keep));
          },
          py::arg("inputs"),
          "Checks arrays (one per model input, in order) as Runtime.run would and returns "
          "their batch size N; raises DTypeError or InvalidArgumentError naming the input.")
      .def("describe", [](const shoal::Program& p) { return to_str(checked(p).describe()); })
      .def_property_readonly("target",
                             [](const shoal::Program& p) { return checked(p).info().target; })
      .def(
          "info",
          [](const shoal::Program& p) {
            const shoal::ProgramInfo info = checked(p).info();
            py::list layers;
            for (const shoal::LayerInfo& l : info.layers) {
              py::dict d;
              d["name"] = to_str(l.name);
              d["op"] = l.op;
              d["precision"] = l.precision;
              d["flops"] = l.flops;
              d["inputs"] = l.inputs;
              d["outputs"] = l.outputs;
              layers.append(d);
            }
            py::dict r;
            r["model"] = to_str(info.model);
            r["producer"] = info.producer;
            r["target"] = info.target;
            r["format_version"] = info.format_version;
            r["layers"] = layers;
            return r;
          },
          "What the program records: model, producer, target, format_version and its layers "
          "(name, op, precision, flops per sample, inputs, outputs), in execution order.")
      .def("__repr__", &program_repr)
      .def(py::pickle(
          [](const shoal::Program& p) {
            checked(p);
            return py::make_tuple(to_pybytes(p.to_bytes()));
          },
          [](const py::tuple& state) {
            if (state.size() != 1)
              throw Error(ErrorKind::invalid_argument, "bad pickled shoal.Program state");
            ByteView bytes(state[0]);
            return shoal::Program::from_bytes(bytes.data(), bytes.size());
          }));

  py::class_<shoal::DeviceInfo>(m, "Device")
      .def_readonly("id", &shoal::DeviceInfo::id)
      .def_readonly("kind", &shoal::DeviceInfo::kind)
      .def_readonly("index", &shoal::DeviceInfo::index)
      .def_readonly("name", &shoal::DeviceInfo::name)
      .def_readonly("cores", &shoal::DeviceInfo::cores)
      .def_readonly("compute_units", &shoal::DeviceInfo::compute_units)
      .def_readonly("compute_unit", &shoal::DeviceInfo::compute_unit)
      .def_readonly("clusters", &shoal::DeviceInfo::clusters)
      .def_readonly("memory_bytes", &shoal::DeviceInfo::memory_bytes)
      .def_readonly("host_addressable", &shoal::DeviceInfo::host_addressable)
      .def("describe", &shoal::DeviceInfo::describe)
      .def("to_dict",
           [](const shoal::DeviceInfo& d) {
             py::dict r;
             r["id"] = d.id;
             r["kind"] = d.kind;
             r["index"] = d.index;
             r["name"] = d.name;
             r["cores"] = d.cores;
             r["compute_units"] = d.compute_units;
             r["compute_unit"] = d.compute_unit;
             r["clusters"] = d.clusters;
             r["memory_bytes"] = d.memory_bytes;
             r["host_addressable"] = d.host_addressable;
             return r;
           })
      .def("__repr__",
           [](const shoal::DeviceInfo& d) { return "<shoal.Device " + d.describe() + ">"; });
  m.def("find_device", &shoal::find_device, py::arg("name"));
  m.def("devices", [] { return shoal::devices(); });
  m.def("operators", [] {
    py::list out;
    for (const shoal::OperatorInfo& op : shoal::operators()) {
      py::dict r;
      r["name"] = op.name;
      r["min_opset"] = op.min_opset;
      r["min_inputs"] = op.min_inputs;
      r["max_inputs"] = op.max_inputs;
      r["runtime"] = op.runtime;
      py::list dts;
      for (shoal::DType t : op.dtypes) dts.append(shoal::dtype_name(t));
      r["dtypes"] = dts;
      r["summary"] = op.summary;
      out.append(r);
    }
    return out;
  });
  m.def("operators_markdown", &shoal::operators_markdown);

  py::class_<shoal::Runtime>(m, "Runtime")
      .def(py::init([](const shoal::Program& p, std::optional<std::vector<int>> devices,
                       bool profile, bool share_devices, int micro_batch,
                       const std::string& weights, bool check_inputs) {
             checked(p);
             shoal::RuntimeOptions o;
             if (devices) o.devices = *devices;
             o.profile = profile;
             o.share_devices = share_devices;
             o.micro_batch = micro_batch;
             o.check_inputs = check_inputs;
             if (weights == "copy")
               o.weights = shoal::WeightPlacement::copy;
             else if (weights == "shared")
               o.weights = shoal::WeightPlacement::shared;
             else if (weights != "auto")
               throw shoal::Error(
                   shoal::ErrorKind::invalid_argument,
                   "weights must be 'auto', 'copy' or 'shared', got '" + weights + "'");
             py::gil_scoped_release nogil;
             return std::make_unique<shoal::Runtime>(p, o);
           }),
           py::arg("program"), py::arg("devices") = py::none(), py::arg("profile") = false,
           py::arg("share_devices") = false, py::arg("micro_batch") = 8,
           py::arg("weights") = "auto", py::arg("check_inputs") = false)
      .def("run_layers", &run_layers, py::arg("inputs"),
           "Every layer's outputs for the first sample: [(name, op, [arrays])].")
      .def("run", &run, py::arg("inputs"),
           "Runs a batch: a sequence of C-contiguous arrays, one per model input.")
      .def("put", &put, py::arg("inputs"), py::arg("tag"), py::arg("timeout_ms"),
           "Starts a batch; False if the queue stayed full for timeout_ms (< 0: no limit).")
      .def("get", &get, py::arg("timeout_ms"),
           "The oldest put's (outputs, tag), or None if not done within timeout_ms.")
      .def_property("queue_capacity", &shoal::Runtime::queue_capacity,
                    [](shoal::Runtime& rt, int64_t c) {
                      if (c < 1)
                        throw Error(ErrorKind::invalid_argument,
                                    "queue_capacity must be >= 1, got " + std::to_string(c));
                      rt.set_queue_capacity(size_t(c));
                    })
      .def_property_readonly("pending", &shoal::Runtime::pending)
      .def("close", &shoal::Runtime::close,
           "Wakes threads waiting in put()/get() with an error; later calls raise.")
      .def("plan", &shoal::Runtime::plan)
      .def_property_readonly("clusters", &shoal::Runtime::clusters)
      .def_property_readonly("program", [](const shoal::Runtime& rt) { return rt.program(); })
      .def_property_readonly("last_run_ms", &shoal::Runtime::last_run_ms)
      .def("profile", &profile)
      .def("reset_profile", &shoal::Runtime::reset_profile);
}
