#!/bin/sh
# bench_patch.sh BUILD_DIR — activation-patching sweeps on a GPT-2-small-shaped random model
# (12 layers, d_model 768, 12 heads, vocab 50257): patchgrid's fast engine vs its --naive
# engine (one full forward per cell, TransformerLens's way) vs the PyTorch TL-style loop of
# tests/py/tl_patching.py on the same pairs, one BLAS thread each, all measured in this run.
#
# Data (tests/bench/ioi_pairs.py): 8 IOI prompts of 15 tokens with BOS, two corruptions
# (late: only S2 changes; early: IOI's ABC, all three names replaced), two sweeps each
# (resid_pre by [layer, pos]: 8 x 180 cells; z by [layer, head]: 8 x 144 cells), logit_diff.
#
# Seconds are the sweeps' compute time, loading excluded on every side: patchgrid's own
# summary (baseline runs + cells, after the model is loaded and the file created; the process's
# wall time is in the progress lines) and the torch loop's (baseline runs + one forward per pair and cell,
# after the weights are loaded). With BENCH_TORCH_X8=1, also "torch x8": TL's notebook habit of
# running all 8 prompts as one batch per cell, for context (a few minutes more); the issue's
# aims are against the per-pair loop ("torch").
# The fast engine's GFLOP/s counts the work it does (useful FLOPs), against the machine's
# cblas_sgemm at M=2048, N=K=768.
set -eu
build=${1:?usage: bench_patch.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
case "$build" in /*) ;; *) build="$root/$build" ;; esac
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PATCHGRID="${PATCHGRID:-$build/patchgrid}"
py=/usr/bin/python3
say() { echo "bench_patch: $*" >&2; }

model="$build/testdata/gpt2-small-bench"
if [ ! -f "$model/model.safetensors" ]; then  # the same model as bench_forward.sh
    say "generating $model (GPT-2-small-shaped random weights)..."
    rm -rf "$model.tmp"
    $py tools/make_model.py "$model.tmp" --layers 12 --heads 12 --d-model 768 --vocab 50257 \
        --n-ctx 1024 --seed 1234 >/dev/null
    mv "$model.tmp" "$model"
fi
for f in vocab.json merges.txt; do  # text prompts need GPT-2's tokenizer
    [ -f "$model/$f" ] || cp "${PATCHGRID_SHARED:-$root/../shared}/tokenizers/gpt2/$f" "$model/$f"
done
[ -x "$build/bench/sgemm_peak" ] || make -s "$build/bench/sgemm_peak" >&2

work="$build/bench-patch"
mkdir -p "$work"
$py tests/bench/ioi_pairs.py "$model" "$work" >/dev/null
say "configs in $work (every prompt checked: 15 tokens with BOS)"

peak=$("$build/bench/sgemm_peak" 2048 768 768 2 | sed -n 's/.*GFLOP\/s=\([0-9.]*\).*/\1/p')
say "sgemm peak (M=2048, N=K=768, 1 thread): $peak GFLOP/s"

now() { date +%s.%N; }
# summary LOGFILE -> "cells noops seconds gflops" from patchgrid's last stderr line
summary() {
    sed -n 's/.* \([0-9]*\) cells computed, \([0-9]*\) exact no-ops skipped, \([0-9.]*\) s, \([0-9.]*\) GFLOP\/s.*/\1 \2 \3 \4/p' "$1" | tail -1
}
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

load() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(load)
rows="$work/rows.txt"
: >"$rows"
mismatch=0
for corruption in late early; do
    for sweep in resid z; do
        cfg="$work/${corruption}_$sweep.yaml"
        exp=$([ "$sweep" = resid ] && echo resid_pre || echo z)
        tag="$corruption/$exp"
        # fast: best of up to 3 runs while they are short (the machine may be shared)
        best="" spent=0
        for rep in 1 2 3; do
            t0=$(now)
            "$PATCHGRID" run "$cfg" -o "$work/fast.h5" --overwrite 2>"$work/fast.log" >/dev/null
            wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
            s=$(summary "$work/fast.log")
            [ -n "$s" ] || { cat "$work/fast.log" >&2; exit 1; }
            set -- $s
            if [ -z "$best" ] || awk -v a="$3" -v b="$(echo "$best" | cut -d' ' -f3)" 'BEGIN { exit !(a < b) }'; then
                best="$s $wall"
            fi
            spent=$(awk -v a="$spent" -v b="$wall" 'BEGIN { print a + b }')
            awk -v t="$spent" 'BEGIN { exit !(t < 10) }' || break
        done
        set -- $best
        cells=$1 noops=$2 fast_s=$3 fast_gf=$4 fast_wall=$5
        $py - "$work/fast.h5" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    n = f["pairs/length"][...]
    assert len(n) == 8 and (n == 15).all(), f"pair lengths {n}, expected 8 x 15"
EOF
        say "$tag: fast   $fast_s s ($cells cells computed, $noops no-ops skipped, $fast_gf GFLOP/s; process wall $fast_wall s)"
        "$PATCHGRID" run "$cfg" -o "$work/naive.h5" --overwrite --naive 2>"$work/naive.log" >/dev/null
        set -- $(summary "$work/naive.log")
        naive_s=$3
        say "$tag: naive  $naive_s s"
        out=$($py tests/py/tl_patching.py "$cfg" --pairs-from "$work/fast.h5" --experiment "$exp" \
              --time --compare "$work/fast.h5") || {
            echo "$out" | grep -v '^seconds=' >&2
            say "$tag: the fast engine's results DIFFER from the torch loop's (above)"
            mismatch=1
        }
        line=$(echo "$out" | grep '^seconds=')
        torch_s=$(field seconds "$line")
        torch_thr=$(field threads "$line")
        maxdiff=$(echo "$out" | sed -n 's/^overall max|diff| //p')
        say "$tag: torch  $torch_s s ($(field forwards "$line") forwards, 1 per pair and cell; max |torch - fast| = $maxdiff)"
        torch8_s=-
        if [ "${BENCH_TORCH_X8:-0}" = 1 ]; then
            line=$($py tests/py/tl_patching.py "$cfg" --pairs-from "$work/fast.h5" --experiment "$exp" \
                   --time --batch-pairs | grep '^seconds=')
            torch8_s=$(field seconds "$line")
            say "$tag: torch x8 $torch8_s s ($(field forwards "$line") forwards, 8 pairs each)"
        fi
        echo "$corruption $exp $cells $noops $fast_s $naive_s $torch_s $torch8_s $fast_gf $maxdiff $torch_thr" >>"$rows"
    done
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
echo "patching sweeps, GPT-2-small-shaped random model, 8 IOI pairs x 15 tokens, metric logit_diff"
echo "machine: $cpu, $(getconf _NPROCESSORS_ONLN) cores, load average $load_start at the start, $(load) at the end; threads: 1 (OPENBLAS_NUM_THREADS=1 for patchgrid and torch; torch.get_num_threads()=$(cut -d' ' -f11 "$rows" | head -1)); sgemm peak $peak GFLOP/s"
awk -v peak="$peak" '
BEGIN {
    printf "%-6s %-9s %6s %6s %9s %9s %9s %10s %10s %9s %10s %8s %8s %9s  %s\n",
        "corr.", "sweep", "cells", "no-ops", "fast s", "naive s", "torch s", "torch/fast",
        "naive/fast", "torch x8", "x8/fast", "GFLOP/s", "% peak", "max|diff|", "aim (torch/fast)"
}
{
    aim = ($1 == "late") ? 30 : 8
    sp = $7 / $5
    x8 = ($8 == "-") ? "-" : sprintf("%.2f", $8)
    x8sp = ($8 == "-") ? "-" : sprintf("%.1fx", $8 / $5)
    printf "%-6s %-9s %6d %6d %9.3f %9.2f %9.2f %9.1fx %9.1fx %9s %10s %8.1f %7.0f%% %9.2g  >= %dx %s\n",
        $1, $2, $3, $4, $5, $6, $7, sp, $6 / $5, x8, x8sp, $9, 100 * $9 / peak, $10,
        aim, (sp >= aim ? "met" : "NOT met")
}' "$rows"
echo "(seconds: wall time of the compute, model loading excluded on all sides; fast = best of up to 3 runs."
echo " Other processes on the machine slow every column: compare within one run, on an idle machine. cells = cells the fast"
echo " engine computed, no-ops = cells it skipped as exact no-ops; torch = one full forward per pair and cell;"
echo " torch x8 = one forward per cell over all 8 pairs, BENCH_TORCH_X8=1 only; max|diff| = torch loop vs fast"
echo " engine over every cell, logit_diff)"
if [ "$mismatch" != 0 ]; then
    echo "bench_patch: FAILED: the fast engine's results differ from the torch loop's (see above)" >&2
    exit 1
fi
