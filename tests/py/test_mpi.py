"""MPI runs of `patchgrid run`: rank-count independence, kill -9 and resume, signals, errors.

The same sweep must give bitwise-identical results with 1, 2, 3 and 4 ranks; a run killed at a
random moment (any rank, the coordinator included) must leave a file that opens, and rerunning
must complete it to exactly the uninterrupted result; SIGTERM must stop a run cleanly (exit 0)
so that the next run resumes; a bad config must be reported once and end every rank.
"""
import os
import random
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
MODEL = dict(layers=4, heads=4, d_model=128, vocab=500, n_ctx=32, seed=11)


def write_config(path, model_dir, n_pairs=24, n_tokens=16, seed=0, extra_exps=()):
    rng = random.Random(seed)
    lines = [f"model: {model_dir}", "metrics: [logit_diff, kl]", "dataset:", "  pairs:"]
    for _ in range(n_pairs):
        clean = [rng.randrange(500) for _ in range(n_tokens)]
        corrupted = list(clean)
        for p in rng.sample(range(3, n_tokens), 2):
            corrupted[p] = rng.randrange(500)
        lines.append(f"    - {{clean_tokens: {clean}, corrupted_tokens: {corrupted}, "
                     f"answer_token: {rng.randrange(500)}, wrong_token: {rng.randrange(500)}}}")
    lines += ["experiments:",
              "  - {name: resid, patch: resid_pre}",
              "  - {name: heads, patch: z}",
              "  - {name: heads_pos, patch: v, by: [layer, pos, head]}",
              "  - {name: mlp, patch: mlp_out, direction: noising}"]
    lines += [f"  - {e}" for e in extra_exps]
    path.write_text("\n".join(lines) + "\n")
    return path


def mpirun(np_, *args):
    if np_ == 1:
        return list(args)
    return ["mpirun", "-np", str(np_), "--oversubscribe"] + list(args)


def run(patchgrid_bin, np_, config, out, *extra, timeout=600):
    cmd = mpirun(np_, patchgrid_bin, "run", str(config), "-o", str(out), *extra)
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout)


def results(path):
    """Every result and baseline dataset of a results file, as numpy arrays."""
    out = {}
    with h5py.File(path, "r") as f:
        for group in ("experiments", "baseline"):
            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    out[f"{group}/{name}"] = obj[...]
            f[group].visititems(visit)
        out["status"] = f["status"][0]
    return out


def assert_identical(a, b, what):
    assert a.keys() == b.keys(), what
    for k in a:
        if k == "status":
            continue
        x, y = a[k], b[k]
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: {k}"
        if x.dtype.kind == "f":
            # bitwise, NaN included
            assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), f"{what}: {k} differs"
        else:
            assert np.array_equal(x, y), f"{what}: {k} differs"


@pytest.fixture(scope="module")
def model_dir(model_factory):
    return model_factory("mpi", MODEL)


@pytest.fixture(scope="module")
def config(model_dir, tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("mpi") / "sweep.yaml", model_dir)


def uninterrupted(patchgrid_bin, config, out):
    """The result of an uninterrupted one-process run."""
    proc = run(patchgrid_bin, 1, config, out)
    assert proc.returncode == 0, proc.stderr
    res = results(out)
    assert res["status"] == b"complete"
    for k, v in res.items():
        if k.endswith("/done"):
            assert v.all(), k
    return res


@pytest.fixture(scope="module")
def reference(patchgrid_bin, config, tmp_path_factory):
    return uninterrupted(patchgrid_bin, config, tmp_path_factory.mktemp("ref") / "ref.h5")


@pytest.fixture(scope="module")
def long_config(model_dir, tmp_path_factory):
    """A sweep that takes a few seconds, long enough to be interrupted."""
    return write_config(tmp_path_factory.mktemp("mpi") / "long.yaml", model_dir, n_pairs=400,
                        seed=1)


@pytest.fixture(scope="module")
def long_reference(patchgrid_bin, long_config, tmp_path_factory):
    return uninterrupted(patchgrid_bin, long_config, tmp_path_factory.mktemp("ref") / "long.h5")


@pytest.mark.parametrize("ranks", [2, 3, 4])
def test_same_results_on_any_number_of_ranks(patchgrid_bin, config, reference, tmp_path, ranks):
    out = tmp_path / f"r{ranks}.h5"
    proc = run(patchgrid_bin, ranks, config, out)
    assert proc.returncode == 0, proc.stderr
    assert_identical(reference, results(out), f"{ranks} ranks vs 1")


def rank_pids(mpirun_pid):
    """{rank: pid} of the ranks mpirun started on this node."""
    pids = {}
    for pid in subprocess.run(["pgrep", "-P", str(mpirun_pid)], capture_output=True,
                              text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK" in env:
            pids[int(env[b"OMPI_COMM_WORLD_RANK"])] = int(pid)
    return pids


def file_opens(path):
    """The file opens with h5py and h5dump (serial HDF5) and its done flags are readable."""
    with h5py.File(path, "r") as f:
        for name in f["experiments"]:
            f["experiments"][name]["done"][...]
    proc = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_kill_any_rank_and_resume(patchgrid_bin, long_config, long_reference, tmp_path):
    """kill -9 of a random rank at a random moment, ten times, resuming each time."""
    out = tmp_path / "killed.h5"
    rng = random.Random(1234)
    kills, attempts = 0, 0
    while kills < 10:
        attempts += 1
        assert attempts < 40, "the sweep kept finishing before the kill"
        proc = subprocess.Popen(mpirun(3, patchgrid_bin, "run", str(long_config), "-o",
                                       str(out), "--sync-interval", "0.2"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        # Open MPI 4.1's mpirun can hang when a rank dies inside MPI_Init (a PMIx
        # "UNREACHABLE" error): wait until the ranks are past it, i.e. the file (or its
        # .creating stage) appears; from there on any moment is fair game.
        deadline = time.monotonic() + 60
        while not (os.path.exists(out) or os.path.exists(f"{out}.creating")):
            assert proc.poll() is None or os.path.exists(out), proc.communicate()[1]
            assert time.monotonic() < deadline, "the run never created its file"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 2.5))
        pids = rank_pids(proc.pid)
        victim = rng.choice(sorted(pids)) if pids else None
        if victim is not None and proc.poll() is None:
            os.kill(pids[victim], signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=120)
        if os.path.exists(out):
            file_opens(out)
            with h5py.File(out, "r") as f:
                if f["status"][0] == b"complete":
                    os.unlink(out)  # finished before the kill: start over
    proc = run(patchgrid_bin, 3, long_config, out)
    assert proc.returncode == 0, proc.stderr
    final = results(out)
    assert final["status"] == b"complete"
    assert_identical(long_reference, final, "killed and resumed vs uninterrupted")


def test_sigterm_stops_cleanly_and_resumes(patchgrid_bin, long_config, long_reference, tmp_path):
    out = tmp_path / "term.h5"
    # One process (no mpirun) and three ranks signalled like Slurm does: every task.
    for ranks in (1, 3):
        cmd = mpirun(ranks, patchgrid_bin, "run", str(long_config), "-o", str(out))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV,
                                text=True)
        time.sleep(1.0)
        targets = [proc.pid] if ranks == 1 else list(rank_pids(proc.pid).values())
        if proc.poll() is not None:
            pytest.fail("the sweep finished before the signal: make it longer")
        sent = time.monotonic()
        for pid in targets:
            os.kill(pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
        assert proc.returncode == 0, err
        assert took < 10, f"took {took:.1f} s to stop"
        assert "stopped by signal" in err, err
        with h5py.File(out, "r") as f:
            assert f["status"][0] == b"partial"
    proc = run(patchgrid_bin, 2, long_config, out)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stderr
    assert_identical(long_reference, results(out), "signalled and resumed vs uninterrupted")


def test_resume_refuses_another_config(patchgrid_bin, config, model_dir, tmp_path):
    out = tmp_path / "a.h5"
    proc = run(patchgrid_bin, 1, config, out)
    assert proc.returncode == 0, proc.stderr
    other = write_config(tmp_path / "other.yaml", model_dir, n_pairs=3, seed=5)
    before = out.read_bytes()
    proc = run(patchgrid_bin, 2, other, out)
    assert proc.returncode != 0
    # mpirun adds its own banner about the non-zero exit; patchgrid says it once.
    lines = [l for l in proc.stderr.splitlines() if l.startswith(str(out))]
    assert len(lines) == 1 and "different config" in lines[0] and "--overwrite" in lines[0], \
        proc.stderr
    assert out.read_bytes() == before
    proc = run(patchgrid_bin, 2, other, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert results(out)["experiments/resid/logit_diff"].shape[0] == 3


@pytest.mark.parametrize("ranks", [1, 3])
def test_bad_config_reported_once(patchgrid_bin, model_dir, tmp_path, ranks):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"model: {model_dir}\nmodle: x\n")
    out = tmp_path / "bad.h5"
    proc = run(patchgrid_bin, ranks, bad, out, timeout=60)
    assert proc.returncode != 0
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    mine = [l for l in lines if l.startswith(str(bad))]
    assert len(mine) == 1, proc.stderr
    assert ":2:1:" in mine[0] and "modle" in mine[0], mine[0]
    assert not out.exists()


def test_named_dimensions_in_xarray(patchgrid_bin, config, reference, tmp_path):
    xr = pytest.importorskip("xarray")
    out = tmp_path / "x.h5"
    assert run(patchgrid_bin, 1, config, out).returncode == 0
    ds = xr.open_dataset(out, engine="h5netcdf", group="experiments/resid")
    assert ds["logit_diff"].dims == ("pair", "layer", "pos")
    assert list(ds["layer"].values) == [0, 1, 2, 3]
    assert ds["logit_diff"].shape == reference["experiments/resid/logit_diff"].shape
    ds = xr.open_dataset(out, engine="h5netcdf", group="experiments/heads_pos")
    assert ds["logit_diff"].dims == ("pair", "layer", "pos", "head")
    ds = xr.open_dataset(out, engine="h5netcdf", group="baseline")
    assert ds["kl"].dims == ("pair", "run")
    runs = [r.decode() if isinstance(r, bytes) else str(r) for r in ds["run"].values]
    assert runs == ["clean", "corrupted"]


def test_progress_and_plan(patchgrid_bin, config, tmp_path):
    proc = subprocess.run([patchgrid_bin, "run", str(config), "--plan-only"], capture_output=True,
                          text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr
    assert "units" in proc.stdout and "heads_pos" in proc.stdout
    out = tmp_path / "p.h5"
    proc = run(patchgrid_bin, 3, config, out)
    assert proc.returncode == 0
    # Not a terminal: plain progress lines, and the final summary.
    assert "cells (100.0%)" in proc.stderr, proc.stderr
    assert "cells computed" in proc.stderr


def test_null_work_dispatch(patchgrid_bin, config, tmp_path):
    out = tmp_path / "null.h5"
    proc = run(patchgrid_bin, 3, config, out, "--null-work")
    assert proc.returncode == 0, proc.stderr
    assert "units/s" in proc.stderr
    assert not out.exists(), "null work must not write results"


def test_activation_store(patchgrid_bin, model_dir, tmp_path):
    """`activations:` stores the baseline runs' hooks, equal to an independent PyTorch
    run_with_cache, NaN past each pair's length, the same on 1 and 3 ranks."""
    torch = pytest.importorskip("torch")
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    from gpt2_ref import GPT2Ref
    cfg = write_config(tmp_path / "acts.yaml", model_dir, n_pairs=5)
    text = cfg.read_text().replace(
        "metrics: [logit_diff, kl]",
        'metrics: [logit_diff, kl]\nactivations: ["blocks.*.hook_resid_pre", '
        '"blocks.2.attn.hook_z", "blocks.1.attn.hook_pattern", "ln_final.hook_normalized"]')
    # pairs of two lengths
    text = text.replace("clean_tokens: [", "clean_tokens: [7, ", 2).replace(
        "corrupted_tokens: [", "corrupted_tokens: [7, ", 2)
    cfg.write_text(text)
    out1, out3 = tmp_path / "a1.h5", tmp_path / "a3.h5"
    for n, out in ((1, out1), (3, out3)):
        proc = run(patchgrid_bin, n, cfg, out)
        assert proc.returncode == 0, proc.stderr
    ref = GPT2Ref(model_dir)
    with h5py.File(out1, "r") as f, h5py.File(out3, "r") as g:
        lengths = f["pairs/length"][...]
        assert len(set(lengths)) == 2
        for run_name, tok_name in (("clean", "clean_tokens"), ("corrupted", "corrupted_tokens")):
            for hook in ("hook_resid_pre", "attn.hook_z", "attn.hook_pattern",
                         "ln_final.hook_normalized"):
                a = f[f"activations/{run_name}/{hook}/act"][...]
                assert np.array_equal(a.view(np.uint32),
                                      g[f"activations/{run_name}/{hook}/act"][...].view(np.uint32))
                layers = (list(f[f"activations/{run_name}/{hook}/layer"][...])
                          if "layer" in f[f"activations/{run_name}/{hook}"] else [None])
                for p, T in enumerate(lengths):
                    tokens = torch.tensor(f["pairs"][tok_name][p, :T][None].astype(np.int64))
                    _, cache = ref.run_with_cache(tokens)
                    for li, layer in enumerate(layers):
                        name = hook if layer is None else f"blocks.{layer}.{hook}"
                        want = cache[name][0].numpy()
                        got = a[p] if layer is None else a[p, li]
                        if hook == "attn.hook_pattern":
                            valid = got[:, :T, :T]
                            assert np.isnan(got[:, T:, :]).all() and np.isnan(got[:, :, T:]).all()
                        else:
                            valid = got[:T]
                            assert np.isnan(got[T:]).all()
                        err = np.abs(valid - want).max() / np.abs(want).max()
                        assert err <= 1e-4, (run_name, name, p, err)
