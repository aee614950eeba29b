#!/usr/bin/env bash
# Installs shoal every way a user can and uses it from outside the source tree
# (docs/INSTALL.md), reusing the built tree (SHOAL_BUILD_DIR, default build/):
#   1. cmake --install into a temporary prefix; the CLI runs from there
#      without LD_LIBRARY_PATH; the Python package imports from there;
#   2. examples/cpp (find_package(shoal)) and examples/c (pkg-config) are
#      copied out, built against that prefix alone and run;
#   3. pip install --no-build-isolation into a new virtual environment (with
#      the system site packages, for numpy); examples/classify_digits.py is
#      copied out and runs on the installed package;
#   4. cpack -G DEB: the five packages' names, contents, Depends and shlibs,
#      checked with dpkg-deb, then unpacked together and run from there;
#   5. a worker's install: only libshoal-runtime and python3-shoal unpacked,
#      or only the runtime and python components installed with cmake (no
#      compiler, ONNX or protobuf): the Python package runs a program
#      compiled elsewhere, on its own and on a Dask worker started from there,
#      and shoal.compile names the missing package (test-install-worker.py).
# ctest runs it as the test "install" (about a minute on 2 cores).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${SHOAL_BUILD_DIR:-$SRC/build}" && pwd)
DIGITS=$SRC/models/digits
VERSION=$(sed -n 's/^project(shoal VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
SOVERSION=${VERSION%.*}
T=$(mktemp -d /tmp/shoal-install-test.XXXXXX)
trap 'rm -rf "$T"' EXIT
unset PYTHONPATH LD_LIBRARY_PATH
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export LC_ALL=C

fail() { echo "test-install: FAIL: $*" >&2; exit 1; }
step() { echo "=== test-install: $*"; }
# expect_in TEXT PATTERN WHAT: PATTERN (grep -E) must match a line of TEXT.
expect_in() { grep -Eq -- "$2" <<<"$1" || fail "$3: no '$2' in:"$'\n'"$1"; }
expect_not_in() { ! grep -Eq -- "$2" <<<"$1" || fail "$3: '$2' in:"$'\n'"$1"; }

[ -n "$VERSION" ] || fail "no project(shoal VERSION ...) in CMakeLists.txt"
[ -x "$BUILD/bin/shoal" ] || fail "$BUILD is not a built shoal tree (run scripts/build.sh)"
cd "$T"

# --- 1. cmake --install ----------------------------------------------------
step "cmake --install into a temporary prefix"
P=$T/prefix
cmake --install "$BUILD" --prefix "$P" >/dev/null
for f in bin/shoal include/shoal/shoal.hpp include/shoal/shoal.h include/shoal/version.h \
    lib/libshoal_runtime.so.$VERSION lib/libshoal_compiler.so.$VERSION lib/libshoal.so.$VERSION \
    lib/libshoal_runtime.so.$SOVERSION lib/libshoal_runtime.so \
    lib/cmake/shoal/shoalConfig.cmake lib/cmake/shoal/shoalConfigVersion.cmake \
    lib/pkgconfig/shoal.pc lib/pkgconfig/shoal-runtime.pc lib/pkgconfig/shoal-compiler.pc \
    lib/python3/dist-packages/shoal/__init__.py; do
  [ -e "$P/$f" ] || fail "cmake --install did not install $f"
done
PYDIR=$P/lib/python3/dist-packages/shoal
ls "$PYDIR"/_shoal.*.so >/dev/null || fail "no installed runtime extension"
ls "$PYDIR"/_shoal_compiler.*.so >/dev/null || fail "no installed compiler extension"
# RPATHs are $ORIGIN-relative: nothing points back into the build or source tree.
for f in "$P"/bin/shoal "$P"/lib/libshoal*.so."$VERSION" "$P"/lib/python3/dist-packages/shoal/_shoal*.so; do
  d=$(readelf -d "$f")
  expect_in "$d" 'R(UN)?PATH.*\$ORIGIN' "$f has no \$ORIGIN rpath"
  expect_not_in "$d" "$SRC|$BUILD" "$f points into the source or build tree"
done
# The runtime library is all a worker needs: no ONNX, no protobuf.
expect_not_in "$(readelf -d "$P/lib/libshoal_runtime.so.$VERSION")" 'onnx|protobuf' \
  "libshoal_runtime links the compiler's dependencies"
# So is the runtime extension (all it loads, ldd's closure), the compiler's
# extension being the one that links libshoal_compiler.
expect_not_in "$(ldd "$PYDIR"/_shoal.*.so)" 'libshoal_compiler|onnx|protobuf' \
  "the runtime extension shoal._shoal links the compiler or its dependencies"
expect_in "$(ldd "$PYDIR"/_shoal.*.so)" "libshoal_runtime\.so\.$SOVERSION => $P/lib/" \
  "the runtime extension's libshoal_runtime"
expect_in "$(ldd "$PYDIR"/_shoal_compiler.*.so)" "libshoal_compiler\.so\.$SOVERSION => $P/lib/" \
  "the compiler extension's libshoal_compiler"
out=$("$P/bin/shoal" --version)
[ "$out" = "shoal $VERSION" ] || fail "shoal --version printed '$out', expected 'shoal $VERSION'"
"$P/bin/shoal" compile "$DIGITS/digits_cnn.onnx" -o "$T/cli.shoal" --shape 8x8x1 >/dev/null
expect_in "$("$P/bin/shoal" inspect "$T/cli.shoal")" "produced by shoal $VERSION, format v" \
  "shoal inspect"
out=$(PYTHONPATH=$P/lib/python3/dist-packages /usr/bin/python3 -c '
import shoal
print(shoal.__version__, shoal.__file__)
print(shoal.load("cli.shoal").outputs[0].shape)')
expect_in "$out" "^$VERSION $P/lib/python3/dist-packages/shoal/__init__.py\$" \
  "the installed Python package"
expect_in "$out" '^\(1, 10\)$' "the installed Python package loads the CLI's program"
# `shoal compile --precision int8` quantizes with the installed package
# (shoal::quantize finds it next to libshoal_compiler).
/usr/bin/python3 -c "import numpy as np; np.save('$T/cal.npy', np.load('$DIGITS/heldout_x.npy')[:50])"
env -u PYTHONPATH "$P/bin/shoal" compile "$DIGITS/digits_cnn.onnx" -o "$T/int8.shoal" \
  --precision int8 --calibration "$T/cal.npy" >/dev/null || fail "shoal compile --precision int8"
expect_in "$("$P/bin/shoal" inspect "$T/int8.shoal")" "precision: [0-9]+ layers int8" \
  "the installed shoal compile --precision int8"
# `shoal worker` runs `python3 -m shoal.dask` from the installed package.
expect_in "$("$P/bin/shoal" worker --help 2>&1)" '^usage: shoal worker' "the installed shoal worker"

# --- 2. examples built against the prefix alone -------------------------------
step "examples/cpp: find_package(shoal) from the prefix"
cp -r "$SRC/examples/cpp" "$T/cpp-src"
cmake -S "$T/cpp-src" -B "$T/cpp" -DCMAKE_PREFIX_PATH="$P" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror" >"$T/cpp.log" || { cat "$T/cpp.log"; fail "configure"; }
expect_in "$(cat "$T/cpp.log")" "shoal $VERSION from $P/lib/cmake/shoal" "find_package(shoal)"
cmake --build "$T/cpp" -j "${SHOAL_JOBS:-2}" >>"$T/cpp.log" 2>&1 || { cat "$T/cpp.log"; fail "build"; }
expect_not_in "$(cat "$T/cpp/compile_commands.json")" "$SRC|$BUILD" \
  "examples/cpp compiled with paths into the source or build tree"
expect_not_in "$(readelf -d "$T/cpp/classify_digits")" 'libshoal_compiler' \
  "classify_digits (shoal::runtime) links the compiler"
"$T/cpp/compile_digits" "$DIGITS/digits_cnn.onnx" "$T/cpp.shoal"
out=$("$T/cpp/classify_digits" "$T/cpp.shoal" "$DIGITS") || fail "classify_digits: $out"
echo "$out"
expect_in "$out" "^shoal $VERSION \(runtime only\): accuracy 98.61% \(354/359\), 359/359 predictions" \
  "examples/cpp"

step "examples/c: pkg-config from the prefix"
cp -r "$SRC/examples/c" "$T/c"
PKG_CONFIG_PATH=$P/lib/pkgconfig CFLAGS="-O2 -Wall -Wextra -Werror" make -s -C "$T/c" >/dev/null
out=$("$T/c/classify_digits" "$DIGITS" "$T/c.shoal") || fail "examples/c: $out"
echo "$out"
expect_in "$out" "^shoal $VERSION \(C API\): accuracy 98.61% \(354/359\), 359/359 predictions" \
  "examples/c"

# --- 3. pip install into a virtual environment --------------------------------
step "pip install --no-build-isolation into a virtual environment"
/usr/bin/python3 -m venv --system-site-packages "$T/venv"
SHOAL_BUILD_DIR=$BUILD "$T/venv/bin/python" -m pip install -q --no-build-isolation --no-index \
  --no-cache-dir "$SRC" >"$T/pip.log" 2>&1 || { cat "$T/pip.log"; fail "pip install"; }
cp "$SRC/examples/classify_digits.py" "$T/"
out=$("$T/venv/bin/python" -I -c '
import importlib.metadata, re, shoal
assert importlib.metadata.version("shoal") == shoal.__version__, importlib.metadata.version("shoal")
print(shoal.__version__, shoal.__file__)
maps = open("/proc/self/maps").read()
print("\n".join(sorted(set(re.findall(r"/\S*libshoal\S*", maps)))))')
expect_in "$out" "^$VERSION $T/venv/lib/python3\.[0-9]+/site-packages/shoal/__init__.py\$" \
  "pip's shoal: version and location"
expect_not_in "$out" "$SRC|$BUILD|$P" "pip's shoal loads something from outside the venv"
expect_in "$out" "site-packages/shoal/libshoal_runtime.so.$SOVERSION\$" "pip's shoal libraries"
expect_not_in "$out" "libshoal_compiler" "pip's shoal loads the compiler at import"
for f in _shoal _shoal_compiler libshoal_compiler.so.$SOVERSION; do
  ls "$T"/venv/lib/python3.*/site-packages/shoal/$f* >/dev/null || fail "pip's shoal has no $f"
done
out=$("$T/venv/bin/python" "$T/classify_digits.py" --model-dir "$DIGITS" --program "$T/py.shoal") ||
  fail "classify_digits.py: $out"
echo "$out"
expect_in "$out" '^shoal accuracy: +98.61% \(354/359\)' "classify_digits.py on pip's shoal"
# A program written by pip's shoal runs on the installed CLI.
expect_in "$("$P/bin/shoal" run "$T/py.shoal" "$DIGITS/heldout_x.npy" 2>&1)" "^output 0 'logits': \[359,10\] float32" \
  "the CLI runs pip's program"

# --- 4. Debian packages -----------------------------------------------------
step "cpack -G DEB"
(cd "$BUILD" && cpack -G DEB -B "$T/deb" >"$T/cpack.log" 2>&1) || { cat "$T/cpack.log"; fail "cpack"; }
deb() { echo "$T/deb/$1_${VERSION}_$(dpkg --print-architecture).deb"; }
RT=libshoal-runtime$SOVERSION
ALL_DEBS=("$RT" shoal libshoal-dev python3-shoal python3-shoal-compiler)
for p in "${ALL_DEBS[@]}"; do
  [ -f "$(deb "$p")" ] || fail "no package $p: $(ls "$T/deb")"
  [ "$(dpkg-deb -f "$(deb "$p")" Package Version)" = "Package: $p"$'\n'"Version: $VERSION" ] ||
    fail "$p: wrong name or version"
done
contents() { dpkg-deb -c "$(deb "$1")" | awk '{print $6}'; }
depends() { dpkg-deb -f "$(deb "$1")" Depends; }
c=$(contents "$RT")
expect_in "$c" "^\./usr/lib/libshoal_runtime\.so\.$VERSION\$" "$RT contents"
expect_not_in "$c" 'compiler|bin/|include/|python' "$RT holds more than the runtime"
d=$(depends "$RT")
expect_in "$d" 'libdnnl[0-9.]+ \(>= ' "$RT Depends"
expect_in "$d" 'libgomp1' "$RT Depends"
expect_not_in "$d" 'onnx|protobuf|shoal' "$RT Depends"
c=$(contents shoal)
for f in usr/bin/shoal "usr/lib/libshoal_compiler\.so\.$VERSION" "usr/lib/libshoal\.so\.$VERSION"; do
  expect_in "$c" "^\./$f\$" "shoal contents"
done
expect_not_in "$c" 'libshoal_runtime|include/|python' "shoal holds another package's files"
d=$(depends shoal)
for dep in "$RT \(= $VERSION\)" 'libonnx[0-9.]* \(>= ' 'libprotobuf[0-9]+ \(>= '; do
  expect_in "$d" "$dep" "shoal Depends"
done
c=$(contents libshoal-dev)
for f in usr/include/shoal/shoal.hpp usr/include/shoal/shoal.h usr/include/shoal/version.h \
    usr/lib/cmake/shoal/shoalConfig.cmake usr/lib/pkgconfig/shoal.pc usr/lib/libshoal_runtime.so; do
  expect_in "$c" "^\./$f\$" "libshoal-dev contents"
done
expect_in "$(depends libshoal-dev)" "$RT \(= $VERSION\), shoal \(= $VERSION\)" "libshoal-dev Depends"
# The library packages carry shlibs files (for packages built against them).
expect_in "$(dpkg-deb -I "$(deb "$RT")" shlibs)" \
  "^libshoal_runtime $SOVERSION $RT \(>= $VERSION\)\$" "$RT shlibs"
expect_in "$(dpkg-deb -I "$(deb shoal)" shlibs)" \
  "^libshoal_compiler $SOVERSION shoal \(>= $VERSION\)\$" "shoal shlibs"
# python3-shoal: the package and the runtime extension; it depends on the
# runtime library alone. python3-shoal-compiler: the compiler extension.
c=$(contents python3-shoal)
expect_in "$c" '^\./usr/lib/python3/dist-packages/shoal/_shoal\..*\.so$' "python3-shoal contents"
expect_in "$c" '^\./usr/lib/python3/dist-packages/shoal/dask/__main__\.py$' "python3-shoal contents"
expect_not_in "$c" '_shoal_compiler' "python3-shoal contents"
d=$(depends python3-shoal)
expect_in "$d" "^$RT \(= $VERSION\)" "python3-shoal Depends"
expect_in "$d" 'python3-numpy' "python3-shoal Depends"
expect_not_in "$d" 'shoal \(|onnx|protobuf' "python3-shoal Depends"
c=$(contents python3-shoal-compiler)
expect_in "$c" '^\./usr/lib/python3/dist-packages/shoal/_shoal_compiler\..*\.so$' \
  "python3-shoal-compiler contents"
expect_not_in "$c" '\.py$|/_shoal\.' "python3-shoal-compiler holds python3-shoal's files"
d=$(depends python3-shoal-compiler)
expect_in "$d" "python3-shoal \(= $VERSION\), shoal \(= $VERSION\)" "python3-shoal-compiler Depends"
# Unpacked together (as dpkg -i would put them, under another root), they run.
for p in "${ALL_DEBS[@]}"; do dpkg-deb -x "$(deb "$p")" "$T/root"; done
out=$("$T/root/usr/bin/shoal" --version)
[ "$out" = "shoal $VERSION" ] || fail "the packaged shoal --version printed '$out'"
out=$(PYTHONPATH=$T/root/usr/lib/python3/dist-packages /usr/bin/python3 -c '
import shoal; print(shoal.__version__, shoal.__file__)')
expect_in "$out" "^$VERSION $T/root/usr/lib/python3/dist-packages/shoal/__init__.py\$" \
  "the packaged Python package"
out=$(PYTHONPATH=$T/root/usr/lib/python3/dist-packages /usr/bin/python3 -c '
import shoal; print(shoal.compile("'"$DIGITS"'/digits_cnn.onnx", shape="8x8x1").outputs[0].shape)')
expect_in "$out" '^\(1, 10\)$' "the packaged shoal.compile"

# --- 5. a worker: the runtime packages alone --------------------------------
# The same two ways docs/INSTALL.md gives a worker: the two Debian packages,
# or cmake --install of the runtime and python components.
step "runtime only: $RT and python3-shoal, a Python and a Dask worker"
for p in "$RT" python3-shoal; do dpkg-deb -x "$(deb "$p")" "$T/worker-deb"; done
step "runtime only: cmake --install --component runtime, python"
for c in runtime python; do
  cmake --install "$BUILD" --prefix "$T/worker-cmake" --component "$c" >/dev/null
done
for W in "$T/worker-deb/usr" "$T/worker-cmake"; do
  [ -z "$(find "$W" -name '*compiler*')" ] || fail "$W: the worker's install holds the compiler"
  out=$(cd "$T" && PYTHONPATH=$W/lib/python3/dist-packages /usr/bin/python3 \
    "$SRC/scripts/test-install-worker.py" "$W" "$T/cli.shoal" "$DIGITS" 2>&1) ||
    fail "the runtime-only worker in $W: $out"
  echo "$out"
  expect_in "$out" '^runtime-only shoal .*: accuracy 98.61% \(354/359\)' "the runtime-only worker"
  expect_in "$out" '^Dask worker \(runtime only\): 359 outputs' "the runtime-only Dask worker"
done
echo "test-install: all passed"
