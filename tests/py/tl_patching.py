#!/usr/bin/python3
"""tl_patching.py — an independent TransformerLens-style activation-patching loop.

Written from TransformerLens's `patching` module semantics (generic_activation_patch and its
*_patch_setter functions), not from patchgrid's C code: for every cell of the grid, one full
forward pass of GPT2Ref (gpt2_ref.py) with a hook that overwrites one activation slice, full
logits, and the metric read from the last position. No prefix reuse, no no-op skipping.

    denoising  run the CORRUPTED prompt, overwrite the slice with the source's activation
    noising    run the CLEAN prompt, overwrite the slice with the source's activation
    source     other: the other run of the same pair; zero: zeros; mean: the mean over all
               pairs of the source run kind (clean runs when denoising, corrupted when
               noising); resample: the source run kind of the pair resample_partner[i]

Slices (TL's setters; batch axis first):
    resid_pre|resid_mid|resid_post|attn_out|mlp_out  (layer, pos)   act[:, pos, :]
    z|q|k|v  (layer, head), all positions                              act[:, :, head, :]
    pattern  (layer, head), all positions                              act[:, head, :, :]
    z|q|k|v  (layer, pos, head)                                        act[:, pos, head, :]
    pattern  (layer, pos, head): pos is the destination (query) row    act[:, head, pos, :]

Results come back in patchgrid's axis order ([pair, layer, pos], [pair, layer, head],
[pair, layer, pos, head]); NaN where a pair does not have a position.

As a library:
    patch_experiment(model_dir, pairs, experiment, metrics)  -> {metric: [pair, ...]}
or, sharing the unpatched runs between experiments:
    loop = PatchingLoop(model_dir_or_GPT2Ref, pairs, resample_partner=None)
    loop.baselines()                  -> {metric: float64 [pair, run]}  run = clean, corrupted
    loop.run(experiment, metrics)     -> Result(values={metric: [pair, ...]}, layers, heads, pos)
`pairs` are Pair(clean, corrupted, answer, wrong, positions) with token ids; an experiment is
a dict in the config's form ({patch, by, layers, heads, positions, direction, source});
expand_experiments() turns block_every / head_every groups into their experiments.
cells_per_forward > 1 stacks that many patched runs along the batch axis of one forward (each
batch row is still one whole patched run; rows never interact), to keep the tests fast; the
timing baseline uses 1, TransformerLens's loop.

As a command (the benchmark's baseline, or a cross-check of a results file):
    tl_patching.py CONFIG.yaml [--pairs-from RESULTS.h5] [--experiment NAME]... [--time]
                   [--batch-pairs] [--compare RESULTS.h5]
Pairs given as text need --pairs-from (the token ids patchgrid wrote); so does `resample`.
--time prints one line `seconds=S cells=N forwards=F threads=1 ...` (one BLAS thread).
"""
import os

# One BLAS thread before torch loads: Debian's torch multiplies with OpenBLAS, and
# torch.set_num_threads does not reach OpenBLAS's own pool.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpt2_ref import GPT2Ref  # noqa: E402

METRICS = ("logit_diff", "logit_diff_norm", "prob", "logprob", "kl")
RESID_KINDS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
HEAD_KINDS = ("z", "q", "k", "v", "pattern")
# TL: get_act_patch_block_every = resid_pre, attn_out, mlp_out;
#     get_act_patch_attn_head_all_pos_every = output (z), query, key, value, pattern.
GROUPS = {"block_every": ("resid_pre", "attn_out", "mlp_out"), "head_every": HEAD_KINDS}
HOOK = {"resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid",
        "resid_post": "hook_resid_post", "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out",
        "z": "attn.hook_z", "q": "attn.hook_q", "k": "attn.hook_k", "v": "attn.hook_v",
        "pattern": "attn.hook_pattern"}
CLEAN, CORRUPTED = 0, 1


@dataclass
class Pair:
    clean: list                                    # token ids
    corrupted: list                                # token ids, same length
    answer: int
    wrong: int
    positions: dict = field(default_factory=dict)  # name -> index (negative: from the end)

    def __post_init__(self):
        self.clean = [int(t) for t in self.clean]
        self.corrupted = [int(t) for t in self.corrupted]
        if len(self.clean) != len(self.corrupted):
            raise ValueError(f"clean has {len(self.clean)} tokens, corrupted {len(self.corrupted)}")

    def tokens(self, run):
        return self.clean if run == CLEAN else self.corrupted


@dataclass
class Result:
    values: dict      # metric -> float64 array [pair, layer, pos] / [pair, layer, head] / [pair, layer, pos, head]
    layers: list      # the layer axis (model layer numbers)
    heads: list       # the head axis, or None
    pos: list         # the pos axis as given (ints, or names / ints of a list), or None
    cells: int = 0    # patched forward passes run (one per cell)
    forwards: int = 0  # torch forward calls (fewer than cells when cells are stacked)


def expand_experiments(exps):
    """Config experiments -> one per patch kind: a block_every/head_every group named G
    becomes G_<kind> for each kind of the group (TL's *_every functions)."""
    out = []
    for e in exps:
        if e["patch"] in GROUPS:
            for kind in GROUPS[e["patch"]]:
                out.append(dict(e, name=f"{e['name']}_{kind}", patch=kind))
        else:
            out.append(dict(e))
    return out


def _selection(sel, n, what):
    """layers/heads: 'all' (default) | [i, ...] | {from, to} -> sorted model indices."""
    if sel is None or sel == "all":
        return list(range(n))
    if isinstance(sel, dict):
        chosen = list(range(int(sel["from"]), int(sel["to"]) + 1))
    else:
        chosen = sorted(int(i) for i in sel)
    if not chosen or chosen[-1] >= n or chosen[0] < 0 or len(set(chosen)) != len(chosen):
        raise ValueError(f"bad {what} selection {sel!r} for a model with {n} {what}s")
    return chosen


def resolve_pos(entry, pair):
    """One entry of a positions list for one pair: the token index, or None if the pair has
    no such position (an index out of range, or a name the pair lacks)."""
    n = len(pair.clean)
    if isinstance(entry, str):
        if entry not in pair.positions:
            return None
        at = int(pair.positions[entry])
    else:
        at = int(entry)
    at = at + n if at < 0 else at
    return at if 0 <= at < n else None


def _metrics(logits_last, pair, ld_clean_corr, clean_logp):
    """Every metric (float64) of one last-position logits row [vocab]."""
    row = logits_last.double()
    ld = float(row[pair.answer] - row[pair.wrong])
    logp = torch.log_softmax(row, dim=-1)
    out = {"logit_diff": ld, "logprob": float(logp[pair.answer]),
           "prob": float(torch.exp(logp[pair.answer]))}
    if ld_clean_corr is not None:
        ld_clean, ld_corr = ld_clean_corr
        with np.errstate(divide="ignore", invalid="ignore"):  # IEEE: 0/0 = NaN, x/0 = inf
            out["logit_diff_norm"] = float(np.float64(ld - ld_corr) / np.float64(ld_clean - ld_corr))
    if clean_logp is not None:
        out["kl"] = float((clean_logp.exp() * (clean_logp - logp)).sum())
    return out


def _set_slice(kind, per_pos, act, src, pos, head):
    """TL's patch setters: act[slice] = src[slice], in place (act is a clone)."""
    if kind in RESID_KINDS:
        act[:, pos, :] = src[:, pos, :]
    elif kind == "pattern":
        if per_pos:
            act[:, head, pos, :] = src[:, head, pos, :]
        else:
            act[:, head, :, :] = src[:, head, :, :]
    elif per_pos:
        act[:, pos, head, :] = src[:, pos, head, :]
    else:
        act[:, :, head, :] = src[:, :, head, :]


class PatchingLoop:
    def __init__(self, model, pairs, resample_partner=None):
        self.model = model if isinstance(model, GPT2Ref) else GPT2Ref(model)
        self.pairs = [p if isinstance(p, Pair) else Pair(**p) for p in pairs]
        self.partner = None if resample_partner is None else [int(j) for j in resample_partner]
        self.cache = {}        # (pair, run) -> {hook name: activation [1, ...]}
        self.last_logits = {}  # (pair, run) -> float32 [vocab]
        self.forwards = 0

    # ---- the unpatched runs ---------------------------------------------------------
    def _run(self, i, run):
        """Pair i's clean or corrupted run, cached with every patchable activation."""
        key = (i, run)
        if key not in self.cache:
            want = set(HOOK.values())
            with torch.no_grad():
                logits, cache = self.model.run_with_cache(
                    self.pairs[i].tokens(run), names_filter=lambda name: name.split(".", 2)[-1] in want)
            self.forwards += 1
            self.cache[key] = cache
            self.last_logits[key] = logits[0, -1]
        return self.cache[key]

    def _base_info(self, i):
        """(clean and corrupted logit diffs, clean log-probs) of pair i."""
        self._run(i, CLEAN)
        self._run(i, CORRUPTED)
        p = self.pairs[i]
        lds = [float(self.last_logits[(i, r)].double()[p.answer] - self.last_logits[(i, r)].double()[p.wrong])
               for r in (CLEAN, CORRUPTED)]
        return (lds[0], lds[1]), torch.log_softmax(self.last_logits[(i, CLEAN)].double(), -1)

    def baselines(self):
        """{metric: [pair, run]} of the unpatched runs (run 0 clean, 1 corrupted)."""
        out = {m: np.full((len(self.pairs), 2), np.nan) for m in METRICS}
        for i, p in enumerate(self.pairs):
            lds, clean_logp = self._base_info(i)
            for r in (CLEAN, CORRUPTED):
                vals = _metrics(self.last_logits[(i, r)], p, lds, clean_logp)
                for m in METRICS:
                    out[m][i, r] = vals[m]
        return out

    def _source(self, i, hook, src_run, source):
        """The activation the patch copies from, shaped like the patched run's [1, ...]."""
        if source == "other":
            return self._run(i, src_run)[hook]
        if source == "zero":
            return torch.zeros_like(self._run(i, src_run)[hook])
        if source == "resample":
            if self.partner is None:
                raise ValueError("source resample needs resample_partner")
            j = self.partner[i]
            if j == i or len(self.pairs[j].clean) != len(self.pairs[i].clean):
                raise ValueError(f"resample partner {j} of pair {i} is itself or of another length")
            return self._run(j, src_run)[hook]
        if source == "mean":
            lengths = {len(p.clean) for p in self.pairs}
            if len(lengths) != 1:
                raise ValueError("source mean needs pairs of equal length")
            key = ("mean", hook, src_run)
            if key not in self.cache:
                acts = torch.stack([self._run(j, src_run)[hook].double() for j in range(len(self.pairs))])
                self.cache[key] = acts.mean(0).float()
            return self.cache[key]
        raise ValueError(f"unknown source {source!r}")

    # ---- one experiment -------------------------------------------------------------
    def run(self, exp, metrics=None, cells_per_forward=1):
        kind = exp["patch"]
        if kind not in HOOK:
            raise ValueError(f"patch {kind!r}: expand block_every/head_every first")
        metrics = list(metrics or exp.get("metrics") or ["logit_diff"])
        head_kind = kind in HEAD_KINDS
        by = tuple(exp.get("by") or (("layer", "head") if head_kind else ("layer", "pos")))
        per_pos = "pos" in by
        direction = exp.get("direction", "denoising")
        source = exp.get("source", "other")
        base_run = CORRUPTED if direction == "denoising" else CLEAN
        src_run = CLEAN if direction == "denoising" else CORRUPTED
        m = self.model
        layers = _selection(exp.get("layers"), m.n_layers, "layer")
        heads = _selection(exp.get("heads"), m.n_heads, "head") if head_kind else None
        if per_pos:
            pos_sel = exp.get("positions", "all")
            max_t = max(len(p.clean) for p in self.pairs)
            pos_axis = list(range(max_t)) if pos_sel in (None, "all") else list(pos_sel)
        else:
            pos_axis = None
        shape = [len(self.pairs), len(layers)]
        if per_pos:
            shape.append(len(pos_axis))
        if head_kind:
            shape.append(len(heads))
        out = {name: np.full(shape, np.nan) for name in metrics}
        res = Result(out, layers, heads, pos_axis)
        forwards0 = self.forwards

        for i, pair in enumerate(self.pairs):
            lds, clean_logp = self._base_info(i)
            # Cells of this pair: (result index, layer, pos, head).
            cells = []
            for li, layer in enumerate(layers):
                for pi, entry in enumerate(pos_axis if per_pos else [None]):
                    pos = resolve_pos(entry, pair) if per_pos else None
                    if per_pos and pos is None:
                        continue  # the pair lacks this position: NaN
                    for hi, head in enumerate(heads if head_kind else [None]):
                        idx = (i, li) + ((pi,) if per_pos else ()) + ((hi,) if head_kind else ())
                        cells.append((idx, layer, pos, head))
            tokens = pair.tokens(base_run)
            for c0 in range(0, len(cells), cells_per_forward):
                chunk = cells[c0:c0 + cells_per_forward]
                hooks = []
                for layer in sorted({c[1] for c in chunk}):
                    name = f"blocks.{layer}.{HOOK[kind]}"
                    src = self._source(i, name, src_run, source)
                    rows = [(b, c) for b, c in enumerate(chunk) if c[1] == layer]

                    def patch(act, hook, rows=rows, src=src):
                        act = act.clone()
                        for b, (_, _, pos, head) in rows:
                            _set_slice(kind, per_pos, act[b:b + 1], src, pos, head)
                        return act
                    hooks.append((name, patch))
                with torch.no_grad():
                    logits = m.run_with_hooks([tokens] * len(chunk), fwd_hooks=hooks)
                self.forwards += 1
                for b, (idx, _, _, _) in enumerate(chunk):
                    vals = _metrics(logits[b, -1], pair, lds, clean_logp)
                    for name in metrics:
                        out[name][idx] = vals[name]
                res.cells += len(chunk)
        res.forwards = self.forwards - forwards0
        return res


def patch_experiment(model_dir, pairs, experiment, metrics=None, resample_partner=None):
    """{metric: float64 array in patchgrid's axis order} of one experiment (one patch kind)."""
    return PatchingLoop(model_dir, pairs, resample_partner).run(experiment, metrics).values


# ---- the command ----------------------------------------------------------------------

def _load_config(path):
    import yaml
    with open(path) as f:
        cfg = yaml.safe_load(f)
    base = os.path.dirname(os.path.abspath(path))
    cfg["_model_dir"] = os.path.join(base, cfg["model"])
    ds = cfg["dataset"]
    if "file" in ds:
        with open(os.path.join(base, ds["file"])) as f:
            cfg["_pairs"] = [json.loads(line) for line in f if line.strip()]
    else:
        cfg["_pairs"] = ds["pairs"]
    return cfg


def _pairs_from_config(raw):
    pairs = []
    for n, p in enumerate(raw):
        if "clean_tokens" not in p or "answer_token" not in p:
            raise SystemExit(f"pair {n + 1} is given as text: pass --pairs-from RESULTS.h5 "
                             "(the token ids patchgrid wrote)")
        pairs.append(Pair(p["clean_tokens"], p["corrupted_tokens"], p["answer_token"],
                          p["wrong_token"], dict(p.get("positions") or {})))
    return pairs


def read_pairs_h5(path):
    """(pairs, resample_partner or None) as patchgrid stored them in a results file."""
    import h5py
    with h5py.File(path, "r") as f:
        g = f["pairs"]
        lengths = g["length"][...]
        names = list(g["positions"].keys()) if "positions" in g else []
        pos = {n: g["positions"][n][...] for n in names}
        pairs = [Pair(g["clean_tokens"][i, :lengths[i]], g["corrupted_tokens"][i, :lengths[i]],
                      int(g["answer"][i]), int(g["wrong"][i]),
                      {n: int(pos[n][i]) for n in names if pos[n][i] >= 0})
                 for i in range(len(lengths))]
        partner = g["resample_partner"][...] if "resample_partner" in g else None
    return pairs, partner


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="a patchgrid config (YAML)")
    ap.add_argument("--pairs-from", metavar="RESULTS.h5",
                    help="take the pairs' token ids (and resample partners) from a results file")
    ap.add_argument("--experiment", action="append", default=[], metavar="NAME",
                    help="run only this experiment (repeatable; default: all)")
    ap.add_argument("--time", action="store_true",
                    help="print `seconds=S cells=N forwards=F threads=T` for the whole loop")
    ap.add_argument("--batch-pairs", action="store_true",
                    help="TL's notebook way: all pairs of the dataset in one forward per cell "
                         "(needs equal lengths); default: one forward per pair and cell")
    ap.add_argument("--compare", metavar="RESULTS.h5",
                    help="print the max |difference| to a patchgrid results file per experiment "
                         "and metric; exit 1 if one exceeds --tol or NaNs differ")
    ap.add_argument("--tol", type=float, default=1e-4, help="for --compare (default 1e-4)")
    a = ap.parse_args(argv)

    torch.set_num_threads(1)
    cfg = _load_config(a.config)
    if a.pairs_from:
        pairs, partner = read_pairs_h5(a.pairs_from)
    else:
        pairs, partner = _pairs_from_config(cfg["_pairs"]), None
    default_metrics = cfg.get("metrics") or ["logit_diff"]
    exps = expand_experiments(cfg["experiments"])
    if a.experiment:
        unknown = set(a.experiment) - {e["name"] for e in exps}
        if unknown:
            raise SystemExit(f"no experiment named {', '.join(sorted(unknown))}")
        exps = [e for e in exps if e["name"] in a.experiment]

    model = GPT2Ref(cfg["_model_dir"])
    t0 = time.perf_counter()
    results = {}
    cells = forwards = 0
    if a.batch_pairs:
        for e in exps:
            results[e["name"]], n_cells, n_fwd = run_batched_pairs(model, pairs, e,
                                                                   e.get("metrics") or default_metrics)
            cells += n_cells
            forwards += n_fwd
    else:
        loop = PatchingLoop(model, pairs, partner)
        loop.baselines()
        for e in exps:
            r = loop.run(e, e.get("metrics") or default_metrics)
            results[e["name"]] = r
            cells += r.cells
        forwards = loop.forwards
    seconds = time.perf_counter() - t0
    if a.time:
        print(f"seconds={seconds:.3f} cells={cells} forwards={forwards} "
              f"threads={torch.get_num_threads()} openblas_threads={os.environ.get('OPENBLAS_NUM_THREADS')}")
    if a.compare:
        import h5py
        worst, bad = 0.0, 0
        with h5py.File(a.compare, "r") as f:
            for name, r in results.items():
                for metric, ref in r.values.items():
                    got = f[f"experiments/{name}/{metric}"][...].astype(np.float64)
                    nan_mismatch = int((np.isnan(got) != np.isnan(ref)).sum())
                    both = ~np.isnan(got) & ~np.isnan(ref)
                    d = float(np.abs(got[both] - ref[both]).max()) if both.any() else 0.0
                    worst = max(worst, d)
                    bad += nan_mismatch > 0 or not d <= a.tol
                    print(f"{name:28s} {metric:16s} max|diff| {d:.3g}"
                          + (f"  NaN MISMATCH in {nan_mismatch} cells" if nan_mismatch else "")
                          + ("  > tol" if not d <= a.tol else ""))
        print(f"overall max|diff| {worst:.3g}")
        if bad:
            print(f"MISMATCH: {bad} experiment/metric arrays differ from the reference by more than "
                  f"{a.tol:g} or in their NaN cells")
            return 1
    return 0


def run_batched_pairs(model, pairs, exp, metrics):
    """TL's notebook loop: one forward per cell over the batch of all pairs (equal lengths),
    source `other` only. Returns (Result-like values, cells, forwards)."""
    if len({len(p.clean) for p in pairs}) != 1:
        raise SystemExit("--batch-pairs needs pairs of equal length")
    if exp.get("source", "other") != "other":
        raise SystemExit("--batch-pairs supports source: other only")
    kind = exp["patch"]
    head_kind = kind in HEAD_KINDS
    by = tuple(exp.get("by") or (("layer", "head") if head_kind else ("layer", "pos")))
    per_pos = "pos" in by
    denoising = exp.get("direction", "denoising") == "denoising"
    runs = [[p.clean for p in pairs], [p.corrupted for p in pairs]]
    base_tokens, src_tokens = (runs[1], runs[0]) if denoising else (runs[0], runs[1])
    with torch.no_grad():
        clean_logits, _ = model.run_with_cache(runs[0], names_filter=lambda n: False)
        corr_logits, _ = model.run_with_cache(runs[1], names_filter=lambda n: False)
        _, src_cache = model.run_with_cache(src_tokens, names_filter=lambda n: n.endswith(HOOK[kind]))
    lds = [((float(clean_logits[i, -1, p.answer] - clean_logits[i, -1, p.wrong]),
             float(corr_logits[i, -1, p.answer] - corr_logits[i, -1, p.wrong])),
            torch.log_softmax(clean_logits[i, -1].double(), -1)) for i, p in enumerate(pairs)]
    layers = _selection(exp.get("layers"), model.n_layers, "layer")
    heads = _selection(exp.get("heads"), model.n_heads, "head") if head_kind else None
    pos_axis = list(range(len(pairs[0].clean))) if per_pos else None
    shape = [len(pairs), len(layers)] + ([len(pos_axis)] if per_pos else []) + ([len(heads)] if head_kind else [])
    out = {m: np.full(shape, np.nan) for m in metrics}
    cells = 0
    for li, layer in enumerate(layers):
        name = f"blocks.{layer}.{HOOK[kind]}"
        for pi, pos in enumerate(pos_axis if per_pos else [None]):
            for hi, head in enumerate(heads if head_kind else [None]):
                def patch(act, hook):
                    act = act.clone()
                    _set_slice(kind, per_pos, act, src_cache[name], pos, head)
                    return act
                with torch.no_grad():
                    logits = model.run_with_hooks(base_tokens, fwd_hooks=[(name, patch)])
                idx = (li,) + ((pi,) if per_pos else ()) + ((hi,) if head_kind else ())
                for i, p in enumerate(pairs):
                    vals = _metrics(logits[i, -1], p, *lds[i])
                    for m in metrics:
                        out[m][(i,) + idx] = vals[m]
                cells += len(pairs)
    return Result(out, layers, heads, pos_axis), cells, 3 + cells // len(pairs)


if __name__ == "__main__":
    sys.exit(main())
