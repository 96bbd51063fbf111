#!/bin/sh
# tests/bench/bench_tokenizer.sh BUILD_DIR — GPT-2 tokenizer throughput (part of `make bench`).
#
# Inputs, made in BUILD_DIR/tok/ by tests/tok/make_corpus.py:
#   english  English prose found on the machine (licenses, Debian copyright files), ~8 MB
#   varied   the test corpus: code, many scripts, emoji, odd white space, ~1.5 MB
# Rows: `patchgrid tokenize` end to end (load, stdin, ids to /dev/null); tok_encode alone
# (tests/bench/tok_bench.c) with an empty and then a filled word cache; and as baselines
# the JavaScript references on the first 1 MB of each input (if they can be fetched).
# One process, one core each. The issue's aim: >= 5 MB/s of English text.
set -eu
build=${1:?usage: bench_tokenizer.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
patchgrid=${PATCHGRID:-$root/$build/patchgrid}
model=${PATCHGRID_SHARED:-$root/../shared}/tokenizers/gpt2
if [ ! -f "$model/vocab.json" ] || [ ! -f "$model/merges.txt" ]; then
    echo "bench_tokenizer.sh: GPT-2 tokenizer files missing in $model" \
         "(set PATCHGRID_SHARED, default <repo>/../shared)" >&2
    exit 1
fi
work=$root/$build/tok
mkdir -p "$work"
/usr/bin/python3 tests/tok/make_corpus.py --english 8000000 "$work/bench_english.txt" 2>/dev/null
/usr/bin/python3 tests/tok/make_corpus.py "$work/corpus.txt" 2>/dev/null

printf '%-28s %-22s %8s %9s %10s %8s %8s %10s\n' what input MB lines tokens seconds MB/s lines/s
for input in english varied; do
    file=$work/bench_english.txt
    [ "$input" = varied ] && file=$work/corpus.txt
    bytes=$(wc -c < "$file")
    lines=$(wc -l < "$file")
    t0=$(date +%s.%N)
    "$patchgrid" tokenize "$model" < "$file" > "$work/bench.ids"
    t1=$(date +%s.%N)
    tokens=$(wc -w < "$work/bench.ids")
    awk -v b="$bytes" -v l="$lines" -v t="$tokens" -v t0="$t0" -v t1="$t1" -v name="$input" 'BEGIN {
        s = t1 - t0
        printf "%-28s %-22s %8.2f %9d %10d %8.3f %8.1f %10.0f\n", "patchgrid tokenize (CLI)", name,
               b / 1e6, l, t, s, b / 1e6 / s, l / s }'
    "$root/$build/bench/tok_bench" "$model" "$file" "$input"
    if sh tests/tok/fetch_npm.sh "$root/build/npm" 2>/dev/null; then
        node tests/tok/bench_ref.js "$root/build/npm" "$file" "$input (first 1 MB)" 1000000
    else
        echo "(JavaScript baselines skipped: npm packages could not be fetched)"
    fi
done
rm -f "$work/bench.ids"
