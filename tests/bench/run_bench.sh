#!/bin/sh
# tests/bench/run_bench.sh BUILD_DIR — the benchmarks behind `make bench`.
# Runs every tests/bench/bench_*.sh in name order; each prints its own table.
# One BLAS thread per process throughout (OPENBLAS_NUM_THREADS=1), so the
# figures compare like with like; baselines are measured in the same run.
set -eu
build=${1:?usage: run_bench.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATCHGRID="$root/$build/patchgrid" PATCHGRID_BUILD="$root/$build"
. "$root/tests/env.sh"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc --all) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
for b in tests/bench/bench_*.sh; do
    [ -f "$b" ] || continue
    echo
    echo "== $b"
    sh "$b" "$build"
done
