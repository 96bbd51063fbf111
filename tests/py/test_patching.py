"""patchgrid's patch engines against the independent TransformerLens-style loop (tl_patching.py).

Every patch kind (resid_pre|resid_mid|resid_post|attn_out|mlp_out over (layer, pos);
z|q|k|v|pattern over (layer, head) at all positions and over (layer, pos, head)), both
directions, every source (other, zero, mean, resample), every metric, layer/head/position
subsets, named positions and the block_every/head_every groups, on random GPT-2 models:
`patchgrid run` (fast engine), `patchgrid run --naive` and the PyTorch loop must agree to
1e-4 in every cell of every pair, with NaN (position the pair does not have) in the same
cells; baselines too. One config per suite holds many experiments, so a few runs cover all.

Pairs are token ids: clean and corrupted share a prefix and differ at a few positions (so
many cells are exact no-ops), of different lengths where the source allows (`mean` needs
equal lengths; `resample` needs another pair of the same length). Answer and wrong tokens
are chosen to make the clean-corrupted logit difference large, so that logit_diff_norm is
well conditioned.

Also: the reference against itself (identity patches change nothing, known patches
reproduce the clean run, stacked cells equal single ones), and the fast engine's exact
no-op skipping (values bitwise equal to the base run's, and the count it reports).
"""
import re
import subprocess

import h5py
import numpy as np
import pytest
import torch
import yaml

from gpt2_ref import GPT2Ref
from tl_patching import (CLEAN, CORRUPTED, GROUPS, HEAD_KINDS, METRICS, RESID_KINDS, Pair,
                         PatchingLoop, expand_experiments)

TOL = 1e-4
ALL_KINDS = RESID_KINDS + HEAD_KINDS
DIRS = ("denoising", "noising")
LD_ONLY = ["logit_diff", "logit_diff_norm"]  # the fast engine's answer/wrong-columns-only path

# Model shapes. "b30": d_model 30 (d_head 10, not a multiple of 8), exact gelu, untied, n_inner 100.
SHAPES = {
    "pt48": dict(layers=3, heads=4, d_model=48, vocab=300, n_ctx=32, seed=11),
    "pt30": dict(layers=2, heads=3, d_model=30, d_mlp=100, vocab=257, n_ctx=16, seed=12,
                 act="gelu", untied=True),
}


# ---- the suites: a model, pairs, experiments ------------------------------------------

def grid(kinds, dirs, sources, metrics=None, tag=""):
    """Experiments for every kind x direction x source; head kinds both all-pos and per-pos."""
    out = []
    for d in dirs:
        for s in sources:
            for k in kinds:
                forms = [("layer", "head"), ("layer", "pos", "head")] if k in HEAD_KINDS else [("layer", "pos")]
                for by in forms:
                    e = {"name": f"{k}{'_pp' if len(by) == 3 else ''}-{d[:2]}-{s}{tag}", "patch": k,
                         "by": list(by), "direction": d, "source": s}
                    if metrics:
                        e["metrics"] = metrics
                    out.append(e)
    return out


SUBSETS = [  # layer/head/position subsets, named positions, the every groups
    {"name": "sub_mid", "patch": "resid_mid", "layers": [0, 2], "positions": [1, "IO", "END", -2, 8]},
    {"name": "sub_post", "patch": "resid_post", "layers": {"from": 1, "to": 2}, "positions": ["S", 0, -1],
     "direction": "noising", "source": "resample"},
    {"name": "sub_z", "patch": "z", "by": ["layer", "pos", "head"], "layers": {"from": 1, "to": 2},
     "heads": [1, 3], "positions": ["IO", -1, 0], "direction": "noising"},
    {"name": "sub_pat", "patch": "pattern", "by": ["layer", "head"], "heads": {"from": 2, "to": 3},
     "layers": [1], "source": "resample"},
    {"name": "sub_k", "patch": "k", "by": ["layer", "pos", "head"], "heads": [0], "positions": ["S", "IO"],
     "source": "zero", "metrics": ["kl", "prob"]},
    {"name": "blk", "patch": "block_every"},
    {"name": "blk_n", "patch": "block_every", "direction": "noising", "source": "zero", "layers": [2],
     "positions": [-1, "S"]},
    {"name": "hd", "patch": "head_every", "heads": [0, 2]},
    {"name": "hdp", "patch": "head_every", "by": ["layer", "pos", "head"], "positions": ["IO", "END"],
     "metrics": ["logit_diff"], "direction": "noising"},
]

# name -> (model shape, pair spec [(length, diff positions)], experiments)
SUITES = {
    # pairs of different lengths: sources other, zero, resample
    "mixed": ("pt48", [(9, [3]), (7, [2, 4]), (9, [2, 6]), (7, [6]), (9, [8])],
              grid(ALL_KINDS, DIRS, ["other", "zero", "resample"])
              + grid(ALL_KINDS, DIRS, ["other"], metrics=LD_ONLY, tag="-ld")
              + SUBSETS),
    # equal lengths: source mean
    "mean": ("pt48", [(8, [3]), (8, [2, 5]), (8, [4]), (8, [1, 7])],
             grid(ALL_KINDS, DIRS, ["mean"])
             + grid(["resid_pre", "z", "pattern"], DIRS, ["mean"], metrics=LD_ONLY, tag="-ld")),
    # d_model 30: everything, as groups
    "odd": ("pt30", [(7, [3]), (7, [2, 5]), (7, [4]), (7, [6])],
            [dict(e, name=f"{e['name']}-{d[:2]}-{s}", direction=d, source=s)
             for d in DIRS for s in ("other", "zero", "mean", "resample")
             for e in ({"name": "blk", "patch": "block_every"},
                       {"name": "mid", "patch": "resid_mid"},
                       {"name": "post", "patch": "resid_post"},
                       {"name": "hd", "patch": "head_every"},
                       {"name": "hdp", "patch": "head_every", "by": ["layer", "pos", "head"]})]),
}


def expected_names(suite):
    return [e["name"] for e in expand_experiments(SUITES[suite][2])]


def make_pairs(model, spec, seed):
    """Pairs of token ids per spec [(length, diff positions)]: corrupted = clean with other
    tokens at the diff positions; named positions IO (first diff), S (1), END (-1); answer
    and wrong maximise and minimise clean-minus-corrupted last-position logits."""
    rng = np.random.default_rng(seed)
    pairs = []
    for n, diffs in spec:
        clean = rng.integers(1, model.d_vocab, n)
        corrupted = clean.copy()
        for d in diffs:
            while corrupted[d] == clean[d]:
                corrupted[d] = rng.integers(1, model.d_vocab)
        with torch.no_grad():
            lc = model.forward_functional(clean.tolist())[0, -1].double()
            lx = model.forward_functional(corrupted.tolist())[0, -1].double()
        delta = lc - lx
        pairs.append(Pair(clean.tolist(), corrupted.tolist(), int(delta.argmax()), int(delta.argmin()),
                          {"IO": diffs[0], "S": 1, "END": -1}))
    return pairs


def write_config(path, model_dir, pairs, experiments, seed=7):
    cfg = {"model": model_dir, "seed": seed, "metrics": list(METRICS),
           "dataset": {"pairs": [{"clean_tokens": p.clean, "corrupted_tokens": p.corrupted,
                                  "answer_token": p.answer, "wrong_token": p.wrong,
                                  "positions": p.positions} for p in pairs]},
           "experiments": experiments}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, default_flow_style=None, width=120)


SUMMARY = re.compile(r"(\d+) cells computed, (\d+) exact no-ops skipped")


def run_patchgrid(binary, config, out, naive=False):
    """Runs a sweep; returns (cells computed, no-ops skipped) from the summary line."""
    cmd = [binary, "run", config, "-o", out, "--overwrite"] + (["--naive"] if naive else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    m = SUMMARY.search(proc.stderr)
    if m is None:
        pytest.fail(f"{' '.join(cmd)}: no summary line on stderr:\n{proc.stderr}")
    return int(m.group(1)), int(m.group(2))


def read_results(path, names):
    out = {"baseline": {}, "exp": {}, "attrs": {}, "scales": {}}
    with h5py.File(path, "r") as f:
        status = f["status"][0].decode()
        assert status == "complete", f"{path}: status {status!r}, expected 'complete'"
        for m in METRICS:
            out["baseline"][m] = f[f"baseline/{m}"][...].astype(np.float64)
        out["partner"] = f["pairs/resample_partner"][...] if "resample_partner" in f["pairs"] else None
        for name in names:
            g = f[f"experiments/{name}"]
            out["attrs"][name] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
            out["exp"][name] = {m: g[m][...].astype(np.float64) for m in METRICS if m in g}
            out["scales"][name] = {a: [x.decode() if isinstance(x, bytes) else str(x) for x in g[a][...]]
                                   for a in ("layer", "head", "pos") if a in g}
    return out


@pytest.fixture(scope="module")
def suite_data(patchgrid_bin, model_factory, tmp_path_factory):
    """suite name -> everything computed for it (lazily, once per module)."""
    cache = {}

    def get(suite):
        if suite not in cache:
            try:
                cache[suite] = compute(suite)
            except BaseException as e:  # noqa: B902 -- fail every test of the suite at once, not by recomputing
                cache[suite] = e
                raise
        if isinstance(cache[suite], BaseException):
            pytest.fail(f"suite {suite}: setting up failed (see the first failing test): {cache[suite]}")
        return cache[suite]

    def compute(suite):
        shape, spec, experiments = SUITES[suite]
        model_dir = model_factory(f"patching-{shape}", SHAPES[shape])
        model = GPT2Ref(model_dir)
        pairs = make_pairs(model, spec, seed=sum(map(ord, suite)))
        tmp = tmp_path_factory.mktemp(f"patching-{suite}")
        config = str(tmp / f"{suite}.yaml")
        write_config(config, model_dir, pairs, experiments)
        names = expected_names(suite)
        fast_counts = run_patchgrid(patchgrid_bin, config, str(tmp / "fast.h5"))
        naive_counts = run_patchgrid(patchgrid_bin, config, str(tmp / "naive.h5"), naive=True)
        fast = read_results(str(tmp / "fast.h5"), names)
        naive = read_results(str(tmp / "naive.h5"), names)
        loop = PatchingLoop(model, pairs, fast["partner"])
        ref = {"baseline": loop.baselines(), "exp": {}}
        default_metrics = list(METRICS)
        for e in expand_experiments(experiments):
            ref["exp"][e["name"]] = loop.run(e, e.get("metrics") or default_metrics, cells_per_forward=48)
        return dict(pairs=pairs, fast=fast, naive=naive, ref=ref, config=config,
                    experiments={e["name"]: e for e in expand_experiments(experiments)},
                    fast_counts=fast_counts, naive_counts=naive_counts, model=model)
    return get


# ---- comparison -----------------------------------------------------------------------

def cell_label(result, idx):
    """'pair 2, layer 1, pos IO(3), head 0' for index idx of a result array."""
    parts = [f"pair {idx[0]}", f"layer {result.layers[idx[1]]}"]
    k = 2
    if result.pos is not None:
        parts.append(f"pos {result.pos[idx[k]]}")
        k += 1
    if result.heads is not None:
        parts.append(f"head {result.heads[idx[k]]}")
    return ", ".join(parts)


def compare(label, arrays, ref_result=None, max_report=12):
    """arrays: {source name: array}, the first being the reference. Returns failure lines:
    shape differences, NaN in different cells, |diff| > TOL, each with the three values."""
    names = list(arrays)
    base = arrays[names[0]]
    for n in names[1:]:
        if arrays[n].shape != base.shape:
            return [f"{label}: shape {n} {arrays[n].shape} != {names[0]} {base.shape}"]
    bad = np.zeros(base.shape, dtype=bool)
    worst = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            x, y = arrays[a], arrays[b]
            nan_mismatch = np.isnan(x) != np.isnan(y)
            d = np.where(np.isnan(x) | np.isnan(y), 0.0, np.abs(x - y))
            worst[(a, b)] = float(d.max()) if d.size else 0.0
            bad |= nan_mismatch | (d > TOL) | ~(np.isfinite(x) | np.isnan(x)) | ~(np.isfinite(y) | np.isnan(y))
    if not bad.any():
        return []
    lines = [f"{label}: {int(bad.sum())} bad cells of {bad.size}; max |diff| "
             + ", ".join(f"{a}-{b} {v:.3g}" for (a, b), v in worst.items())]
    for idx in list(zip(*np.nonzero(bad)))[:max_report]:
        where = cell_label(ref_result, idx) if ref_result is not None else f"index {tuple(int(i) for i in idx)}"
        lines.append(f"    {where}: " + "  ".join(f"{n}={arrays[n][idx]:.7g}" for n in names))
    return lines


def max_diffs(arrays):
    names = list(arrays)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = ~np.isnan(arrays[a]) & ~np.isnan(arrays[b])
            out[f"{a}-{b}"] = float(np.abs(arrays[a] - arrays[b])[both].max()) if both.any() else 0.0
    return out


# ---- the reference against itself ---------------------------------------------------------

@pytest.fixture(scope="module")
def small(model_factory):
    model = GPT2Ref(model_factory("patching-pt48", SHAPES["pt48"]))
    return model, make_pairs(model, [(8, [3]), (8, [5]), (8, [2, 6])], seed=5)


def test_reference_baselines_match_functional_forward(small):
    model, pairs = small
    loop = PatchingLoop(model, pairs)
    base = loop.baselines()
    for i, p in enumerate(pairs):
        for run, toks in ((CLEAN, p.clean), (CORRUPTED, p.corrupted)):
            with torch.no_grad():
                row = model.forward_functional(toks)[0, -1].double()
            assert abs(base["logit_diff"][i, run] - float(row[p.answer] - row[p.wrong])) < 1e-5
        assert base["kl"][i, CLEAN] == 0.0
        assert base["logit_diff_norm"][i, CLEAN] == pytest.approx(1.0, abs=1e-12)
        assert base["logit_diff_norm"][i, CORRUPTED] == pytest.approx(0.0, abs=1e-12)


def test_reference_identity_patch_changes_nothing(small):
    """Patching a run with its own activations (clean == corrupted) gives the base run, exactly."""
    model, pairs = small
    same = [Pair(p.clean, p.clean, p.answer, p.wrong, p.positions) for p in pairs]
    loop = PatchingLoop(model, same)
    base = loop.baselines()
    for kind in ALL_KINDS:
        for by in ([["layer", "pos"]] if kind in RESID_KINDS else [["layer", "head"], ["layer", "pos", "head"]]):
            r = loop.run({"patch": kind, "by": by}, list(METRICS), cells_per_forward=16)
            for m in METRICS:
                want = base[m][:, CORRUPTED].reshape((-1,) + (1,) * (r.values[m].ndim - 1))
                assert np.array_equal(r.values[m], np.broadcast_to(want, r.values[m].shape), equal_nan=True), (kind, by, m)


def test_reference_known_patches(small):
    """Denoising resid_pre at layer 0 at the one differing position is the clean run;
    denoising resid_post of the last layer at the last position gives the clean logits;
    noising does the same towards the corrupted run; mean of one pair is `other`."""
    model, pairs = small
    loop = PatchingLoop(model, pairs)
    base = loop.baselines()
    last = model.n_layers - 1
    for direction, run in (("denoising", CLEAN), ("noising", CORRUPTED)):
        r = loop.run({"patch": "resid_pre", "layers": [0], "positions": ["IO"], "direction": direction},
                     list(METRICS))
        post = loop.run({"patch": "resid_post", "layers": [last], "positions": [-1], "direction": direction},
                        list(METRICS))
        for m in METRICS:
            for i in (0, 1):  # single-difference pairs
                assert abs(r.values[m][i, 0, 0] - base[m][i, run]) < 1e-5, (direction, m, i)
            np.testing.assert_allclose(post.values[m][:, 0, 0], base[m][:, run], atol=1e-5, rtol=0)
    for i in range(len(pairs)):
        one = PatchingLoop(model, [pairs[i]])
        for kind, by in (("z", ["layer", "pos", "head"]), ("attn_out", ["layer", "pos"])):
            a = one.run({"patch": kind, "by": by, "source": "mean"}, ["logit_diff"])
            b = one.run({"patch": kind, "by": by, "source": "other"}, ["logit_diff"])
            np.testing.assert_array_equal(a.values["logit_diff"], b.values["logit_diff"])


def test_reference_stacked_cells_equal_single(small):
    """cells_per_forward only stacks independent runs: same values as one forward per cell."""
    model, pairs = small
    loop = PatchingLoop(model, pairs, resample_partner=[1, 2, 0])
    for e in ({"patch": "pattern", "by": ["layer", "pos", "head"], "source": "resample", "layers": [1]},
              {"patch": "v", "by": ["layer", "head"], "direction": "noising"},
              {"patch": "mlp_out", "source": "zero", "layers": [0, 2]}):
        one = loop.run(e, list(METRICS), cells_per_forward=1)
        many = loop.run(e, list(METRICS), cells_per_forward=40)
        for m in METRICS:
            np.testing.assert_allclose(many.values[m], one.values[m], atol=2e-6, rtol=0)


# ---- patchgrid against the reference -----------------------------------------------------

def test_plan_covers_every_kind_direction_source():
    """The suites' experiments span the whole space the issue asks for."""
    seen = set()
    for suite in SUITES:
        for e in expand_experiments(SUITES[suite][2]):
            kind = e["patch"]
            per_pos = kind in RESID_KINDS or len(e.get("by") or ["layer", "head"]) == 3
            seen.add((kind, per_pos, e.get("direction", "denoising"), e.get("source", "other")))
    missing = [(k, pp, d, s) for k in ALL_KINDS for pp in ((True,) if k in RESID_KINDS else (False, True))
               for d in DIRS for s in ("other", "zero", "mean", "resample") if (k, pp, d, s) not in seen]
    assert not missing, missing
    assert {"block_every", "head_every"} <= {e["patch"] for s in SUITES.values() for e in s[2]}
    assert set(GROUPS) == {"block_every", "head_every"}


@pytest.mark.parametrize("suite", list(SUITES))
def test_baselines(suite, suite_data):
    d = suite_data(suite)
    failures = []
    for m in METRICS:
        failures += compare(f"{suite}: baseline/{m}", {"torch": d["ref"]["baseline"][m],
                                                       "fast": d["fast"]["baseline"][m],
                                                       "naive": d["naive"]["baseline"][m]})
    assert not failures, "\n".join(failures)
    # the normalised logit difference must be well conditioned for the 1e-4 comparison
    b = d["ref"]["baseline"]["logit_diff"]
    assert np.all(np.abs(b[:, CLEAN] - b[:, CORRUPTED]) > 0.3), b
    if any(e.get("source") == "resample" for e in d["experiments"].values()):
        partner = d["fast"]["partner"]
        assert partner is not None and np.array_equal(partner, d["naive"]["partner"])
        for i, j in enumerate(partner):
            assert j != i and len(d["pairs"][j].clean) == len(d["pairs"][i].clean), (i, j)


@pytest.mark.parametrize("suite,name", [(s, n) for s in SUITES for n in expected_names(s)])
def test_experiment(suite, name, suite_data):
    d = suite_data(suite)
    ref = d["ref"]["exp"][name]
    exp = d["experiments"][name]
    assert name in d["fast"]["exp"] and name in d["naive"]["exp"], f"{name} missing from the results"
    failures = []
    # what the file says it holds
    for which in ("fast", "naive"):
        attrs = d[which]["attrs"][name]
        for key, want in (("patch", exp["patch"]), ("direction", exp.get("direction", "denoising")),
                          ("source", exp.get("source", "other"))):
            if attrs.get(key) != want:
                failures.append(f"{which}: attribute {key} = {attrs.get(key)!r}, expected {want!r}")
        scales = d[which]["scales"][name]
        if scales.get("layer") != [str(x) for x in ref.layers]:
            failures.append(f"{which}: layer axis {scales.get('layer')} != {ref.layers}")
        if ref.heads is not None and scales.get("head") != [str(x) for x in ref.heads]:
            failures.append(f"{which}: head axis {scales.get('head')} != {ref.heads}")
        if ref.pos is not None and scales.get("pos") != [str(x) for x in ref.pos]:
            failures.append(f"{which}: pos axis {scales.get('pos')} != {ref.pos}")
        if set(d[which]["exp"][name]) != set(ref.values):
            failures.append(f"{which}: metrics {sorted(d[which]['exp'][name])} != {sorted(ref.values)}")
    for m, want in ref.values.items():
        if m not in d["fast"]["exp"][name] or m not in d["naive"]["exp"][name]:
            continue
        arrays = {"torch": want, "fast": d["fast"]["exp"][name][m], "naive": d["naive"]["exp"][name][m]}
        failures += compare(f"{suite}: experiment {name} ({exp['patch']}, {exp.get('direction', 'denoising')}, "
                            f"source {exp.get('source', 'other')}) metric {m}", arrays, ref)
        # a computed cell must be computed somewhere: the reference has a value in most cells
        assert np.isfinite(want).sum() > 0, f"{name}/{m}: the reference computed no cell"
    assert not failures, "\n".join(failures)


def test_report_max_diffs(suite_data, capsys):
    """Prints the largest differences per patch kind (informative; the tolerance is checked
    cell by cell in test_experiment)."""
    rows = {}
    for suite in SUITES:
        d = suite_data(suite)
        for name, ref in d["ref"]["exp"].items():
            kind = d["experiments"][name]["patch"]
            per_pos = "pos" in (d["experiments"][name].get("by") or ["layer", "pos"])
            key = kind + ("" if kind in RESID_KINDS else (" per-pos" if per_pos else " all-pos"))
            for m, want in ref.values.items():
                got = max_diffs({"torch": want, "fast": d["fast"]["exp"][name][m],
                                 "naive": d["naive"]["exp"][name][m]})
                for k, v in got.items():
                    rows.setdefault(key, {}).setdefault(k, 0.0)
                    rows[key][k] = max(rows[key][k], v)
    with capsys.disabled():
        print("\nmax |diff| per patch kind over all suites, experiments, metrics, pairs, cells:")
        for key in sorted(rows):
            print(f"  {key:18s} " + "  ".join(f"{k} {v:.2e}" for k, v in rows[key].items()))
    assert all(v <= TOL for r in rows.values() for v in r.values())


# ---- exact no-ops ---------------------------------------------------------------------------

def test_noop_cells_are_skipped_exactly(patchgrid_bin, model_factory, tmp_path):
    """resid_pre denoising from the pair's clean run: at positions before the first difference
    (every layer), and at layer 0 wherever the tokens agree (resid_pre of layer 0 is the token
    and position embedding), the clean activation equals the corrupted one, so the cell is a
    no-op: its values must be the corrupted baseline's, bit for bit, and the run must report
    exactly that many cells skipped."""
    model_dir = model_factory("patching-pt48", SHAPES["pt48"])
    model = GPT2Ref(model_dir)
    pairs = make_pairs(model, [(9, [4]), (7, [2, 5]), (9, [8])], seed=21)
    config = str(tmp_path / "noop.yaml")
    write_config(config, model_dir, pairs, [{"name": "rp", "patch": "resid_pre"}])
    out = str(tmp_path / "noop.h5")
    computed, skipped = run_patchgrid(patchgrid_bin, config, out)

    loop = PatchingLoop(model, pairs)
    expected_noops, total = 0, 0
    noop_cells = []
    for i, p in enumerate(pairs):
        first = next(t for t in range(len(p.clean)) if p.clean[t] != p.corrupted[t])
        for layer in range(model.n_layers):
            name = f"blocks.{layer}.hook_resid_pre"
            clean, corr = loop._run(i, CLEAN)[name][0], loop._run(i, CORRUPTED)[name][0]
            for pos in range(len(p.clean)):
                total += 1
                structural = pos < first or (layer == 0 and p.clean[pos] == p.corrupted[pos])
                # the reasoning above, checked on the reference's own activations
                assert structural == bool(torch.equal(clean[pos], corr[pos])), (i, layer, pos)
                if structural:
                    expected_noops += 1
                    noop_cells.append((i, layer, pos))
    with h5py.File(out, "r") as f:
        vals = {m: f[f"experiments/rp/{m}"][...] for m in METRICS if f"experiments/rp/{m}" in f}
        base = {m: f[f"baseline/{m}"][...] for m in METRICS}
    assert vals, "no metric datasets"
    wrong = [(m, c, vals[m][c], base[m][c[0], CORRUPTED]) for c in noop_cells for m in vals
             if not (vals[m][c] == base[m][c[0], CORRUPTED]
                     or (np.isnan(vals[m][c]) and np.isnan(base[m][c[0], CORRUPTED])))]
    assert not wrong, "no-op cells not bitwise equal to the corrupted baseline " \
                      "(metric, (pair, layer, pos), cell, baseline):\n" + "\n".join(map(str, wrong[:20]))
    assert skipped == expected_noops, f"summary reports {skipped} no-ops skipped, expected {expected_noops}"
    assert computed + skipped == total, f"{computed} computed + {skipped} skipped != {total} cells"
