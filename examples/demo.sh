#!/usr/bin/env bash
# The README's first command: build the sample feed, validate it, and query each kind of entry.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo build -q --release -p matchy-cli
matchy="${CARGO_TARGET_DIR:-target}/release/matchy"
$matchy build examples/threats.csv -o "$out/threats.mxy"
$matchy validate "$out/threats.mxy" --level strict
for q in 10.1.2.3 2001:db8:bad::1 evil.com www.evil.com mal-ware7.exe; do
  echo "\$ matchy query threats.mxy $q"
  $matchy query "$out/threats.mxy" "$q"
done
$matchy inspect "$out/threats.mxy"
