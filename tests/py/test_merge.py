"""`patchgrid merge` and `patchgrid status`: the part files of a job array make one results file.

Parts computed with `run --part K/N` on different numbers of ranks, merged, must equal one full
run bitwise (NaN included); overlapping parts are fine; a part of another sweep is refused before
anything is written; missing parts give a `partial` file that says what is missing, and merging
that file with the missing part completes it.
"""
import os
import subprocess

import h5py
import numpy as np
import pytest

from test_mpi import ENV, assert_identical, results, run, write_config

# 5 layers and units_per_pair 2: slices of 3 and 2 layers, so a unit is a block of pairs x a
# layer range that does not start at 0 or cover the whole axis.
MODEL = dict(layers=5, heads=4, d_model=32, vocab=500, n_ctx=32, seed=21)
N_PARTS = 3


def merge(patchgrid_bin, out, *parts, overwrite=False):
    cmd = [patchgrid_bin, "merge", "-o", str(out)] + (["--overwrite"] if overwrite else [])
    return subprocess.run(cmd + [str(p) for p in parts], capture_output=True, text=True,
                          env=ENV, timeout=120)


def status(patchgrid_bin, *args):
    return subprocess.run([patchgrid_bin, "status", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=60)


def sliced_config(path, model_dir, **kw):
    write_config(path, model_dir, **kw)
    path.write_text("units_per_pair: 2\n" + path.read_text())
    return path


@pytest.fixture(scope="module")
def model_dir(model_factory):
    return model_factory("merge", MODEL)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("merge")


@pytest.fixture(scope="module")
def config(model_dir, workdir):
    # 36 pairs in blocks of 10: parts of 10, 10 and 16 pairs.
    return sliced_config(workdir / "sweep.yaml", model_dir, n_pairs=36, seed=3)


@pytest.fixture(scope="module")
def full(patchgrid_bin, config, workdir):
    out = workdir / "full.h5"
    proc = run(patchgrid_bin, 1, config, out)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        assert f["status"][0] == b"complete"
        assert f["experiments/resid"].attrs["layers_per_slice"] == 3
        assert f["experiments/resid/done"].shape == (36, 2)
    return out


@pytest.fixture(scope="module")
def parts(patchgrid_bin, config, workdir):
    """Part k of N_PARTS computed on k + 1 ranks."""
    paths = []
    for k in range(N_PARTS):
        out = workdir / f"part{k}.h5"
        proc = run(patchgrid_bin, k + 1, config, out, "--part", f"{k}/{N_PARTS}")
        assert proc.returncode == 0, proc.stderr
        with h5py.File(out, "r") as f:
            assert f["status"][0] == b"partial"
        paths.append(out)
    return paths


def test_parts_merge_to_the_full_run(patchgrid_bin, full, parts, tmp_path):
    out = tmp_path / "merged.h5"
    proc = merge(patchgrid_bin, out, *parts)
    assert proc.returncode == 0, proc.stderr
    assert "complete" in proc.stderr
    merged = results(out)
    assert merged["status"] == b"complete"
    assert_identical(results(full), merged, "merged parts vs one run")
    with h5py.File(out, "r") as f, h5py.File(full, "r") as g:
        assert f["finished"][0] != b""
        # Same layout: every object of the full run's file, same shapes and types.
        names = []
        g.visit(names.append)
        for name in names:
            assert name in f, name
            if isinstance(g[name], h5py.Dataset):
                assert f[name].shape == g[name].shape and f[name].dtype == g[name].dtype, name
        for key in ("config_sha256", "model_sha256", "engine", "format"):
            assert f.attrs[key] == g.attrs[key], key
    assert not os.path.exists(f"{out}.tmp")
    proc = status(patchgrid_bin, out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "complete" in proc.stdout


def test_any_order_and_overlapping_parts(patchgrid_bin, config, full, parts, tmp_path):
    # Part 0 of 2 overlaps parts 0 and 1 of 3; the merge takes each unit once.
    half = tmp_path / "half0.h5"
    proc = run(patchgrid_bin, 2, config, half, "--part", "0/2")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "overlap.h5"
    proc = merge(patchgrid_bin, out, parts[2], half, parts[1], parts[0])
    assert proc.returncode == 0, proc.stderr
    merged = results(out)
    assert merged["status"] == b"complete"
    assert_identical(results(full), merged, "overlapping parts vs one run")


def test_missing_part_gives_partial_and_says_so(patchgrid_bin, full, parts, tmp_path):
    out = tmp_path / "partial.h5"
    proc = merge(patchgrid_bin, out, parts[0], parts[2])
    assert proc.returncode == 0, proc.stderr
    assert "partial" in proc.stderr
    # Part 1 of 3 is block 1 (pairs 10-19) of the four blocks.
    assert "pairs 10-19" in proc.stderr, proc.stderr
    got = results(out)
    assert got["status"] == b"partial"
    ref = results(full)
    for k, v in got.items():
        if k.endswith("/done"):
            assert not v[10:20].any() and v[:10].all() and v[20:].all(), k
        elif k != "status" and v.dtype == np.float32 and v.ndim >= 2:  # results, baselines
            # The missing pairs are NaN; every other value is the full run's.
            rows = np.r_[0:10, 20:36]
            assert np.array_equal(v[rows].view(np.uint32), ref[k][rows].view(np.uint32)), k
            assert np.isnan(v[10:20]).all(), k
    proc = status(patchgrid_bin, "-v", out)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "partial" in proc.stdout and "pairs 10-19" in proc.stdout
    # The partial file is itself a part: merging in the missing one completes it.
    done = tmp_path / "done.h5"
    proc = merge(patchgrid_bin, done, out, parts[1])
    assert proc.returncode == 0, proc.stderr
    assert_identical(ref, results(done), "partial + missing part vs one run")
    assert results(done)["status"] == b"complete"


def test_part_of_another_sweep_refused(patchgrid_bin, model_dir, parts, tmp_path):
    other_cfg = sliced_config(tmp_path / "other.yaml", model_dir, n_pairs=36, seed=4)
    other = tmp_path / "other.h5"
    proc = run(patchgrid_bin, 1, other_cfg, other, "--part", "1/3")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "bad.h5"
    proc = merge(patchgrid_bin, out, parts[0], other, parts[2])
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(other)), proc.stderr
    assert "not from the same sweep" in lines[0] and "config" in lines[0], lines[0]
    assert not out.exists() and not os.path.exists(f"{out}.tmp")


def test_errors(patchgrid_bin, parts, tmp_path):
    out = tmp_path / "o.h5"
    out.write_bytes(b"keep")
    proc = merge(patchgrid_bin, out, *parts)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr and str(out) in proc.stderr
    assert out.read_bytes() == b"keep"
    proc = merge(patchgrid_bin, out, *parts, overwrite=True)
    assert proc.returncode == 0, proc.stderr
    assert results(out)["status"] == b"complete"

    notes = tmp_path / "notes.txt"
    notes.write_text("not hdf5\n")
    proc = merge(patchgrid_bin, tmp_path / "x.h5", parts[0], notes)
    assert proc.returncode == 1 and proc.stderr.startswith(str(notes)), proc.stderr
    assert "not an HDF5 file" in proc.stderr
    proc = merge(patchgrid_bin, tmp_path / "x.h5", tmp_path / "missing.h5")
    assert proc.returncode == 1 and "missing.h5" in proc.stderr
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    proc = merge(patchgrid_bin, tmp_path / "x.h5", plain)
    assert proc.returncode == 1 and "not a patchgrid results file" in proc.stderr
    assert not (tmp_path / "x.h5").exists()

    for args in ([], ["-o"], ["-o", str(tmp_path / "y.h5")], [str(parts[0])], ["--bogus"]):
        proc = subprocess.run([patchgrid_bin, "merge", *args], capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
    proc = subprocess.run([patchgrid_bin, "merge", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--part K/N" in proc.stdout


def test_status(patchgrid_bin, config, full, parts, tmp_path):
    proc = status(patchgrid_bin, full)
    assert proc.returncode == 0 and proc.stdout.startswith(f"{full}: complete"), proc.stdout
    proc = status(patchgrid_bin, parts[1])
    assert proc.returncode == 3, proc.stdout
    assert "partial" in proc.stdout and "done flags" in proc.stdout
    # --config finds the file the config's run writes (the config's output, beside it).
    beside = config.with_suffix(".h5")
    assert not beside.exists()
    proc = status(patchgrid_bin, "--config", config)
    assert proc.returncode == 1 and str(beside) in proc.stderr, proc.stderr
    beside.write_bytes(full.read_bytes())
    try:
        proc = status(patchgrid_bin, "--config", config)
        assert proc.returncode == 0 and proc.stdout.startswith(f"{beside}: complete"), proc.stdout
    finally:
        beside.unlink()
    proc = status(patchgrid_bin, tmp_path / "nope.h5")
    assert proc.returncode == 1 and "nope.h5" in proc.stderr
    proc = status(patchgrid_bin)
    assert proc.returncode == 2
