# Install rules, exported CMake targets and pkg-config files
# (docs/INSTALL.md). Components: runtime (libshoal_runtime), compiler
# (libshoal_compiler, the C API libshoal, the shoal CLI), dev (headers, CMake
# and pkg-config files, the .so links), python (the shoal package and its
# runtime extension) and python_compiler (the compiler extension; both in
# python/CMakeLists.txt). Each component becomes one Debian package
# (cmake/ShoalPackaging.cmake).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# Until 1.0, any minor release may change the ABI: the soname carries both.
set(SHOAL_SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
set(SHOAL_PYTHON_INSTALL_DIR "lib/python3/dist-packages" CACHE STRING
  "Where the Python package is installed, relative to the prefix (Debian's layout)")

# Relative paths between install directories, for RPATHs ($ORIGIN-relative,
# so that an installed tree can be moved and needs no LD_LIBRARY_PATH).
file(RELATIVE_PATH SHOAL_BIN_TO_LIB /p/${CMAKE_INSTALL_BINDIR} /p/${CMAKE_INSTALL_LIBDIR})
file(RELATIVE_PATH SHOAL_PY_TO_LIB /p/${SHOAL_PYTHON_INSTALL_DIR}/shoal /p/${CMAKE_INSTALL_LIBDIR})
foreach(v SHOAL_BIN_TO_LIB SHOAL_PY_TO_LIB)
  string(REGEX REPLACE "/$" "" ${v} "${${v}}")
endforeach()

set_target_properties(shoal_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(shoal_compiler PROPERTIES EXPORT_NAME compiler)
set_target_properties(shoal PROPERTIES EXPORT_NAME c)
foreach(lib shoal_runtime shoal_compiler shoal)
  set_target_properties(${lib} PROPERTIES
    VERSION ${PROJECT_VERSION} SOVERSION ${SHOAL_SOVERSION} INSTALL_RPATH "$ORIGIN")
endforeach()
target_compile_features(shoal_runtime INTERFACE cxx_std_20)
set_target_properties(shoal_cli PROPERTIES INSTALL_RPATH "$ORIGIN/${SHOAL_BIN_TO_LIB}")

# shoal::shoal: the whole C++ API (compile + run).
add_library(shoal_all INTERFACE)
set_target_properties(shoal_all PROPERTIES EXPORT_NAME shoal)
target_link_libraries(shoal_all INTERFACE shoal_compiler shoal_runtime)
# The same names in the build tree.
add_library(shoal::runtime ALIAS shoal_runtime)
add_library(shoal::compiler ALIAS shoal_compiler)
add_library(shoal::c ALIAS shoal)
add_library(shoal::shoal ALIAS shoal_all)

install(TARGETS shoal_runtime EXPORT shoalTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT dev)
install(TARGETS shoal_compiler shoal EXPORT shoalTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT compiler NAMELINK_COMPONENT dev)
install(TARGETS shoal_all EXPORT shoalTargets)
install(TARGETS shoal_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT compiler)

install(FILES
    include/shoal/shoal.hpp include/shoal/shoal.h include/shoal/error.hpp
    include/shoal/types.hpp ${CMAKE_BINARY_DIR}/include/shoal/version.h
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/shoal COMPONENT dev)

set(SHOAL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/shoal)
install(EXPORT shoalTargets NAMESPACE shoal:: DESTINATION ${SHOAL_CMAKE_DIR} COMPONENT dev)
configure_package_config_file(cmake/shoalConfig.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/shoalConfig.cmake INSTALL_DESTINATION ${SHOAL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/shoalConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/shoalConfig.cmake
    ${CMAKE_BINARY_DIR}/cmake/shoalConfigVersion.cmake
  DESTINATION ${SHOAL_CMAKE_DIR} COMPONENT dev)

# pkg-config: shoal (the C API), shoal-runtime and shoal-compiler (C++).
# ${pcfiledir}-relative, so that the files stay right wherever the prefix is.
file(RELATIVE_PATH SHOAL_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" SHOAL_PC_TO_PREFIX "${SHOAL_PC_TO_PREFIX}")
foreach(pc shoal shoal-runtime shoal-compiler)
  configure_file(cmake/${pc}.pc.in ${CMAKE_BINARY_DIR}/pkgconfig/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/pkgconfig/${pc}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endforeach()

# `shoal worker` runs `python3 -m shoal.dask`: installed, the package is here
# relative to the binary (tools/cmd_worker.cpp).
file(RELATIVE_PATH SHOAL_BIN_TO_PY /p/${CMAKE_INSTALL_BINDIR} /p/${SHOAL_PYTHON_INSTALL_DIR})
set_source_files_properties(tools/cmd_worker.cpp PROPERTIES
  COMPILE_DEFINITIONS SHOAL_INSTALLED_PYTHON_DIR="${SHOAL_BIN_TO_PY}")
# shoal::quantize runs `python3 -m shoal.quantization`: installed, the package
# is here relative to libshoal_compiler (src/compiler/quantize.cpp).
file(RELATIVE_PATH SHOAL_LIB_TO_PY /p/${CMAKE_INSTALL_LIBDIR} /p/${SHOAL_PYTHON_INSTALL_DIR})
set_source_files_properties(src/compiler/quantize.cpp PROPERTIES
  COMPILE_DEFINITIONS SHOAL_LIB_TO_PYTHON_DIR="${SHOAL_LIB_TO_PY}")
