"""The Python package: python3 -m pip install --no-build-isolation .

Builds the extensions with CMake, reusing a configured build when there is one
(SHOAL_BUILD_DIR; else ./build when it holds a CMake build, as
scripts/build.sh makes it; else a new ./build-pip), installs the runtime,
compiler, python and python_compiler components into a staging directory, and
packages the shoal package with both extensions (shoal._shoal, the runtime,
and shoal._shoal_compiler, which shoal.compile imports) and the library each
links, next to them (they find them there: RPATH $ORIGIN). The installed
package needs nothing from the source or build tree. See docs/INSTALL.md.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def cmake_version():
    with open(os.path.join(HERE, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(shoal VERSION (\d+\.\d+\.\d+)", f.read())
    if not m:
        raise RuntimeError("CMakeLists.txt: no 'project(shoal VERSION x.y.z'")
    return m.group(1)


def build_dir():
    if os.environ.get("SHOAL_BUILD_DIR"):
        return os.path.abspath(os.environ["SHOAL_BUILD_DIR"])
    tree = os.path.join(HERE, "build")
    if os.path.exists(os.path.join(tree, "CMakeCache.txt")):
        return tree
    return os.path.join(HERE, "build-pip")


def run(cmd):
    print("setup.py:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


# Each extension, and the library it links (installed next to it).
EXTENSIONS = {"shoal._shoal": "shoal_runtime", "shoal._shoal_compiler": "shoal_compiler"}


class CMakeBuild(build_ext):
    """Builds the extensions with CMake instead of from their (empty) sources:
    once, into a staging prefix that each extension is then copied from."""

    def run(self):
        with tempfile.TemporaryDirectory() as stage:
            self._stage = stage
            self._build_and_install(stage)
            super().run()

    def _build_and_install(self, stage):
        build = build_dir()
        jobs = os.environ.get("SHOAL_JOBS") or str(os.cpu_count() or 1)
        if not os.path.exists(os.path.join(build, "CMakeCache.txt")):
            run(["cmake", "-S", HERE, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                 "-DSHOAL_TESTS=OFF", f"-DPython3_EXECUTABLE={sys.executable}"])
        # The C API library and the CLI too: the compiler component, which
        # installs the library the compiler extension links, holds them.
        run(["cmake", "--build", build, "-j", jobs, "--target", "_shoal", "_shoal_compiler",
             "shoal", "shoal_cli"])
        for component in ("runtime", "compiler", "python", "python_compiler"):
            run(["cmake", "--install", build, "--prefix", stage, "--component", component])

    def build_extension(self, ext):
        stage = self._stage
        short = ext.name.split(".")[-1]
        dest = self.get_ext_fullpath(ext.name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        built = glob.glob(os.path.join(stage, "**", "shoal", short + ".*.so"), recursive=True)
        if len(built) != 1:
            raise RuntimeError(f"expected one installed shoal/{short}.*.so under {stage}, "
                               f"found {built}")
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        if not built[0].endswith(suffix):
            raise RuntimeError(
                f"{build_dir()} builds {os.path.basename(built[0])}, not for this Python "
                f"({sys.executable}, extension suffix {suffix}); set SHOAL_BUILD_DIR "
                "to a new directory to build one for it")
        shutil.copy(built[0], dest)
        # The soname the extension links (the link to the versioned file).
        name = EXTENSIONS[ext.name]
        libs = [p for p in glob.glob(os.path.join(stage, "**", f"lib{name}.so.*"),
                                     recursive=True) if os.path.islink(p)]
        if len(libs) != 1:
            raise RuntimeError(f"expected one lib{name}.so.<soversion> link, found {libs}")
        shutil.copy(libs[0], os.path.join(os.path.dirname(dest), os.path.basename(libs[0])))


setup(
    name="shoal",
    version=cmake_version(),
    description="Ahead-of-time compiled ONNX CNN inference on CPU devices",
    python_requires=">=3.9",
    package_dir={"": "python"},
    packages=find_packages("python"),
    install_requires=["numpy"],
    extras_require={"dask": ["distributed"], "onnx": ["onnx"]},
    ext_modules=[Extension(name, sources=[]) for name in EXTENSIONS],
    cmdclass={"build_ext": CMakeBuild},
    # setuptools' own build files go inside the CMake build directory.
    options={"build": {"build_base": os.path.join(build_dir(), "setuptools")}},
    zip_safe=False,
)
