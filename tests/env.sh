# tests/env.sh — sourced by tests/run_all.sh and tests/bench/run_bench.sh with
# $root set to the repository: finds the shared test data (the real GPT-2
# tokenizer files, stories260K), which is not part of the repository, in
# <repo>/../shared or /work/shared, unless PATCHGRID_SHARED says where.
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
