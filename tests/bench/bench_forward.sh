#!/bin/sh
# Forward pass of a GPT-2-small-shaped random model (12 layers, d_model 768,
# 12 heads, vocab 50257): patchgrid vs PyTorch (same math, full logits at
# every position) vs the machine's own cblas_sgemm, one BLAS thread each,
# all measured in this run.
set -eu
build=$1
py=/usr/bin/python3
model="$build/testdata/gpt2-small-bench"
if [ ! -f "$model/model.safetensors" ]; then
    echo "generating $model (GPT-2-small-shaped random weights)..."
    rm -rf "$model.tmp"
    $py tools/make_model.py "$model.tmp" --layers 12 --heads 12 --d-model 768 --vocab 50257 \
        --n-ctx 1024 --seed 1234 >/dev/null
    mv "$model.tmp" "$model"
fi
field() { # field NAME LINE -> value of NAME=value in LINE
    echo "$2" | tr ' ' '\n' | sed -n "s|^$1=||p"
}
printf '%-8s %12s %12s %14s %12s %12s %14s %12s\n' "B x T" "patchgrid s" "tokens/s" "GFLOP/s" \
    "sgemm GF/s" "% of sgemm" "torch s" "torch/pg"
for bt in "1 20" "8 15" "32 64"; do
    set -- $bt
    B=$1 T=$2
    M=$((B * T))
    pg=$("$build/bench/bench_forward" "$model" "$B" "$T" 5)
    sg=$("$build/bench/sgemm_peak" "$M" 768 768 2)
    th=$($py tests/bench/torch_forward.py "$model" "$B" "$T" --reps 5)
    pgs=$(field seconds "$pg"); pgt=$(field tokens/s "$pg"); pgf=$(field GFLOP/s "$pg")
    sgf=$(field GFLOP/s "$sg"); ths=$(field seconds "$th")
    awk -v bt="${B}x${T}" -v pgs="$pgs" -v pgt="$pgt" -v pgf="$pgf" -v sgf="$sgf" -v ths="$ths" \
        'BEGIN { printf "%-8s %12.4f %12.1f %14.1f %12.1f %11.0f%% %14.4f %11.2fx\n",
                 bt, pgs, pgt, pgf, sgf, 100 * pgf / sgf, ths, ths / pgs }'
done
echo "(sgemm at M = B*T, N = K = 768: the shape of the model's projections; torch/pg > 1 means patchgrid is faster)"
