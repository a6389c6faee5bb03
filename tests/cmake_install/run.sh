#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds tests/cmake_install against it with
# find_package(shoal), and runs the consumer. Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d /var/tmp/shoal-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/shoal/engine.h"
test ! -e "$work/prefix/include/engine"   # private headers stay private
cmake -S "$src/tests/cmake_install" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" > /dev/null
cmake --build "$work/build" > /dev/null
SHOAL_LOG=warn "$work/build/consumer" "$work/store"
