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
# Shared test data (the real GPT-2 tokenizer files, stories260K): <repo>/../shared,
# else /work/shared, unless PATCHGRID_SHARED says where.
if [ -z "${PATCHGRID_SHARED:-}" ]; then
    for d in "$root/../shared" /work/shared; do
        if [ -d "$d/tokenizers/gpt2" ]; then
            PATCHGRID_SHARED=$(cd "$d" && pwd)
            export PATCHGRID_SHARED
            break
        fi
    done
fi
if [ -z "${PATCHGRID_SHARED:-}" ]; then
    echo "WARNING: the shared test data (tokenizers/gpt2) is in neither $root/../shared nor" \
         "/work/shared; set PATCHGRID_SHARED. Tests that need it will fail and say so." >&2
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
for b in tests/bench/bench_*.sh; do
    [ -f "$b" ] || continue
    echo
    echo "== $b"
    sh "$b" "$build"
done
