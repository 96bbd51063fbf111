"""test_forward.py — `patchgrid cache` (logits and every TL hook) vs the PyTorch reference.

First the reference is checked against itself (these need no binary): einsum/hook forward vs
torch.nn.functional forward, float32 vs float64, identity and patching hooks, LayerNorm hook
semantics, and the safetensors loaders (F16, BF16, shards, prefixes) against each other.
Then `patchgrid cache` on every model of conftest.MODELS: same shapes, and for each tensor
max|c - ref| / max|ref| <= 1e-4 over finite entries, -inf (masked attn_scores) in the same places,
and mlp.hook_post = act(mlp.hook_pre) on patchgrid's own values to 1e-5 (which tells gelu from
gelu_new). float32 rounding alone gives about 1e-6 on these models (test_reference_float64_close).
"""
import fnmatch
import os
import shutil
import subprocess
import zlib

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpt2_ref import GPT2Ref, hook_names, read_hf_weights

TOLERANCE = 1e-4        # C vs reference, relative to the tensor's largest magnitude
REF_TOLERANCE = 1e-5    # reference vs itself (other summation order, float64)

HOOK_SHAPES = {  # TL's shape of a hook by the last part of its name; all others [b, p, d_model]
    "hook_scale": lambda b, p, m: (b, p, 1),
    "hook_q": lambda b, p, m: (b, p, m.n_heads, m.d_head),
    "hook_k": lambda b, p, m: (b, p, m.n_heads, m.d_head),
    "hook_v": lambda b, p, m: (b, p, m.n_heads, m.d_head),
    "hook_z": lambda b, p, m: (b, p, m.n_heads, m.d_head),
    "hook_attn_scores": lambda b, p, m: (b, m.n_heads, p, p),
    "hook_pattern": lambda b, p, m: (b, m.n_heads, p, p),
    "hook_pre": lambda b, p, m: (b, p, m.d_mlp),
    "hook_post": lambda b, p, m: (b, p, m.d_mlp),
}


def prompts(test_model):
    """Fixed random token ids [batch, n_tokens] for a model."""
    spec = test_model.spec
    rng = np.random.default_rng(zlib.crc32(test_model.name.encode()))
    return rng.integers(0, spec.options["vocab"], (spec.batch, spec.n_tokens))


def reference(model_dir, tokens, dtype=torch.float32):
    """(logits, {hook: activation}) as float64 numpy arrays."""
    with torch.no_grad():
        logits, cache = GPT2Ref(model_dir, dtype).run_with_cache(tokens)
    return logits.double().numpy(), {k: v.double().numpy() for k, v in cache.items()}


def compare(got, want, tolerance):
    """Compares {name: array} against {name: array}; returns (ok, table of per-tensor diffs)."""
    rows, ok = [], True
    for name in sorted(set(want) | set(got)):
        if name not in got or name not in want:
            rows.append(f"{name:36s} {'missing from output' if name not in got else 'not a TL hook'}")
            ok = False
            continue
        c, r = np.asarray(got[name], np.float64), want[name]
        if c.shape != r.shape:
            rows.append(f"{name:36s} shape {c.shape} != reference {r.shape}")
            ok = False
            continue
        bad = []
        if np.isnan(c).any():
            bad.append(f"{int(np.isnan(c).sum())} NaN")
        if not np.array_equal(np.isneginf(c), np.isneginf(r)) or np.isposinf(c).any():
            bad.append(f"-inf at {int(np.isneginf(c).sum())} places, reference {int(np.isneginf(r).sum())}")
        finite = np.isfinite(r) & np.isfinite(c)
        scale = np.abs(r[finite]).max() if finite.any() else 0.0
        diff = np.abs(c[finite] - r[finite]).max() if finite.any() else 0.0
        rel = diff / scale if scale > 0 else diff
        if rel > tolerance:
            bad.append(f"relative diff {rel:.2e} > {tolerance:.0e}")
        ok = ok and not bad
        rows.append(f"{name:36s} {str(c.shape):20s} max|ref| {scale:9.3e}  max|diff| {diff:9.3e}  "
                    f"rel {rel:9.3e}  {'; '.join(bad) if bad else 'ok'}")
    return ok, "\n".join(rows)


def check(got, want, tolerance, what):
    ok, table = compare(got, want, tolerance)
    if not ok:
        pytest.fail(f"{what}: mismatch\n{table}", pytrace=False)
    print(f"{what}\n{table}")  # shown with pytest -s


# ---- the reference against itself ----------------------------------------------------------

def test_reference_matches_functional(test_model):
    model, tokens = GPT2Ref(test_model.dir), prompts(test_model)
    with torch.no_grad():
        hooked, functional = model.forward(tokens), model.forward_functional(tokens)
    check({"logits": hooked.numpy()}, {"logits": functional.double().numpy()}, REF_TOLERANCE,
          f"{test_model.name}: TL-style einsum forward vs torch.nn.functional forward")


def test_reference_float64_close(test_model):
    """float32 rounding in the reference is at least 10x below the C tolerance, for every hook."""
    tokens = prompts(test_model)
    logits32, cache32 = reference(test_model.dir, tokens)
    logits64, cache64 = reference(test_model.dir, tokens, torch.float64)
    check(dict(cache32, logits=logits32), dict(cache64, logits=logits64), REF_TOLERANCE,
          f"{test_model.name}: float32 vs float64 reference")


def test_reference_hooks_shapes_and_semantics(model_factory):
    model = GPT2Ref(model_factory("tiny"))
    tokens = np.random.default_rng(0).integers(0, model.d_vocab, (2, 9))
    logits, cache = model.run_with_cache(tokens)
    assert list(cache) == hook_names(model.n_layers)  # every hook, once, in TL's order
    for names_filter in ("blocks.1.hook_resid_pre", ["blocks.1.hook_resid_pre"], lambda n: n.endswith("1.hook_resid_pre")):
        _, some = model.run_with_cache(tokens, names_filter=names_filter)
        assert list(some) == ["blocks.1.hook_resid_pre"]
    assert logits.shape == (2, 9, model.d_vocab)
    for name, x in cache.items():
        assert x.dtype == torch.float32
        shape = HOOK_SHAPES.get(name.rsplit(".", 1)[-1], lambda b, p, m: (b, p, m.d_model))
        assert tuple(x.shape) == shape(2, 9, model), name
    for l, w in enumerate(model.blocks):
        p = f"blocks.{l}."
        resid = cache[p + "hook_resid_pre"]
        ln = F.layer_norm(resid, (model.d_model,), w["ln1_w"], w["ln1_b"], model.eps)
        torch.testing.assert_close(cache[p + "ln1.hook_normalized"], ln, rtol=1e-5, atol=1e-5)
        scale = (resid.var(-1, unbiased=False, keepdim=True) + model.eps).sqrt()
        torch.testing.assert_close(cache[p + "ln1.hook_scale"], scale, rtol=1e-5, atol=1e-6)
        scores = cache[p + "attn.hook_attn_scores"]
        future = torch.ones(9, 9, dtype=torch.bool).triu(1)
        assert torch.isneginf(scores[..., future]).all() and torch.isfinite(scores[..., ~future]).all()
        torch.testing.assert_close(cache[p + "attn.hook_pattern"].sum(-1), torch.ones(2, model.n_heads, 9))
        torch.testing.assert_close(cache[p + "hook_resid_mid"], resid + cache[p + "hook_attn_out"])
        if l + 1 < model.n_layers:
            assert torch.equal(cache[p + "hook_resid_post"], cache[f"blocks.{l + 1}.hook_resid_pre"])


def test_reference_identity_hooks_change_nothing(model_factory):
    model = GPT2Ref(model_factory("tiny"))
    tokens = np.random.default_rng(1).integers(0, model.d_vocab, (3, 11))
    plain = model.forward(tokens)
    same = model.run_with_hooks(tokens, [("blocks.0.hook_resid_pre", lambda x, hook: x.clone())])
    assert torch.equal(plain, same)
    fired = []
    every = model.run_with_hooks(tokens, [(lambda name: True, lambda x, hook: fired.append(hook.name) or x.clone())])
    assert torch.equal(plain, every) and fired == hook_names(model.n_layers)


def test_reference_patch_hook_is_causal(model_factory):
    """TL-style activation patching: overwrite one (layer, pos) of resid_pre with another run's."""
    model = GPT2Ref(model_factory("tiny"))
    rng = np.random.default_rng(2)
    clean, corrupted = (rng.integers(0, model.d_vocab, (1, 11)) for _ in range(2))
    _, clean_cache = model.run_with_cache(clean)
    corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)
    pos, name = 5, "blocks.1.hook_resid_pre"

    def patch(x, hook):
        x = x.clone()
        x[:, pos] = clean_cache[hook.name][:, pos]
        return x
    patched_logits, patched_cache = model.run_with_cache(corrupted, fwd_hooks=[(name, patch)])
    assert torch.equal(patched_logits[:, :pos], corrupted_logits[:, :pos])      # earlier positions
    assert not torch.allclose(patched_logits[:, pos:], corrupted_logits[:, pos:])
    assert torch.equal(patched_cache["blocks.0.hook_resid_post"], corrupted_cache["blocks.0.hook_resid_post"])
    assert torch.equal(patched_cache[name][:, pos], clean_cache[name][:, pos])  # the cache sees the patch


def test_reference_loaders_agree(model_factory, model_specs):
    """F16/BF16/sharded/prefixed/old-buffer files of one model give its weights (rounded)."""
    rounding = {"f16": torch.float16, "bf16": torch.bfloat16}
    checked = 0
    for name, spec in model_specs.items():
        if not spec.same_weights_as:
            continue
        base = read_hf_weights(model_factory(spec.same_weights_as))
        variant = read_hf_weights(model_factory(name))
        dtype = rounding.get(spec.options.get("dtype"), torch.float32)
        for key, x in base.items():
            want = torch.from_numpy(x).to(dtype).float()
            assert torch.equal(torch.from_numpy(variant[key]), want), f"{name}: {key}"
        extra = set(variant) - set(base)
        expected = {"lm_head.weight"} if spec.options.get("untied") else set()
        if spec.options.get("old_buffers"):
            expected |= {f"h.{l}.attn.{b}" for l in range(spec.options["layers"]) for b in ("bias", "masked_bias")}
        assert extra == expected, name
        checked += 1
    assert checked >= 4


# ---- patchgrid cache against the reference -------------------------------------------------

def run_cache(patchgrid_bin, model_dir, tokens, out, *extra):
    args = [patchgrid_bin, "cache", model_dir]
    for row in tokens:
        args += ["--tokens", " ".join(str(int(t)) for t in row)]
    args += ["-o", str(out), *extra]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def read_cache(path):
    """(tokens, logits, {hook: activation}) of a `patchgrid cache` file, dtypes checked."""
    with h5py.File(path, "r") as f:
        assert f["tokens"].dtype == np.int32 and f["logits"].dtype == np.float32
        activations = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                assert obj.dtype == np.float32, f"/activations/{name}: {obj.dtype}"
                activations[name] = obj[...]
        f["activations"].visititems(visit)
        return f["tokens"][...], f["logits"][...], activations


def run_and_read(patchgrid_bin, model_dir, tokens, out, *extra):
    proc = run_cache(patchgrid_bin, model_dir, tokens, out, *extra)
    if proc.returncode != 0:
        pytest.fail(f"patchgrid cache exited {proc.returncode}:\n{proc.stderr}", pytrace=False)
    got_tokens, logits, activations = read_cache(out)
    np.testing.assert_array_equal(got_tokens, tokens)
    return logits, activations


def test_cache_matches_reference(test_model, patchgrid_bin, tmp_path):
    tokens = prompts(test_model)
    logits, activations = run_and_read(patchgrid_bin, test_model.dir, tokens, tmp_path / "out.h5")
    ref_logits, ref_cache = reference(test_model.dir, tokens)
    check(dict(activations, logits=logits), dict(ref_cache, logits=ref_logits), TOLERANCE,
          f"{test_model.name} ({test_model.spec.about}): patchgrid cache vs reference")
    # gelu and gelu_new differ by at most 4.7e-4, too little for the criterion above to see
    # for sure; on patchgrid's own hook_pre, hook_post must be the configured function to
    # float32 rounding.
    act = GPT2Ref(test_model.dir).act
    post = {k: v for k, v in activations.items() if k.endswith("mlp.hook_post")}
    want = {k: act(torch.from_numpy(activations[k.replace("post", "pre")]).double()).numpy() for k in post}
    check(post, want, 1e-5, f"{test_model.name}: mlp.hook_post vs {act.__name__}(mlp.hook_pre)")


def test_cache_hooks_glob(model_factory, patchgrid_bin, tmp_path):
    model_dir = model_factory("tiny")
    tokens = np.random.default_rng(3).integers(0, 1000, (2, 7))
    logits, activations = run_and_read(patchgrid_bin, model_dir, tokens, tmp_path / "out.h5",
                                       "--hooks", "blocks.0.*")
    ref_logits, ref_cache = reference(model_dir, tokens)
    want = {k: v for k, v in ref_cache.items() if fnmatch.fnmatchcase(k, "blocks.0.*")}
    assert len(want) == 17
    check(dict(activations, logits=logits), dict(want, logits=ref_logits), TOLERANCE,
          "tiny: patchgrid cache --hooks 'blocks.0.*'")


def test_cache_missing_config(model_factory, patchgrid_bin, tmp_path):
    model_dir = tmp_path / "no_config"
    model_dir.mkdir()
    shutil.copy(os.path.join(model_factory("tiny"), "model.safetensors"), model_dir)
    out = tmp_path / "out.h5"
    proc = run_cache(patchgrid_bin, str(model_dir), [[1, 2, 3]], out)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and str(model_dir) in lines[0], proc.stderr
    assert not out.exists(), "an output file was written for a failed run"
