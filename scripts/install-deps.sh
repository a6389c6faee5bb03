#!/usr/bin/env bash
# Installs the Debian 12 packages shoal builds with, only those that are missing.
# Runs as root (or through sudo when available). Safe to run repeatedly.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git
  liburing-dev libucx-dev liblmdb-dev libboost-dev libfmt-dev libgtest-dev
  libisal-dev libxxhash-dev nlohmann-json3-dev libcli11-dev libssl-dev
  python3-dev pybind11-dev python3-torch python3-numpy python3-pytest
  python3-pil python3-torchvision dataset-fashion-mnist
  clang-16 libclang-rt-16-dev libfuzzer-16-dev
  fio
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "shoal: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
