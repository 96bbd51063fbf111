#!/usr/bin/python3
"""train_demo.py [OUT_DIR] — train patchgrid's bundled demo model, a GPT-2 that does induction.

    /usr/bin/python3 tools/train_demo.py            # writes models/demo/ (about 3 minutes, 2 cores)

The model is a 2-layer GPT-2 (HF's GPT2LMHeadModel layout: LayerNorm, gelu_new MLPs, learned
positions, tied embeddings) trained from scratch, with a fixed seed, on sequences of random words
in which pieces repeat: `[BOS] river lamp cat moon ... cat` -> ` moon`. Only induction predicts
the repeated words. The textbook circuit (Elhage et al. 2021, Olsson et al. 2022) is a
previous-token head in layer 0 that writes "the token before me was cat" into the position of
` moon`, and an induction head in layer 1 that, at the second ` cat`, finds that position by
K-composition with it and copies ` moon` to the output. Left alone, a model this small finds
other circuits first (position-ratio heads; a "shifted" induction through a 2-back head), so for
the first steps the layer-1 head is hinted where to look (see the README it writes); layer 0 is
never steered. The script then finds the heads from their attention patterns and checks the
circuit with its own head ablations.

It writes OUT_DIR (default models/demo/ beside tools/):
  config.json          GPT2Config keys, as tools/make_model.py writes them
  model.safetensors    F32 weights, HF names (Conv1D weights [in, out]), written by make_model.py's
                       writer
  vocab.json, merges.txt   a small GPT-2 byte-level BPE vocabulary: the 256 byte symbols, merges
                       that make each word of WORDS with a leading space (" cat") one token, and
                       <|endoftext|> (the BOS, last id as in GPT-2)
  README.md            how it was trained, held-out accuracy, the circuit and the evidence, and
                       the sha256 of every file above

Deterministic: the data come from numpy's PCG64, the weights from torch's CPU generator, all
arithmetic runs on one thread with deterministic algorithms, so a rerun writes byte-identical
files (on the same CPU and torch build; another BLAS may round differently, and then the bytes
differ but the circuit does not). The exported files are checked against tests/py/gpt2_ref.py,
the project's independent PyTorch GPT-2: its logits must equal the training model's.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402  (after the thread settings, which torch reads when it loads)
import torch.nn.functional as F  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
from make_model import write_safetensors  # noqa: E402
from gpt2_ref import GPT2Ref  # noqa: E402

# The words of the vocabulary: 217 concrete nouns, each one token with a leading space.
WORDS = """
apple arm baby bag ball band bank bar barn bean bear bed bee bell belt bench bike bird boat body
bone book boot bottle bowl box boy bread brick bridge brush bus cake camera camp candle cap car
card cart cat chair chalk cheese chest chin city clock cloud coat coin cook corn cow crab cup desk
dog door dragon dress drum duck eagle ear egg engine eye face farm fence field finger fire fish flag
floor flower fork fox frog garden gate ghost gift girl glass glove goat gold grape grass guitar hair
hammer hand hat heart hill horse house ice island jar jeans key king kite knee knife lake lamp leaf
leg lemon lion lock map milk mirror money monkey moon mouse mouth nail neck nest net night nose
ocean onion orange owl page pan paper park pear pen pencil piano pig pillow pipe plane plant plate
pocket pond potato queen rabbit radio rain ring river road robot rock roof room rope rose salt sand
school sea seed sheep shell ship shirt shoe sky snake snow sock sofa soup spoon star stone storm
street sugar sun table tail tea tent tiger toe tooth towel tower town toy train tree truck turtle
violin wall watch water whale wheel window wind wing wolf wood worm yard zebra
""".split()

EOT = "<|endoftext|>"

# Model shape and training recipe. Changing any of these changes the files.
SHAPE = dict(n_layer=2, n_head=4, n_embd=64, n_ctx=48)
RECIPE = dict(seed=0, steps=4000, batch=32, seq_len=49, lr=3e-3, warmup=200, weight_decay=0.05,
              repeat_frac=0.5, min_repeat=2, max_copies=4, max_copy_len=8,
              hint_steps=1000, hint_head=2, hint_weight=0.5)


# ---- tokenizer -------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2's byte -> printable character table (encoder.py), in GPT-2's vocabulary order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


def build_tokenizer(words):
    """(vocab {token: id}, merges ["a b"], word ids {word: id}) of the demo vocabulary.

    Ids 0..255 are the byte symbols in GPT-2's order. The merges build " w", " wo", " wor", ...
    for every prefix of every word: each merge's left half starts with the space symbol, so the
    only merge that applies to a word's bytes at any step is the next one of its own chain, and
    GPT-2's rank-ordered BPE turns " word" into one token whatever the ranks. Merges are ordered
    by length, then alphabetically; <|endoftext|> comes last.
    """
    table = bytes_to_unicode()
    byte_char = dict(table)
    vocab = {ch: i for i, (_, ch) in enumerate(table)}
    space = byte_char[ord(" ")]
    prefixes = sorted({w[:i] for w in words for i in range(1, len(w) + 1)}, key=lambda p: (len(p), p))
    merges = []
    for p in prefixes:
        left = space + p[:-1]
        merges.append(f"{left} {p[-1]}")
        vocab[space + p] = len(vocab)
    vocab[EOT] = len(vocab)
    word_ids = {w: vocab[space + w] for w in words}
    return vocab, merges, word_ids


def tokenize(text, vocab, merges):
    """GPT-2 BPE of text made of ' word' pieces only (the demo's prompts): the check that every
    word is one token, independent of patchgrid's tokenizer (which the tests run too)."""
    rank = {tuple(m.split(" ")): i for i, m in enumerate(merges)}
    byte_char = dict(bytes_to_unicode())
    ids = []
    for piece in text.replace(" ", "\0 ").split("\0"):
        if not piece:
            continue
        syms = [byte_char[b] for b in piece.encode()]
        while True:
            pairs = [(rank.get((a, b), math.inf), i) for i, (a, b) in enumerate(zip(syms, syms[1:]))]
            best, i = min(pairs, default=(math.inf, 0))
            if best == math.inf:
                break
            syms[i:i + 2] = [syms[i] + syms[i + 1]]
        ids += [vocab[s] for s in syms]
    return ids


# ---- model -----------------------------------------------------------------------------

def hf_parameter_shapes(V, C, L, P, D):
    """(HF name, shape) of every GPT2LMHeadModel weight, in make_model.py's file order."""
    out = [("wte.weight", (V, C)), ("wpe.weight", (P, C))]
    for l in range(L):
        h = f"h.{l}."
        out += [(h + "ln_1.weight", (C,)), (h + "ln_1.bias", (C,)),
                (h + "attn.c_attn.weight", (C, 3 * C)), (h + "attn.c_attn.bias", (3 * C,)),
                (h + "attn.c_proj.weight", (C, C)), (h + "attn.c_proj.bias", (C,)),
                (h + "ln_2.weight", (C,)), (h + "ln_2.bias", (C,)),
                (h + "mlp.c_fc.weight", (C, D)), (h + "mlp.c_fc.bias", (D,)),
                (h + "mlp.c_proj.weight", (D, C)), (h + "mlp.c_proj.bias", (C,))]
    return out + [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]


def sinusoids(P, C, lowest=0.25, highest=2.5):
    """[P, C] sin/cos position features at C/2 angular frequencies from lowest to highest: the
    initial position embeddings. "The position before" is then one linear map (a rotation) at
    every position, which a previous-token head needs."""
    pos = torch.arange(P, dtype=torch.float64)[:, None]
    freq = torch.logspace(math.log10(lowest), math.log10(highest), C // 2, dtype=torch.float64)
    out = torch.zeros(P, C, dtype=torch.float64)
    out[:, 0::2] = torch.sin(pos * freq)
    out[:, 1::2] = torch.cos(pos * freq)
    return out.float()


class DemoGPT2(torch.nn.Module):
    """GPT-2 with its parameters stored exactly as the HF file holds them (Conv1D [in, out])."""

    def __init__(self, V, C, H, L, P, d_mlp=None):
        super().__init__()
        d_mlp = d_mlp or 4 * C
        self.V, self.C, self.H, self.L, self.P = V, C, H, L, P
        self.names = []
        for name, shape in hf_parameter_shapes(V, C, L, P, d_mlp):
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                init = torch.ones(shape)
            elif name == "wpe.weight":
                init = sinusoids(P, C) / math.sqrt(C)
            elif len(shape) == 1:
                init = torch.zeros(shape)
            else:  # N(0, 1/C), residual projections scaled by 1/sqrt(2L) as in GPT-2
                # (GPT-2's own 0.02 is ~1/sqrt(C) for C = 2500; at C = 64 it makes q.k tiny and
                # the plateau before the induction circuit forms many times longer)
                std = 1 / math.sqrt(C) / (math.sqrt(2 * L) if name.endswith("c_proj.weight") else 1)
                init = torch.randn(shape) * std
            self.register_parameter(name.replace(".", "__"), torch.nn.Parameter(init))
            self.names.append(name)

    def p(self, name):
        return getattr(self, name.replace(".", "__"))

    def forward(self, tokens):
        """Logits [batch, pos, vocab] of tokens [batch, pos]."""
        B, T = tokens.shape
        C, H = self.C, self.H
        Dh = C // H
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = self.p("wte.weight")[tokens] + self.p("wpe.weight")[:T]
        self.patterns = [None] * self.L
        for l in range(self.L):
            w = lambda name: self.p(f"h.{l}.{name}")  # noqa: E731
            h = F.layer_norm(x, (C,), w("ln_1.weight"), w("ln_1.bias"), 1e-5)
            q, k, v = (h @ w("attn.c_attn.weight") + w("attn.c_attn.bias")).split(C, dim=-1)
            q, k, v = (t.reshape(B, T, H, Dh).transpose(1, 2) for t in (q, k, v))
            att = (q @ k.transpose(-1, -2)) / math.sqrt(Dh)
            att = F.softmax(att.masked_fill(future, -math.inf), dim=-1)
            self.patterns[l] = att                                     # [B, H, T, T]
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + y @ w("attn.c_proj.weight") + w("attn.c_proj.bias")
            h = F.layer_norm(x, (C,), w("ln_2.weight"), w("ln_2.bias"), 1e-5)
            h = F.gelu(h @ w("mlp.c_fc.weight") + w("mlp.c_fc.bias"), approximate="tanh")
            x = x + h @ w("mlp.c_proj.weight") + w("mlp.c_proj.bias")
        x = F.layer_norm(x, (C,), self.p("ln_f.weight"), self.p("ln_f.bias"), 1e-5)
        return x @ self.p("wte.weight").T


# ---- data ------------------------------------------------------------------------------

def training_batch(rng, word_ids, bos, B, T, r):
    """(tokens [B, T] int64, loss mask [B, T - 1] bool): BOS, then random words in which pieces
    repeat, and where the loss is taken.

    A fraction r["repeat_frac"] of the sequences repeat one random segment (`x1..xk x1..xk`, k in
    r["min_repeat"]..T/2, after a random prefix); the others copy 1..r["max_copies"] random
    segments of 2..r["max_copy_len"] words to later places (`.. cat moon .. cat moon ..`), the
    shape of the demo's prompts, where only the word just before tells where to copy from. The
    loss is taken at the positions whose next word induction predicts: the current word occurred
    before, and every earlier occurrence was followed by the word that follows now. Nothing else
    is predictable (the words are uniform random), and leaving those positions out of the loss
    avoids the long plateau that their gradient noise causes in so small a model.
    """
    words = np.asarray(word_ids, dtype=np.int64)
    seqs = words[rng.integers(0, len(words), size=(B, T))]
    seqs[:, 0] = bos
    mask = np.zeros((B, T - 1), dtype=bool)
    source = np.zeros((B, T - 1), dtype=np.int64)  # where induction copies from
    for s, m, src in zip(seqs, mask, source):
        if rng.random() < r["repeat_frac"]:
            k = int(rng.integers(r["min_repeat"], T // 2 + 1))
            start = int(rng.integers(1, T - 2 * k + 1))
            s[start + k:start + 2 * k] = s[start:start + k]
        else:
            for _ in range(int(rng.integers(1, r["max_copies"] + 1))):
                n = int(rng.integers(2, r["max_copy_len"] + 1))
                i = int(rng.integers(1, T - 2 * n + 1))
                j = int(rng.integers(i + n, T - n + 1))
                s[j:j + n] = s[i:i + n]
        successors = {}  # word -> the set of words that followed it so far
        last = {}
        for p in range(1, T - 1):
            seen = successors.setdefault(int(s[p]), set())
            m[p] = len(seen) > 0 and seen == {int(s[p + 1])}
            if m[p]:
                src[p] = last[int(s[p])] + 1
            seen.add(int(s[p + 1]))
            last[int(s[p])] = p
    return torch.from_numpy(seqs), torch.from_numpy(mask), torch.from_numpy(source)


def repeated_sequences(rng, word_ids, bos, n, k):
    """[n, 1 + 2k]: BOS, k distinct random words, the same k again — TL's induction test."""
    words = np.asarray(word_ids, dtype=np.int64)
    first = np.stack([rng.choice(words, size=k, replace=False) for _ in range(n)])
    return torch.from_numpy(np.concatenate([np.full((n, 1), bos), first, first], axis=1))


def bigram_prompts(rng, word_ids, bos, n, length):
    """n prompts like the demo's: BOS, distinct random words, the last one a repeat of word A1
    (any position but the last three), so the answer is the word after A1.

    Returns (tokens [n, length], the positions A1 [n], the answers [n]).
    """
    words = np.asarray(word_ids, dtype=np.int64)
    toks = np.stack([rng.choice(words, size=length, replace=False) for _ in range(n)])
    toks[:, 0] = bos
    a1 = rng.integers(1, length - 3, size=n)
    toks[np.arange(n), length - 1] = toks[np.arange(n), a1]
    return torch.from_numpy(toks), torch.from_numpy(a1), torch.from_numpy(toks[np.arange(n), a1 + 1])


# ---- training and evaluation -----------------------------------------------------------

def learning_rate(step, r):
    if step < r["warmup"]:
        return r["lr"] * (step + 1) / r["warmup"]
    progress = (step - r["warmup"]) / max(1, r["steps"] - r["warmup"])
    return r["lr"] * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def evaluate(logits_of, word_ids, bos, seed):
    """Held-out numbers (data from seed + 1000, never seen in training)."""
    rng = np.random.default_rng(seed + 1000)
    k = 20
    rep = repeated_sequences(rng, word_ids, bos, 256, k)
    logits = logits_of(rep)
    logp = F.log_softmax(logits, dim=-1)
    # positions 1+k .. 2k predict the second copy's tokens 2+k .. 2k+1: each follows an earlier copy
    pred = slice(1 + k, 2 * k)
    target = rep[:, 2 + k:2 * k + 1]
    rep_loss = -logp[:, pred].gather(-1, target[..., None]).mean().item()
    rep_acc = (logits[:, pred].argmax(-1) == target).float().mean().item()
    first_loss = -logp[:, 1:k].gather(-1, rep[:, 2:k + 1, None]).mean().item()
    toks, a1, answer = bigram_prompts(rng, word_ids, bos, 512, 16)
    last = logits_of(toks)[:, -1]
    bigram_acc = (last.argmax(-1) == answer).float().mean().item()
    bigram_prob = F.softmax(last, -1).gather(-1, answer[:, None]).mean().item()
    return dict(repeat_loss=rep_loss, repeat_acc=rep_acc, first_half_loss=first_loss,
                bigram_acc=bigram_acc, bigram_prob=bigram_prob)


def train(model, word_ids, bos, r, log):
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], betas=(0.9, 0.98),
                            weight_decay=r["weight_decay"])
    rng = np.random.default_rng(r["seed"])
    t0 = time.time()
    for step in range(r["steps"]):
        for g in opt.param_groups:
            g["lr"] = learning_rate(step, r)
        tokens, mask, source = training_batch(rng, word_ids, bos, r["batch"], r["seq_len"], r)
        logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits[mask], tokens[:, 1:][mask])
        if step < r["hint_steps"]:
            b, q = mask.nonzero(as_tuple=True)
            att = model.patterns[-1][b, r["hint_head"], q, source[b, q]]
            loss = loss - r["hint_weight"] * att.clamp_min(1e-6).log().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 250 == 0 or step == r["steps"] - 1:
            ev = evaluate(model, word_ids, bos, r["seed"])
            log(f"step {step:5d}  loss {loss.item():.4f}  held-out: repeat acc {ev['repeat_acc']:.3f}"
                f"  bigram acc {ev['bigram_acc']:.3f}  ({time.time() - t0:.0f}s)")
    return loss.item()


# ---- the circuit, from the exported files ----------------------------------------------

@torch.no_grad()
def head_scores(ref, word_ids, bos, seed):
    """Per (layer, head): previous-token and induction scores (TL's definitions) and the
    attention of the last token to B1 in demo-style prompts, from gpt2_ref's hook_pattern."""
    rng = np.random.default_rng(seed + 2000)
    k = 20
    rep = repeated_sequences(rng, word_ids, bos, 128, k)
    _, cache = ref.run_with_cache(rep, names_filter=lambda n: n.endswith("hook_pattern"))
    L, H = ref.n_layers, ref.n_heads
    prev = np.zeros((L, H))
    induction = np.zeros((L, H))
    to_b1 = np.zeros((L, H))
    T = rep.shape[1]
    for l in range(L):
        pat = cache[f"blocks.{l}.attn.hook_pattern"]                  # [batch, head, q, k]
        q = torch.arange(1, T)
        prev[l] = pat[:, :, q, q - 1].mean((0, 2)).numpy()
        q = torch.arange(1 + k, T)                                     # second copy
        induction[l] = pat[:, :, q, q - k + 1].mean((0, 2)).numpy()
    toks, a1, _ = bigram_prompts(rng, word_ids, bos, 256, 16)
    _, cache = ref.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_pattern"))
    for l in range(L):
        pat = cache[f"blocks.{l}.attn.hook_pattern"]
        to_b1[l] = pat[torch.arange(len(toks)), :, -1, a1 + 1].mean(0).numpy()
    return prev, induction, to_b1


@torch.no_grad()
def ablation_effects(ref, word_ids, bos, seed):
    """Mean-ablating each head's z (over the batch and positions): the drop of the demo-style
    prompts' answer probability. A head the circuit needs costs most of it."""
    rng = np.random.default_rng(seed + 3000)
    toks, _, answer = bigram_prompts(rng, word_ids, bos, 256, 16)
    base = F.softmax(ref.forward(toks)[:, -1], -1).gather(-1, answer[:, None]).mean().item()
    out = np.zeros((ref.n_layers, ref.n_heads))
    for l in range(ref.n_layers):
        for h in range(ref.n_heads):
            def ablate(z, hook, h=h):
                z = z.clone()
                z[:, :, h] = z[:, :, h].mean((0, 1))
                return z
            logits = ref.run_with_hooks(toks, [(f"blocks.{l}.attn.hook_z", ablate)])
            out[l, h] = F.softmax(logits[:, -1], -1).gather(-1, answer[:, None]).mean().item()
    return base, out


# ---- writing the model directory -------------------------------------------------------

def write_tokenizer(out_dir, vocab, merges):
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
        f.write("\n")
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for m in merges:
            f.write(m + "\n")


def write_config(out_dir, V, eot):
    config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": SHAPE["n_layer"],
        "n_head": SHAPE["n_head"],
        "n_embd": SHAPE["n_embd"],
        "n_inner": SHAPE.get("n_inner"),
        "vocab_size": V,
        "n_positions": SHAPE["n_ctx"],
        "n_ctx": SHAPE["n_ctx"],
        "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new",
        "tie_word_embeddings": True,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "torch_dtype": "float32",
    }
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def fmt_grid(x, digits=2):
    """A [layer, head] array as a markdown table."""
    H = x.shape[1]
    rows = ["| layer | " + " | ".join(f"head {h}" for h in range(H)) + " |",
            "| --- |" + " --- |" * H]
    for l in range(x.shape[0]):
        rows.append(f"| {l} | " + " | ".join(f"{v:.{digits}f}" for v in x[l]) + " |")
    return "\n".join(rows)


README = """\
# The demo model: a 2-layer GPT-2 that does induction

This directory is a Hugging Face GPT-2 model (`GPT2LMHeadModel` layout, F32 safetensors, GPT-2
byte-level BPE tokenizer files) small enough to ship with patchgrid, trained so that its circuit
is known. `configs/demo.yaml` runs a patching sweep on it; `tests/py/test_demo_circuit.py` checks
that the sweep finds the circuit described here. Everything below, this file included, is
written by `tools/train_demo.py`.

## The model

{n_layer} layers, {n_head} heads (d_head {d_head}), d_model {n_embd}, MLP {d_mlp}, n_ctx {n_ctx},
LayerNorm, gelu_new, learned positions, tied embeddings: {n_params} parameters.

The vocabulary ({V} ids) is the 256 byte symbols, {n_merges} merges and `<|endoftext|>` (id
{eot}, the BOS). The merges make each of {n_words} nouns, written with a leading space, one
token (` cat`, ` river`, ` moon`, …; the list is `WORDS` in the script), so prompts are readable
text: `" river lamp cat moon"` is 4 tokens. A word without its leading space, or anything else,
falls apart into byte tokens the model never saw.

## Training

```
/usr/bin/python3 tools/train_demo.py          # writes models/demo/; 3-5 minutes on 2 cores
```

Seed {seed}, {steps} steps of AdamW (lr {lr} with {warmup} warmup steps and cosine decay to
10%, betas (0.9, 0.98), weight decay {weight_decay}, gradient clipping at 1), batches of {batch}
sequences of {seq_len} tokens. A sequence is `<|endoftext|>` followed by uniformly random words;
in half of the sequences one random segment of {min_repeat}–24 words is repeated right after
itself (`x1 … xk x1 … xk`), in the other half 1–{max_copies} random segments of 2–{max_copy_len}
words are copied to later places (`… cat moon … cat moon …`). The loss is the next-token cross
entropy at the positions that induction predicts (the current word occurred before, and every
earlier occurrence was followed by the word that follows now) and nowhere else: the other words
are unpredictable, so the model's outputs there are meaningless (and overconfident). Final
training loss {final_loss:.4f}.

Weights start from N(0, 1/d_model) (residual projections also divided by sqrt(2 · n_layer), as
GPT-2 does), LayerNorm at (1, 0), and the position embeddings from sin/cos features (then
learned like every weight). GPT-2's own N(0, 0.02) is far too small for d_model {n_embd}: the
model then sits on its loss plateau for longer than this script may run.

**A hint for the first {hint_steps} steps.** Trained on the loss alone, models this small found
other circuits that solve the same data: layer-0 heads that attend to about 0.6 × the query
position, or "shifted" induction (layer-1 heads attending to the token *two* after the earlier
occurrence, fed by a 2-back head and a 1-back head in layer 0, spread over all heads). To get
the textbook circuit, the first {hint_steps} steps add {hint_weight} × the mean −log attention
of head 1.{hint_head} (layer 1 only) to the position it should copy from; the remaining
{rest_steps} steps use the next-token loss alone. Nothing steers layer 0: the previous-token head
below is the one the model grew to feed head 1.{hint_head}, and the ablations show that the model
relies on exactly these two heads once the hint is gone.

The run is deterministic: the data come from numpy's PCG64 generator, the weights from torch's
CPU generator, all on one thread with deterministic algorithms. Running the command again writes
byte-identical files (with the same torch build on the same kind of CPU):

| file | sha256 |
| --- | --- |
{sha_rows}

Held-out data (another seed, never trained on):

| what | value |
| --- | --- |
| 256 sequences `BOS x1 … x20 x1 … x20` of distinct words: accuracy on the second copy (tokens 2–20) | {repeat_acc:.4f} |
| the same: loss on the second copy | {repeat_loss:.4f} |
| the same: loss on the first copy (unpredictable and never trained on; a uniform guess costs ln {n_words} = {uniform:.3f}) | {first_half_loss:.4f} |
| 512 prompts of 15 distinct words with the last word repeated from earlier: accuracy of the word after its first occurrence | {bigram_acc:.4f} |
| the same: mean probability of that word | {bigram_prob:.4f} |

The exported files were checked against `tests/py/gpt2_ref.py`, the project's independent
PyTorch GPT-2: its logits on the held-out sequences differ from the training model's by at most
{max_diff:.1e}.

## The circuit

In `" … cat moon … cat"`, the model predicts `" moon"` in two steps, the induction circuit of a
two-layer transformer (Elhage et al. 2021, Olsson et al. 2022):

1. **Layer 0, head {prev_head}: the previous-token head.** At every position it attends to the
   position before, so the residual stream at `" moon"` learns "the previous token was `cat`".
2. **Layer 1, head {ind_head}: the induction head** (the head the hint pointed at). At the
   second `" cat"`, its query (`cat`) matches the key at `" moon"` that head 0.{prev_head} wrote
   (K-composition); it attends there and its OV circuit copies `" moon"` to the logits.

Evidence, from `gpt2_ref.py`'s `hook_pattern` on held-out data (script: `head_scores`):

Previous-token score — the mean attention from each position to the one before (128 repeated
sequences of 41 tokens):

{prev_table}

Induction score — the mean attention from each token of the second copy to the token after its
first occurrence:

{ind_table}

In demo-style prompts (16 tokens, the last word repeated from earlier, 256 prompts), the
attention of the last position to B1, the token after the earlier occurrence:

{b1_table}

Mean-ablating one head's `hook_z` (its mean over prompts and positions) in those prompts: the
answer's probability, {base_prob:.3f} without ablation (script: `ablation_effects`):

{abl_table}

{ablation_summary}

## What patching finds

`configs/demo.yaml` patches, in prompts like `" … cat moon … dog bird … cat"` → `" moon"`, the
clean run into a corrupted one where ` cat` and ` dog` have swapped places (→ `" bird"`). The
sweep (`patchgrid run configs/demo.yaml`) singles out the same two heads: patching the `z` of
head 0.{prev_head} or head 1.{ind_head} restores the clean logit difference, and the residual stream
shows the information at the swapped words after the embedding, at the words after them after
layer 0, and at the last position only after layer 1. `tests/py/test_demo_circuit.py` asserts it.
"""


def main(argv):
    p = argparse.ArgumentParser(description="Train patchgrid's demo induction model.")
    p.add_argument("out_dir", nargs="?", default=os.path.join(ROOT, "models", "demo"))
    a = p.parse_args(argv)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(RECIPE["seed"])
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    vocab, merges, word_ids = build_tokenizer(WORDS)
    V, eot = len(vocab), vocab[EOT]
    ids = [word_ids[w] for w in WORDS]
    assert tokenize(" " + " ".join(WORDS), vocab, merges) == ids

    C, H, L, P = SHAPE["n_embd"], SHAPE["n_head"], SHAPE["n_layer"], SHAPE["n_ctx"]
    model = DemoGPT2(V, C, H, L, P, SHAPE.get("n_inner"))
    n_params = sum(x.numel() for x in model.parameters())
    log(f"demo model: {L} layers, {H} heads, d_model {C}, vocab {V} ({len(WORDS)} words), "
        f"{n_params} parameters")
    t0 = time.time()
    final_loss = train(model, ids, eot, RECIPE, log)
    log(f"trained in {time.time() - t0:.0f}s")
    model.eval()

    os.makedirs(a.out_dir, exist_ok=True)
    write_tokenizer(a.out_dir, vocab, merges)
    write_config(a.out_dir, V, eot)
    tensors = [(n, model.p(n).detach().numpy().astype(np.float32)) for n in model.names]
    write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensors, "f32")

    # The exported directory, read by the independent reference, must be the trained model.
    ref = GPT2Ref(a.out_dir)
    ev_model = evaluate(model, ids, eot, RECIPE["seed"])
    ev = evaluate(ref.forward, ids, eot, RECIPE["seed"])
    probe = repeated_sequences(np.random.default_rng(7), ids, eot, 32, 20)
    with torch.no_grad():
        max_diff = (model(probe) - ref.forward(probe)).abs().max().item()
    if max_diff > 1e-3 or abs(ev["repeat_acc"] - ev_model["repeat_acc"]) > 1e-6:
        sys.exit(f"train_demo.py: the exported model differs from the trained one (max |dlogit| {max_diff})")

    prev, induction, to_b1 = head_scores(ref, ids, eot, RECIPE["seed"])
    prev_head = int(prev[0].argmax())
    ind_head = int(induction[L - 1].argmax())
    base_prob, ablated = ablation_effects(ref, ids, eot, RECIPE["seed"])
    log(f"held-out: {json.dumps({k: round(v, 4) for k, v in ev.items()})}")
    log(f"previous-token scores:\n{prev.round(3)}\ninduction scores:\n{induction.round(3)}")
    log(f"attention END -> B1:\n{to_b1.round(3)}")
    log(f"answer prob {base_prob:.3f}; with one head's z mean-ablated:\n{ablated.round(3)}")
    log(f"circuit: previous-token head 0.{prev_head}, induction head {L - 1}.{ind_head}")

    crucial = [(l, h) for l in range(L) for h in range(H) if ablated[l, h] < base_prob / 2]
    rest = [ablated[l, h] for l in range(L) for h in range(H) if (l, h) not in crucial]
    summary = (f"Ablating head {' or head '.join(f'{l}.{h}' for l, h in crucial)} destroys the behaviour; "
               f"ablating any other head leaves the answer's probability at {min(rest):.3f} or more.")
    lookalikes = [h for h in range(H) if h != ind_head and to_b1[L - 1, h] > 0.5]
    if lookalikes:
        summary += "".join(
            f" Head {L - 1}.{h} attends like an induction head too ({to_b1[L - 1, h]:.2f} to B1) but writes"
            f" almost nothing: ablating it leaves the probability at {ablated[L - 1, h]:.3f}."
            for h in lookalikes)
    files = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]
    sha_rows = "\n".join(f"| `{f}` | `{sha256(os.path.join(a.out_dir, f))}` |" for f in files)
    text = README.format(
        **SHAPE, **RECIPE, **ev, d_head=C // H, d_mlp=4 * C, n_params=n_params, V=V, eot=eot,
        n_merges=len(merges), n_words=len(WORDS), uniform=math.log(len(WORDS)),
        final_loss=final_loss, sha_rows=sha_rows, max_diff=max_diff,
        prev_head=prev_head, ind_head=ind_head, base_prob=base_prob,
        prev_table=fmt_grid(prev), ind_table=fmt_grid(induction), b1_table=fmt_grid(to_b1),
        abl_table=fmt_grid(ablated, 3), ablation_summary=summary, rest_steps=RECIPE["steps"] - RECIPE["hint_steps"])
    with open(os.path.join(a.out_dir, "README.md"), "w") as f:
        f.write(text)
    for f in files + ["README.md"]:
        log(f"{sha256(os.path.join(a.out_dir, f))}  {f}")


if __name__ == "__main__":
    main(sys.argv[1:])
