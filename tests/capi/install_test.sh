#!/usr/bin/env bash
# `cmake --install` puts libhearth.so, hearth.h, the CMake package and the pkg-config file into a
# prefix, and programs outside the source tree build and run against it both ways: pkg-config and
# find_package(Hearth).  Usage: install_test.sh BUILD_DIR
set -euo pipefail
build="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" > "$work/install.log"
libdir="$(dirname "$(find "$prefix" -name 'libhearth.so' | head -n 1)")"
[ -f "$prefix/include/hearth.h" ] && [ -f "$libdir/pkgconfig/hearth.pc" ] && [ -f "$libdir/cmake/Hearth/HearthConfig.cmake" ]
[ -x "$prefix/bin/hearth" ]
# Only the C API leaves the library.
if nm -D --defined-only "$libdir/libhearth.so" | awk '{print $3}' | grep -v '^hearth_' | grep -q .; then
  echo "libhearth.so exports symbols other than hearth_*:" >&2
  nm -D --defined-only "$libdir/libhearth.so" | awk '{print $3}' | grep -v '^hearth_' | head >&2
  exit 1
fi

cat > "$work/consumer.c" <<'C'
#include <hearth.h>
#include <stdio.h>
int main(void) {
  hearth_engine* e = NULL;
  if (hearth_open(NULL, HEARTH_KEY_NONE, NULL, 0, &e) != HEARTH_ERR_INVALID_ARGUMENT) return 1;
  printf("hearth %s: %s\n", hearth_version(), hearth_last_error());
  return 0;
}
C
PKG_CONFIG_PATH="$libdir/pkgconfig" cc "$work/consumer.c" -o "$work/with-pkg-config" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs hearth) -Wl,-rpath,"$libdir"
"$work/with-pkg-config"

mkdir -p "$work/project"
cp "$work/consumer.c" "$work/project/consumer.c"
cat > "$work/project/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.22)
project(consumer C)
find_package(Hearth 0.5 REQUIRED)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE Hearth::hearth)
CM
cmake -S "$work/project" -B "$work/project/build" -DCMAKE_PREFIX_PATH="$prefix" > "$work/configure.log"
cmake --build "$work/project/build" > "$work/build.log"
"$work/project/build/consumer"
echo "installed package builds and runs with pkg-config and find_package"
