# Debian packages, one per install component (cmake/ShoalInstall.cmake):
#   cd build && cpack -G DEB
# gives libshoal-runtime<soversion> (what a Dask worker needs), shoal (the
# compiler, the C API library and the CLI), libshoal-dev (headers, CMake and
# pkg-config files), python3-shoal (the Python package and its runtime
# extension: with libshoal-runtime, all a Python/Dask worker needs) and
# python3-shoal-compiler (shoal.compile's extension). Their dependencies on Debian's
# libraries (libdnnl2, libonnx1, libprotobuf32, libgomp1, libstdc++6, ...)
# come from dpkg-shlibdeps, which reads what the binaries link; the
# dependencies between shoal's own packages are exact versions.
set(CPACK_PACKAGE_NAME shoal)
set(CPACK_PACKAGE_VENDOR "shoal")
set(CPACK_PACKAGE_CONTACT "shoal developers <shoal@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "ahead-of-time compiled ONNX CNN inference on CPU devices")
set(CPACK_PACKAGE_HOMEPAGE_URL "https://example.invalid/shoal")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
set(CPACK_COMPONENTS_ALL runtime compiler dev)
if(SHOAL_PYTHON)
  list(APPEND CPACK_COMPONENTS_ALL python python_compiler)
endif()
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)  # fast; xz saves little on these files
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
# The soname carries major.minor (cmake/ShoalInstall.cmake): any later patch
# release of the same soname will do.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
# Our own libraries are not in any installed package: dpkg-shlibdeps finds
# them here and leaves them to the exact-version Depends below.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_BINARY_DIR}/lib)

set(SHOAL_DEB_RUNTIME libshoal-runtime${SHOAL_SOVERSION})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME ${SHOAL_DEB_RUNTIME})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
  "shoal runtime library\n libshoal_runtime: loads shoal program files and runs them on CPU devices\n (oneDNN kernels). All a worker that runs compiled programs needs.")

set(CPACK_DEBIAN_COMPILER_PACKAGE_NAME shoal)
set(CPACK_DEBIAN_COMPILER_PACKAGE_SECTION science)
set(CPACK_DEBIAN_COMPILER_PACKAGE_DEPENDS "${SHOAL_DEB_RUNTIME} (= ${PROJECT_VERSION})")
set(CPACK_DEBIAN_COMPILER_PACKAGE_SUGGESTS "python3-shoal (= ${PROJECT_VERSION})")
set(CPACK_COMPONENT_COMPILER_DESCRIPTION
  "shoal compiler, C API and command line\n libshoal_compiler compiles ONNX models into shoal program files; libshoal\n is the C API; /usr/bin/shoal compiles, inspects and runs programs\n ('shoal worker' needs python3-shoal).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libshoal-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
  "${SHOAL_DEB_RUNTIME} (= ${PROJECT_VERSION}), shoal (= ${PROJECT_VERSION})")
set(CPACK_COMPONENT_DEV_DESCRIPTION
  "shoal development files\n Headers (shoal/shoal.hpp, shoal/shoal.h), CMake package (find_package(shoal))\n and pkg-config files (shoal, shoal-runtime, shoal-compiler).")

if(SHOAL_PYTHON)
  # The extension is built for one Python minor version (SHOAL_PYTHON_VERSION,
  # from python/CMakeLists.txt).
  math(EXPR _shoal_py_next_minor "${SHOAL_PYTHON_MINOR} + 1")
  set(SHOAL_PYTHON_NEXT ${SHOAL_PYTHON_MAJOR}.${_shoal_py_next_minor})
  set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-shoal)
  set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
  set(SHOAL_DEB_PYTHON_VERSIONS
    "python3 (>= ${SHOAL_PYTHON_VERSION}), python3 (<< ${SHOAL_PYTHON_NEXT})")
  # The runtime extension links libshoal_runtime alone: a worker installs
  # python3-shoal and gets no compiler, ONNX or protobuf.
  set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS
    "${SHOAL_DEB_RUNTIME} (= ${PROJECT_VERSION}), python3-numpy, ${SHOAL_DEB_PYTHON_VERSIONS}")
  set(CPACK_DEBIAN_PYTHON_PACKAGE_SUGGESTS
    "python3-shoal-compiler (= ${PROJECT_VERSION}), python3-distributed")
  set(CPACK_COMPONENT_PYTHON_DESCRIPTION
    "shoal Python package (runtime)\n import shoal: load compiled programs and run them from Python; shoal.dask\n runs them on a Dask cluster (with python3-distributed). All a Python or Dask\n worker needs; shoal.compile needs python3-shoal-compiler.")

  set(CPACK_DEBIAN_PYTHON_COMPILER_PACKAGE_NAME python3-shoal-compiler)
  set(CPACK_DEBIAN_PYTHON_COMPILER_PACKAGE_SECTION python)
  set(CPACK_DEBIAN_PYTHON_COMPILER_PACKAGE_DEPENDS
    "python3-shoal (= ${PROJECT_VERSION}), shoal (= ${PROJECT_VERSION}), ${SHOAL_DEB_PYTHON_VERSIONS}")
  set(CPACK_DEBIAN_PYTHON_COMPILER_PACKAGE_SUGGESTS "python3-onnx")
  set(CPACK_COMPONENT_PYTHON_COMPILER_DESCRIPTION
    "shoal Python package (compiler)\n shoal.compile: compile ONNX models into shoal programs from Python\n (the shoal._shoal_compiler extension, over libshoal_compiler).")
endif()

include(CPack)
