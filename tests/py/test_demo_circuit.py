"""The bundled demo model (models/demo) and its sweep (configs/demo.yaml) find the induction circuit.

The heads are identified here from attention patterns alone, with the independent PyTorch
reference (gpt2_ref.py, hook_pattern): the previous-token head is the layer-0 head that attends
most to the position before; the induction head is the layer-1 head that, at the last token of
the demo's clean prompts, attends most to B1, the token after the earlier occurrence of that
token. Then `patchgrid run configs/demo.yaml` must single out the same heads:

- z patching (denoising, all positions): the induction head is the top head of layer 1 and the
  previous-token head the top head of layer 0, each restoring most of the clean logit
  difference and far more than any other head of its layer;
- k patching: the induction head's keys carry the effect (K-composition), its queries do not;
- z by position: the previous-token head matters at B1/D1, the induction head at END;
- the residual stream: the information sits at the swapped words A1/C1 before layer 0, at the
  words after them (B1/D1) before layer 1, and at the last position after layer 1.

Also: the baselines agree with gpt2_ref's logits; the committed files are the ones whose sha256
models/demo/README.md lists (written by tools/train_demo.py); the tokenizer makes every word of
the prompts one token; the model stays small. Retraining from scratch and comparing bytes takes
minutes: set PATCHGRID_TRAIN_DEMO=1 to run that test too.
"""
import hashlib
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import yaml

from gpt2_ref import GPT2Ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "demo")
CONFIG = os.path.join(ROOT, "configs", "demo.yaml")
TRAIN = os.path.join(ROOT, "tools", "train_demo.py")
MODEL_FILES = ["config.json", "model.safetensors", "vocab.json", "merges.txt"]
NAMED = ["A1", "B1", "C1", "D1", "END"]


def decode(x):
    return x.decode() if isinstance(x, bytes) else x


@pytest.fixture(scope="module")
def demo_config():
    with open(CONFIG) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def sweep(patchgrid_bin, tmp_path_factory):
    """Runs configs/demo.yaml as shipped (one rank) into a temporary file; returns its results:
    per experiment the logit_diff_norm array, plus the tokens, baselines and named positions."""
    out = str(tmp_path_factory.mktemp("demo") / "demo.h5")
    cmd = [patchgrid_bin, "run", CONFIG, "-o", out, "--overwrite"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    res = {"exp": {}, "pos": {}}
    with h5py.File(out, "r") as f:
        # the run state: a string dataset /status (an attribute in older files)
        status = f["status"][0]
        assert decode(status).rstrip("\0") == "complete", f"{out}: status {status!r}"
        res["clean"] = f["pairs/clean_tokens"][...]
        res["corrupted"] = f["pairs/corrupted_tokens"][...]
        res["length"] = f["pairs/length"][...]
        res["answer"] = f["pairs/answer"][...]
        res["wrong"] = f["pairs/wrong"][...]
        res["baseline"] = f["baseline/logit_diff"][...]
        for name, g in f["experiments"].items():
            res["exp"][name] = g["logit_diff_norm"][...].astype(np.float64)
            if "pos" in g:
                res["pos"][name] = [decode(p) for p in g["pos"][...]]
    return res


@pytest.fixture(scope="module")
def ref():
    return GPT2Ref(MODEL)


@pytest.fixture(scope="module")
def positions(demo_config):
    """The named positions (one layout for every pair), as indices from the start."""
    pos = [p["positions"] for p in demo_config["dataset"]["pairs"]]
    assert all(p == pos[0] for p in pos), "the demo's pairs share one layout"
    length = len(demo_config["dataset"]["pairs"][0]["clean"].split()) + 1  # + BOS
    return {k: v % length for k, v in pos[0].items()}


@pytest.fixture(scope="module")
def circuit(ref, sweep, positions):
    """(previous-token head, induction head, scores) from attention patterns only."""
    clean = torch.from_numpy(sweep["clean"].astype(np.int64))
    assert (sweep["length"] == clean.shape[1]).all()
    # TL's induction test: BOS + random tokens + the same again (words of the demo's prompts)
    words = np.unique(sweep["clean"][:, 1:])
    rng = np.random.default_rng(0)
    first = np.stack([rng.choice(words, size=20, replace=False) for _ in range(64)])
    bos = int(sweep["clean"][0, 0])
    rep = torch.from_numpy(np.concatenate([np.full((64, 1), bos), first, first], axis=1))
    pattern = lambda name: name.endswith("hook_pattern")  # noqa: E731
    with torch.no_grad():
        _, cache_clean = ref.run_with_cache(clean, names_filter=pattern)
        _, cache_rep = ref.run_with_cache(rep, names_filter=pattern)
    last = ref.n_layers - 1
    q = torch.arange(1, rep.shape[1])
    prev_score = cache_rep["blocks.0.attn.hook_pattern"][:, :, q, q - 1].mean((0, 2)).numpy()
    to_b1 = cache_clean[f"blocks.{last}.attn.hook_pattern"][:, :, -1, positions["B1"]].mean(0).numpy()
    q = torch.arange(21, rep.shape[1])
    ind_score = cache_rep[f"blocks.{last}.attn.hook_pattern"][:, :, q, q - 19].mean((0, 2)).numpy()
    return int(prev_score.argmax()), int(to_b1.argmax()), dict(prev=prev_score, to_b1=to_b1, induction=ind_score)


def second(x):
    return np.sort(x)[-2]


# ---- the heads, from attention ------------------------------------------------------------

def test_attention_shows_a_previous_token_and_an_induction_head(circuit):
    prev_head, ind_head, s = circuit
    assert s["prev"][prev_head] > 0.6, f"layer-0 previous-token scores {s['prev']}"
    assert s["prev"][prev_head] > 2 * second(s["prev"]), f"layer-0 previous-token scores {s['prev']}"
    # (another layer-1 head attends the same way but writes almost nothing: patching tells)
    assert s["to_b1"][ind_head] > 0.5, f"last-layer attention END -> B1 {s['to_b1']}"
    # the same head is the induction head of TL's repeated-random-tokens test
    assert int(s["induction"].argmax()) == ind_head, f"induction scores {s['induction']}"
    assert s["induction"][ind_head] > 0.5, f"induction scores {s['induction']}"


# ---- the baselines --------------------------------------------------------------------

def test_model_does_the_task_on_every_pair(sweep, ref):
    base = sweep["baseline"]  # [pair, run]: clean, corrupted
    assert (base[:, 0] > 1).all(), f"clean logit differences {base[:, 0]}"
    assert (base[:, 1] < -1).all(), f"corrupted logit differences {base[:, 1]}"
    pairs = np.arange(len(base))
    for run, tokens in enumerate((sweep["clean"], sweep["corrupted"])):
        with torch.no_grad():
            logits = ref.forward(torch.from_numpy(tokens.astype(np.int64)))[:, -1].numpy()
        ld = logits[pairs, sweep["answer"]] - logits[pairs, sweep["wrong"]]
        np.testing.assert_allclose(base[:, run], ld, atol=1e-3, rtol=1e-4)


# ---- what patching finds ----------------------------------------------------------------

def test_z_patching_singles_out_the_induction_head(sweep, circuit):
    prev_head, ind_head, _ = circuit
    z = sweep["exp"]["heads_z"].mean(0)  # [layer, head]
    last = z[-1]
    assert int(last.argmax()) == ind_head, f"layer-1 z patching {last}"
    assert last[ind_head] > 0.7, f"layer-1 z patching {last}"
    assert last[ind_head] - second(last) > 0.5, f"layer-1 z patching {last}"


def test_z_patching_singles_out_the_previous_token_head(sweep, circuit):
    prev_head, ind_head, _ = circuit
    z = sweep["exp"]["heads_z"].mean(0)
    first = z[0]
    assert int(np.abs(first).argmax()) == prev_head, f"layer-0 z patching {first}"
    assert first[prev_head] > 0.5, f"layer-0 z patching {first}"
    assert first[prev_head] - np.sort(np.abs(first))[-2] > 0.3, f"layer-0 z patching {first}"


def test_the_induction_heads_keys_carry_the_effect(sweep, circuit):
    """K-composition: the clean keys of the induction head restore it, the clean queries do not."""
    _, ind_head, _ = circuit
    k = sweep["exp"]["heads_k"].mean(0)[-1]
    q = sweep["exp"]["heads_q"].mean(0)[-1]
    assert int(k.argmax()) == ind_head and k[ind_head] > 0.5, f"layer-1 k patching {k}"
    assert abs(q[ind_head]) < 0.1, f"layer-1 q patching {q}"


def test_z_by_position_places_the_heads(sweep, circuit, positions):
    prev_head, ind_head, _ = circuit
    z = sweep["exp"]["z_by_pos"].mean(0)  # [layer, pos, head]
    pos = [int(p) for p in sweep["pos"]["z_by_pos"]]
    at = {name: pos.index(positions[name]) for name in NAMED}
    prev = z[0, :, prev_head]
    assert prev[at["B1"]] + prev[at["D1"]] > 0.5, f"head 0.{prev_head} by position {prev}"
    others = np.delete(prev, [at["B1"], at["D1"]])
    assert np.abs(others).max() < 0.1, f"head 0.{prev_head} by position {prev}"
    ind = z[-1, :, ind_head]
    assert ind[at["END"]] > 0.7, f"head 1.{ind_head} by position {ind}"
    assert np.abs(np.delete(ind, at["END"])).max() < 0.1, f"head 1.{ind_head} by position {ind}"


def test_residual_stream_moves_the_information_to_the_end(sweep, positions):
    pre = sweep["exp"]["resid_pre"].mean(0)    # [layer, pos]
    post = sweep["exp"]["resid_post"].mean(0)
    pos = [int(p) for p in sweep["pos"]["resid_pre"]]
    at = {name: pos.index(positions[name]) for name in NAMED}

    def only(row, names, total, what):
        idx = [at[n] for n in names]
        assert row[idx].sum() > total, f"{what}: {row}"
        assert all(row[i] > 0.2 for i in idx), f"{what}: {row}"
        assert np.abs(np.delete(row, idx)).max() < 0.1, f"{what}: {row}"

    # before layer 0, only the swapped words differ: patching either restores about half
    only(pre[0], ["A1", "C1"], 0.8, "resid_pre layer 0")
    # before layer 1, the previous-token head has copied them into the next positions
    only(pre[1], ["B1", "D1"], 0.7, "resid_pre layer 1")
    # after the last layer, the induction head has brought the answer to the end
    only(post[-1], ["END"], 0.9, "resid_post last layer")


# ---- the committed files ------------------------------------------------------------------

def test_committed_files_are_the_documented_ones():
    with open(os.path.join(MODEL, "README.md")) as f:
        readme = f.read()
    listed = dict(re.findall(r"^\| `([\w.]+)` \| `([0-9a-f]{64})` \|$", readme, re.M))
    assert sorted(listed) == sorted(MODEL_FILES), f"README.md lists {sorted(listed)}"
    total = 0
    for name in MODEL_FILES:
        path = os.path.join(MODEL, name)
        with open(path, "rb") as f:
            data = f.read()
        total += len(data)
        assert hashlib.sha256(data).hexdigest() == listed[name], \
            f"{path} is not the file README.md documents: rerun tools/train_demo.py"
    assert total < 2_000_000, f"models/demo is {total} bytes"
    assert sorted(os.listdir(MODEL)) == sorted(MODEL_FILES + ["README.md"])


def test_prompts_are_one_token_per_word(patchgrid_bin, demo_config):
    with open(os.path.join(MODEL, "vocab.json"), encoding="utf-8") as f:
        vocab = yaml.safe_load(f)  # JSON is YAML
    texts = []
    for p in demo_config["dataset"]["pairs"]:
        texts += [p["clean"], p["corrupted"], p["answer"], p["wrong"]]
    proc = subprocess.run([patchgrid_bin, "tokenize", MODEL], input="\n".join(texts) + "\n",
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(texts)
    for text, line in zip(texts, lines):
        ids = [int(x) for x in line.split()]
        assert ids == [vocab["\u0120" + w] for w in text.split()], f"{text!r} -> {ids}"
        assert text.startswith(" ") and "  " not in text


@pytest.mark.skipif(os.environ.get("PATCHGRID_TRAIN_DEMO") != "1",
                    reason="retrains the demo model (minutes); set PATCHGRID_TRAIN_DEMO=1")
def test_training_reproduces_the_committed_files(tmp_path):
    proc = subprocess.run([sys.executable, TRAIN, str(tmp_path)], capture_output=True, text=True,
                          timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in MODEL_FILES + ["README.md"]:
        with open(tmp_path / name, "rb") as a, open(os.path.join(MODEL, name), "rb") as b:
            assert a.read() == b.read(), f"{name} differs from the committed one"
