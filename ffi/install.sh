#!/usr/bin/env bash
# Install libmatchy: the shared library (with its soname links), the static library, the header
# and a pkg-config file.
#
#   ffi/install.sh [--prefix DIR] [--libdir DIR] [--from DIR] [--destdir DIR]
#
#   --prefix   where to install (default /usr/local): PREFIX/lib, PREFIX/include
#   --libdir   library directory (default PREFIX/lib)
#   --from     a directory holding an already built libmatchy.so and libmatchy.a (default: build
#              them with `cargo build --release -p matchy-ffi` and take target/release)
#   --destdir  staging root prepended to every installed path (packaging); the .pc file still
#              names PREFIX
#
# Afterwards: cc prog.c -lmatchy   (for a PREFIX the compiler and loader do not search, use
# pkg-config --cflags --libs matchy with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig, and an rpath or
# LD_LIBRARY_PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
prefix=/usr/local
libdir=
from=
destdir=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix="$2"; shift 2 ;;
    --libdir) libdir="$2"; shift 2 ;;
    --from) from="$2"; shift 2 ;;
    --destdir) destdir="$2"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
libdir="${libdir:-$prefix/lib}"

version="$(sed -n 's/^version = "\([^"]*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
major="${version%%.*}"
rest="${version#*.}"
minor="${rest%%.*}"
# Must agree with ffi/build.rs: before 1.0 every minor version may break the ABI.
if [ "$major" = 0 ]; then soversion="0.$minor"; else soversion="$major"; fi

if [ -z "$from" ]; then
  (cd "$root" && cargo build --release -p matchy-ffi)
  from="${CARGO_TARGET_DIR:-$root/target}/release"
fi
for f in libmatchy.so libmatchy.a; do
  [ -f "$from/$f" ] || { echo "install.sh: $from/$f not found" >&2; exit 1; }
done

lib="$destdir$libdir"
inc="$destdir$prefix/include"
mkdir -p "$lib/pkgconfig" "$inc"
install -m 0755 "$from/libmatchy.so" "$lib/libmatchy.so.$version"
ln -sf "libmatchy.so.$version" "$lib/libmatchy.so.$soversion"
ln -sf "libmatchy.so.$soversion" "$lib/libmatchy.so"
install -m 0644 "$from/libmatchy.a" "$lib/libmatchy.a"
install -m 0644 "$root/include/matchy.h" "$inc/matchy.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
  "$here/matchy.pc.in" > "$lib/pkgconfig/matchy.pc"
# Refresh the loader cache for the standard locations (other prefixes need an rpath or
# LD_LIBRARY_PATH anyway).
case "$libdir" in /usr/lib|/usr/local/lib) system_libdir=1 ;; *) system_libdir= ;; esac
if [ -z "$destdir" ] && [ -n "$system_libdir" ] && [ "$(id -u)" = 0 ] && command -v ldconfig >/dev/null 2>&1; then
  ldconfig || true
fi
echo "installed libmatchy $version (soname libmatchy.so.$soversion) into $destdir$prefix"
