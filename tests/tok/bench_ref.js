// tests/tok/bench_ref.js NPM_DIR FILE LABEL MAX_BYTES — baseline rows for bench_tokenizer.sh:
// the throughput of gpt-3-encoder and tiktoken ("gpt2", WASM) on the first MAX_BYTES of FILE
// (whole lines), encoded line by line in this one process, in the table format of tok_bench.
'use strict';
const fs = require('fs');
const path = require('path');

const [npmDir, file, label, maxBytes] = process.argv.slice(2);
const g3 = require(path.join(npmDir, 'gpt-3-encoder-1.1.4', 'Encoder.js'));
const { Tiktoken } = require(path.join(npmDir, 'tiktoken-1.0.22', 'lite', 'tiktoken.cjs'));
const gpt2 = require(path.join(npmDir, 'tiktoken-1.0.22', 'encoders', 'gpt2.json'));
const tt = new Tiktoken(gpt2.bpe_ranks, gpt2.special_tokens, gpt2.pat_str);

let buf = fs.readFileSync(file);
const cut = buf.lastIndexOf(0x0a, Number(maxBytes) - 1);
if (buf.length > Number(maxBytes) && cut > 0) buf = buf.subarray(0, cut + 1);
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const lines = decoder.decode(buf).split('\n');
if (lines[lines.length - 1] === '') lines.pop();

function row(what, encode) {
  const t0 = process.hrtime.bigint();
  let tokens = 0;
  for (const line of lines) tokens += encode(line).length;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const mb = buf.length / 1e6;
  console.log(`${what.padEnd(28)} ${label.padEnd(22)} ${mb.toFixed(2).padStart(8)} ` +
    `${String(lines.length).padStart(9)} ${String(tokens).padStart(10)} ${secs.toFixed(3).padStart(8)} ` +
    `${(mb / secs).toFixed(1).padStart(8)} ${(lines.length / secs).toFixed(0).padStart(10)}`);
}
row('gpt-3-encoder 1.1.4 (node)', s => g3.encode(s));
row('tiktoken 1.0.22 gpt2 (wasm)', s => tt.encode_ordinary(s));
tt.free();
