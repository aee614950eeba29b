// What both extensions share: shoal._shoal (runtime_module.cpp) and
// shoal._shoal_compiler (compiler_module.cpp). The one place where
// shoal::Error becomes a Python exception (the kind -> class table is
// python/shoal/errors.py's _from_kind), text decoding, and byte views.
#pragma once

#include <pybind11/pybind11.h>

#include <exception>
#include <string>

#include "shoal/error.hpp"

namespace shoal_python {

namespace py = pybind11;

// Decodes text that may hold invalid UTF-8 (names read from a model file).
inline py::str to_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}

// shoal.errors.<class for kind>(message), not raised.
inline py::object shoal_exception(int kind, const std::string& message) {
  return py::module_::import("shoal.errors").attr("_from_kind")(kind, to_str(message));
}

// Sets the Python error for `exc` (an exception instance).
inline void set_python_error(const py::object& exc) {
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
}

// Raises the shoal.errors class for e's kind with e's message.
inline void raise_shoal_error(const shoal::Error& e) {
  try {
    set_python_error(shoal_exception(int(e.kind()), e.what()));
  } catch (py::error_already_set&) {
    // shoal.errors is missing (extension imported on its own): keep the text.
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
}

// Makes shoal::Error thrown by this module's functions arrive as shoal.errors
// classes. Each module registers it for itself (module-local).
inline void register_error_translator() {
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const shoal::Error& e) {
      raise_shoal_error(e);
    }
  });
}

// A contiguous read-only view of any buffer-protocol object (bytes,
// bytearray, memoryview, numpy uint8 array), released on destruction.
class ByteView {
 public:
  explicit ByteView(const py::object& obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_SIMPLE) != 0) throw py::error_already_set();
  }
  ~ByteView() { PyBuffer_Release(&view_); }
  ByteView(const ByteView&) = delete;
  ByteView& operator=(const ByteView&) = delete;
  const void* data() const { return view_.buf; }
  size_t size() const { return size_t(view_.len); }

 private:
  Py_buffer view_{};
};

}  // namespace shoal_python
