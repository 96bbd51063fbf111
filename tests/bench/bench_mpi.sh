#!/bin/sh
# MPI scaling and dispatch: the same sweep with one worker rank and with two
# (plus the coordinator, which sleeps while it waits), one BLAS thread each;
# and the coordinator's dispatch rate with no work (one unit per message).
set -eu
build=$1
py=/usr/bin/python3
dir="$build/bench-mpi"
mkdir -p "$dir"
model="$dir/model"
if [ ! -f "$model/model.safetensors" ]; then
    rm -rf "$model.tmp"
    $py tools/make_model.py "$model.tmp" --layers 6 --heads 8 --d-model 256 --vocab 2000 \
        --n-ctx 64 --seed 7 >/dev/null
    mv "$model.tmp" "$model"
fi
# A sweep of 96 pairs x 3 experiments, 2 pairs per unit (144 units), and a
# dispatch config of 20000 pairs x 5 experiments (100000 units).
$py - "$dir" <<'PY'
import random, sys
d = sys.argv[1]
def write(name, n_pairs, exps, ppu):
    rng = random.Random(5)
    lines = ["model: model", f"pairs_per_unit: {ppu}", "dataset:", "  pairs:"]
    for _ in range(n_pairs):
        c = [rng.randrange(2000) for _ in range(20)]
        x = list(c)
        x[7] = rng.randrange(2000)
        x[13] = rng.randrange(2000)
        lines.append(f"    - {{clean_tokens: {c}, corrupted_tokens: {x}, answer_token: 1, wrong_token: 2}}")
    lines.append("experiments:")
    lines += [f"  - {{name: {k}, patch: {k}{', by: [layer, pos, head]' if k == 'v' else ''}}}" for k in exps]
    open(f"{d}/{name}.yaml", "w").write("\n".join(lines) + "\n")
write("sweep", 96, ["resid_pre", "z", "v"], 2)
write("dispatch", 20000, ["resid_pre", "resid_mid", "attn_out", "mlp_out", "z"], 1)
PY
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
sweep() { # sweep RANKS -> seconds of the sweep as patchgrid reports it
    mpirun -np "$1" --oversubscribe "$PATCHGRID" run "$dir/sweep.yaml" -o "$dir/sweep$1.h5" \
        --overwrite 2>&1 | sed -n 's/.* skipped, \([0-9.]*\) s,.*/\1/p'
}
t1=$(sweep 2)
t2=$(sweep 3)
same=$(h5diff "$dir/sweep2.h5" "$dir/sweep3.h5" /experiments >/dev/null 2>&1 && echo identical || echo DIFFERENT)
rate=$(mpirun -np 3 --oversubscribe "$PATCHGRID" run "$dir/dispatch.yaml" --null-work 2>&1 |
       sed -n 's/.*: \([0-9]*\) units\/s, \([0-9]*\) requests\/s/\1 \2/p')
echo "cores: $(nproc --all); 1 BLAS thread per rank; rank 0 coordinates"
printf '%-34s %10s\n' "sweep (96 pairs, 144 units)" "seconds"
printf '%-34s %10s\n' "1 worker  (mpirun -np 2)" "$t1"
printf '%-34s %10s\n' "2 workers (mpirun -np 3)" "$t2"
awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%-34s %9.2fx\n", "throughput, 2 workers / 1 worker", a / b }'
echo "results of the two runs: $same"
set -- $rate
printf '%-34s %10s\n' "null work, 2 workers: units/s" "$1"
printf '%-34s %10s\n' "null work, 2 workers: requests/s" "$2"
