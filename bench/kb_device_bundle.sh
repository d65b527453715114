#!/usr/bin/env bash
# Bundle bench_kb for a machine without the Debian -dev libraries (the GPU device image):
# portable builds (x86-64-v4 = AVX-512, and x86-64-v3 = AVX2/FMA/F16C for CPUs without
# AVX-512; no -march=native, no CUDA) plus the shared libraries they load, in one folder
# (~45 MB) that can travel with the working tree. On the target:
#
#   build-kbdev/run.sh --n 1000000 --no-kb --threads 16 --queries 200
#
# run.sh picks the AVX-512 binary when /proc/cpuinfo has avx512f.
#   bench/kb_device_bundle.sh [OUT_DIR]        default build-kbdev (git-ignored)
set -eu
OUT=${1:-build-kbdev}
SRC=$(cd "$(dirname "$0")/.." && pwd)
TMP=${RAGD_BUNDLE_TMP:-/tmp/ragd-kbdev-build}
mkdir -p "$OUT/lib"
for m in x86-64-v4 x86-64-v3; do
  cmake -S "$SRC" -B "$TMP/$m" -DCMAKE_BUILD_TYPE=Release -DRAGD_NATIVE=OFF -DRAGD_CUDA=OFF \
    -DRAGD_TESTS=OFF -DCMAKE_C_FLAGS="-march=$m" >/dev/null
  cmake --build "$TMP/$m" -j"$(nproc)" --target bench_kb >/dev/null
  cp "$TMP/$m/bench_kb" "$OUT/bench_kb-$m"
done
ldd "$OUT/bench_kb-x86-64-v4" | awk '/=> \// {print $3}' | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|libgcc_s.so.*) ;; # the target's own
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
cat >"$OUT/run.sh" <<'SH'
#!/bin/sh
d=$(dirname "$0")
if grep -q avx512f /proc/cpuinfo; then b=bench_kb-x86-64-v4; else b=bench_kb-x86-64-v3; fi
echo "bench_kb: $b on $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)" >&2
LD_LIBRARY_PATH="$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$d/$b" "$@"
SH
chmod +x "$OUT/run.sh"
du -sh "$OUT"
