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

# The installed shoal binary runs from the prefix.
"$work/prefix/bin/shoal" run -n 2 --no-prefix -- sh -c 'test -n "$SHOAL_TOKEN"'

# The installed Python package imports from this prefix, which is not the configured one: the
# module finds libshoal through its relative RUNPATH ($ORIGIN), and shoal.dcp imports on
# Debian's torch 1.13 / Python 3.11 with nothing from the tests.
pkg=$(find "$work/prefix" -path '*/dist-packages/shoal/__init__.py' -o -path '*/site-packages/shoal/__init__.py' | head -1)
if [ -n "$pkg" ] && [ -x /usr/bin/python3 ]; then
  readelf -d "$(dirname "$pkg")"/_shoal*.so | grep -q 'R.*PATH.*\$ORIGIN'
  moved="$work/moved"
  mv "$work/prefix" "$moved"   # a prefix moved after install still works
  pkgdir=$(dirname "$(dirname "${pkg/#$work\/prefix/$moved}")")
  (cd / && env -u LD_LIBRARY_PATH PYTHONPATH="$pkgdir" /usr/bin/python3 -c '
import shoal, shoal.dcp, sys
assert shoal.__file__.startswith(sys.argv[1]), shoal.__file__
print("import shoal, shoal.dcp from", sys.argv[1])' "$moved")
fi
