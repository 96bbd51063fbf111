"""Every example under configs/ runs as shipped (configs/ioi_gpt2.yaml needs the user's GPT-2
directory: it runs here on a random model with GPT-2's shape of vocabulary and the real
GPT-2 tokenizer, which checks everything but the weights)."""
import glob
import os
import subprocess

import h5py
import numpy as np
import pytest

from shared_data import ROOT, shared_gpt2

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
NEEDS_USER_MODEL = {"ioi_gpt2.yaml"}
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1")


def test_there_are_configs():
    names = {os.path.basename(c) for c in CONFIGS}
    assert {"demo.yaml", "ioi_gpt2.yaml"} <= names, names


@pytest.mark.parametrize("config", CONFIGS, ids=os.path.basename)
def test_config_runs(patchgrid_bin, model_factory, config, tmp_path):
    out = tmp_path / "out.h5"
    args = [patchgrid_bin, "run", config, "-o", str(out)]
    if os.path.basename(config) in NEEDS_USER_MODEL:
        model = model_factory("gpt2vocab", dict(layers=2, heads=4, d_model=32, vocab=50257,
                                                n_ctx=64, seed=21, tokenizer=shared_gpt2()))
        args += ["--model", model]
    proc = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        assert f["status"][0] == b"complete"
        for name in f["experiments"]:
            g = f["experiments"][name]
            assert g["done"][...].all(), name
            for metric in g:
                if metric in ("done",) or g[metric].ndim < 2 or "CLASS" in g[metric].attrs:
                    continue
                assert np.isfinite(g[metric][...]).any(), (name, metric)


def test_ioi_prompts_are_15_tokens(patchgrid_bin, model_factory, tmp_path):
    model = model_factory("gpt2vocab", dict(layers=2, heads=4, d_model=32, vocab=50257,
                                            n_ctx=64, seed=21, tokenizer=shared_gpt2()))
    out = tmp_path / "ioi.h5"
    config = os.path.join(ROOT, "configs", "ioi_gpt2.yaml")
    proc = subprocess.run([patchgrid_bin, "run", config, "--model", model, "-o", str(out)],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        assert list(f["pairs/length"][...]) == [15] * 8
        assert (f["pairs/clean_tokens"][:, 0] == 50256).all()      # BOS, as TL prepends
        s2 = f["pairs/positions/S2"][...]
        clean, corrupted = f["pairs/clean_tokens"][...], f["pairs/corrupted_tokens"][...]
        differ = clean != corrupted
        assert (differ.sum(1) == 1).all() and (differ[np.arange(8), s2]).all()
        assert sorted(f["experiments"]) == ["block_attn_out", "block_mlp_out",
                                            "block_resid_pre", "heads", "heads_by_pos",
                                            "patterns"]
