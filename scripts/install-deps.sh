#!/usr/bin/env bash
# Installs the Debian 12 packages shoal needs, skipping those already present.
set -euo pipefail
PACKAGES=(
  g++ cmake make pkg-config
  libdnnl-dev libonnx-dev libprotobuf-dev protobuf-compiler
  pybind11-dev python3-dev python3-numpy python3-pytest
  libgtest-dev libbenchmark-dev
  libcpp-httplib-dev nlohmann-json3-dev prometheus-cpp-dev
  python3-onnx python3-torch python3-torchvision python3-sklearn
  python3-distributed python3-tqdm python3-matplotlib python3-cryptography
  python3-pip python3-setuptools python3-wheel python3-venv dpkg-dev file
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
