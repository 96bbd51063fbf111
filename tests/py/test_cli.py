"""The command line: help texts, info, cache --prompt, usage errors."""
import os
import subprocess

import h5py
import numpy as np
import pytest

from shared_data import shared_gpt2

@pytest.fixture(scope="module")
def gpt2_vocab_model(model_factory):
    return model_factory("gpt2vocab", dict(layers=2, heads=4, d_model=32, vocab=50257, n_ctx=64,
                                           seed=21, tokenizer=shared_gpt2()))


def pg(patchgrid_bin, *args, **kw):
    return subprocess.run([patchgrid_bin, *args], capture_output=True, text=True, **kw)


@pytest.mark.parametrize("cmd", ["info", "cache", "tokenize", "run", "report", "merge"])
def test_help(patchgrid_bin, cmd):
    proc = pg(patchgrid_bin, cmd, "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: patchgrid " + cmd), proc.stdout


def test_top_level(patchgrid_bin):
    proc = pg(patchgrid_bin, "--help")
    assert proc.returncode == 0
    for cmd in ("info", "cache", "tokenize", "run", "report", "merge"):
        assert f"  {cmd} " in proc.stdout
    proc = pg(patchgrid_bin, "frobnicate")
    assert proc.returncode == 2 and "unknown command 'frobnicate'" in proc.stderr
    assert pg(patchgrid_bin, "--version").stdout.startswith("patchgrid ")


def test_usage_errors(patchgrid_bin, tmp_path):
    for args in (["cache"], ["cache", "x", "--tokens"], ["run"], ["info"], ["info", "a", "b"]):
        proc = pg(patchgrid_bin, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_info(patchgrid_bin, gpt2_vocab_model):
    proc = pg(patchgrid_bin, "info", gpt2_vocab_model)
    assert proc.returncode == 0, proc.stderr
    fields = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line[:1] != " ")
    assert fields["family"] == "gpt2" and fields["layers"] == "2" and fields["vocab"] == "50257"
    C, V, P, L = 32, 50257, 64, 2
    params = V * C + P * C + L * (12 * C * C + 13 * C) + 2 * C
    assert fields["parameters"] == str(params)
    import hashlib
    with open(os.path.join(gpt2_vocab_model, "model.safetensors"), "rb") as f:
        assert fields["sha256"] == hashlib.sha256(f.read()).hexdigest()


def test_cache_prompt_matches_tokenize(patchgrid_bin, gpt2_vocab_model, tmp_path):
    text = "When Mary and John went to the store, John gave a drink to"
    ids = pg(patchgrid_bin, "tokenize", gpt2_vocab_model, text).stdout.split()
    out = tmp_path / "c.h5"
    proc = pg(patchgrid_bin, "cache", gpt2_vocab_model, "--prompt", text, "--hooks", "none",
              "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        tokens = f["tokens"][0]
        assert list(tokens) == [50256] + [int(i) for i in ids]   # BOS first, as TL does
        assert f["logits"].shape == (1, len(ids) + 1, 50257)
        assert "activations" not in f or len(f["activations"]) == 0
    proc = pg(patchgrid_bin, "cache", gpt2_vocab_model, "--prompt", text, "--no-bos", "-o",
              str(out), "--hooks", "hook_embed")
    with h5py.File(out, "r") as f:
        assert list(f["tokens"][0]) == [int(i) for i in ids]
        assert list(f["activations"]) == ["hook_embed"]
    # Prompts of different lengths are refused with one line, and no file is written.
    out2 = tmp_path / "d.h5"
    proc = pg(patchgrid_bin, "cache", gpt2_vocab_model, "--prompt", "a b", "--prompt", "a",
              "-o", str(out2))
    assert proc.returncode == 1 and "equal length" in proc.stderr and not out2.exists()


def test_cache_bad_token(patchgrid_bin, gpt2_vocab_model, tmp_path):
    out = tmp_path / "x.h5"
    proc = pg(patchgrid_bin, "cache", gpt2_vocab_model, "--tokens", "1 2 99999", "-o", str(out))
    assert proc.returncode == 1
    assert "99999" in proc.stderr and "vocabulary" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()
