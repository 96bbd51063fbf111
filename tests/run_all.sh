#!/bin/sh
# tests/run_all.sh BUILD_DIR [unit|py|slurm] — the test suite behind `make test`.
# Runs every C unit test binary, the Python tests (pytest with /usr/bin/python3),
# then the Slurm cluster test. Exits non-zero if anything fails.
set -eu
build=${1:?usage: run_all.sh BUILD_DIR [unit|py|slurm]}
only=${2:-all}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export PATCHGRID="$root/$build/patchgrid"
export PATCHGRID_BUILD="$root/$build"
. "$root/tests/env.sh"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
case "$build" in
*san*) # fast_unwind_on_malloc=0: Open MPI's plugins are built without frame
       # pointers, so the fast unwinder stops after one frame and the
       # suppressions below could not match their leaks by library name
       export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:fast_unwind_on_malloc=0}"
       export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}"
       # keep Open MPI's plugins loaded so their leaks can be matched by name
       export OMPI_MCA_mca_base_component_disable_dlclose=1
       export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" ;;
esac

failed=0
if [ "$only" = all ] || [ "$only" = unit ]; then
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.d) continue ;; esac
        echo "== $t"
        if ! "$t"; then failed=1; echo "FAILED: $t"; fi
    done
fi
if [ "$only" = all ] || [ "$only" = py ]; then
    echo "== pytest tests/py"
    if ! /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/py ${PYTEST_ARGS:-}; then failed=1; fi
fi
if [ "$only" = all ] || [ "$only" = slurm ]; then
    # A real one-node Slurm cluster (installs slurm-wlm and munge when it can;
    # exit 77 = Slurm cannot be installed here, which is said, not hidden).
    echo "== tests/slurm/test_slurm.sh"
    rc=0
    sh tests/slurm/test_slurm.sh "$build" || rc=$?
    case $rc in
    0) ;;
    77) echo "SKIPPED: the Slurm test (Slurm cannot be installed on this machine)" ;;
    *) failed=1; echo "FAILED: tests/slurm/test_slurm.sh" ;;
    esac
fi
if [ "$failed" != 0 ]; then
    echo "SOME TESTS FAILED"
    exit 1
fi
echo "ALL TESTS PASSED"
