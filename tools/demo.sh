#!/bin/sh
# tools/demo.sh BUILD_DIR — the README's first command (`make demo`): the demo sweep
# on the bundled model with every local core (one MPI worker per core plus the
# coordinator, which sleeps while it waits), then the report.
set -eu
build=${1:-build/rel}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cores=$(nproc --all)
out=build/demo.h5
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
echo "== patchgrid run configs/demo.yaml on $cores cores ($((cores + 1)) MPI ranks)"
mpirun -np $((cores + 1)) --oversubscribe "$build/patchgrid" run configs/demo.yaml -o "$out" \
    --overwrite
echo
echo "== patchgrid report $out"
"$build/patchgrid" report "$out" -o build/demo_report
