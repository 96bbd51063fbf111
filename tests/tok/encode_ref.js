// tests/tok/encode_ref.js NPM_DIR CORPUS OUT_PREFIX
//
// Encodes every line of CORPUS (split on "\n" only; the file must be UTF-8)
// with the reference tokenizers, in this one process, and writes one line of
// space-separated ids per corpus line to:
//   OUT_PREFIX.g3        gpt-3-encoder 1.1.4 as published
//   OUT_PREFIX.tiktoken  tiktoken 1.0.22, encoding "gpt2", encode_ordinary
//   OUT_PREFIX.g3ws      gpt-3-encoder with one documented fix (below), only
//                        where the first two differ; elsewhere the .g3 line
//
// The fix: gpt-3-encoder writes GPT-2's regex as a JavaScript regex, where \s
// is ECMAScript's white space: it lacks U+0085 (NEL) and adds U+FEFF (BOM),
// unlike Unicode White_Space that Python's regex (OpenAI's encoder.py), Rust's
// regex (tiktoken) and Oniguruma (Hugging Face) use. The fixed copy reads
// Encoder.js from the package and replaces \s and \S in that one regex with
// \p{White_Space} and \P{White_Space}; the exact regex text must be found.
'use strict';
const fs = require('fs');
const path = require('path');
const Module = require('module');

const [npmDir, corpusPath, outPrefix] = process.argv.slice(2);
if (!outPrefix) {
  console.error('usage: node encode_ref.js NPM_DIR CORPUS OUT_PREFIX');
  process.exit(2);
}
const g3Dir = path.join(npmDir, 'gpt-3-encoder-1.1.4');
const ttDir = path.join(npmDir, 'tiktoken-1.0.22');

const g3 = require(path.join(g3Dir, 'Encoder.js'));

function loadFixedEncoder() {
  const file = path.join(g3Dir, 'Encoder.js');
  const src = fs.readFileSync(file, 'utf-8');
  const pat = String.raw`const pat = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu`;
  if (src.split(pat).length !== 2) throw new Error(`${file}: the regex to fix is not there exactly once`);
  const fixed = pat.replace(/\\s/g, String.raw`\p{White_Space}`).replace(/\\S/g, String.raw`\P{White_Space}`);
  const m = new Module(file + '#white-space-fix', module);
  m.filename = file;
  m.paths = Module._nodeModulePaths(g3Dir);
  m._compile(src.replace(pat, fixed), file);
  return m.exports;
}

const { Tiktoken } = require(path.join(ttDir, 'lite', 'tiktoken.cjs'));
const gpt2 = require(path.join(ttDir, 'encoders', 'gpt2.json'));
const tt = new Tiktoken(gpt2.bpe_ranks, gpt2.special_tokens, gpt2.pat_str);

const buf = fs.readFileSync(corpusPath);
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // keep a leading U+FEFF
const lines = [];
for (let start = 0; start < buf.length;) {
  let end = buf.indexOf(0x0a, start);
  if (end < 0) end = buf.length;
  lines.push(decoder.decode(buf.subarray(start, end)));
  start = end + 1;
}

let fixedEncoder = null;
const outG3 = [], outTt = [], outWs = [];
for (const line of lines) {
  const a = g3.encode(line).join(' ');
  const b = Array.from(tt.encode_ordinary(line)).join(' ');
  outG3.push(a);
  outTt.push(b);
  if (a !== b) {
    fixedEncoder = fixedEncoder || loadFixedEncoder();
    outWs.push(fixedEncoder.encode(line).join(' '));
  } else {
    outWs.push(a);
  }
}
tt.free();
const write = (suffix, arr) => fs.writeFileSync(outPrefix + suffix, arr.length ? arr.join('\n') + '\n' : '');
write('.g3', outG3);
write('.tiktoken', outTt);
write('.g3ws', outWs);
