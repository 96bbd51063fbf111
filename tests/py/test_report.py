"""`patchgrid report`, tools/analyze.py and the snippets of docs/analysis.md on real results files.

A small sweep (a random 3-layer GPT-2-shaped model with the GPT-2 tokenizer, the IOI text
pairs and experiments of docs/analysis.md's example config) is run once with `patchgrid
run`. Then:

- the report writes a valid, non-uniform PNG per experiment x metric and an index.html that
  references each of them and needs nothing else;
- each table's top cell is numpy's largest |nanmean over pairs|, with pair 0's token;
- on a copy with known values placed with h5py, the cells' colours (found through the PNG's
  `patchgrid:heatmap` geometry chunk) are red for a positive cell, blue for a negative one,
  near-white for 0 and the hatched NaN grey for NaN, and the colour bar runs red to blue;
- partial files work: one edited with h5py (done flags cleared, NaN results, status
  partial, a metric with no value at all) and one from a run stopped by SIGTERM;
- a missing file, a text file, a foreign HDF5 file and a directory each give one error line
  naming the path, exit 1, and create no output; usage errors exit 2;
- tools/analyze.py prints the xarray named dimensions and writes readable PNGs, and every
  python snippet of docs/analysis.md runs against the sweep's results.
"""
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib

import h5py
import numpy as np
import pytest

from shared_data import shared_gpt2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "analysis.md")
ANALYZE = os.path.join(ROOT, "tools", "analyze.py")
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")

NAN_RGB = (190, 190, 190)     # include/heatmap.h
HATCH_RGB = (130, 130, 130)
WHITE0 = (247, 247, 247)      # the colour of 0


def doc_blocks(lang):
    with open(DOC) as f:
        return re.findall(rf"```{lang}\n(.*?)```", f.read(), re.S)


@pytest.fixture(scope="module")
def model_dir(model_factory):
    return model_factory("report-gpt2tok", dict(layers=3, heads=4, d_model=64, vocab=50257,
                                                n_ctx=64, seed=21, tokenizer=shared_gpt2()))


@pytest.fixture(scope="module")
def results(patchgrid_bin, model_dir, tmp_path_factory):
    """The docs' example config, run on the test model."""
    config = doc_blocks("yaml")[0]
    assert config.startswith("model:"), "docs/analysis.md's first yaml block is the example config"
    d = tmp_path_factory.mktemp("report")
    path = d / "sweep.yaml"
    path.write_text(re.sub(r"^model: .*$", f"model: {model_dir}", config, count=1, flags=re.M))
    out = d / "results.h5"
    proc = subprocess.run([patchgrid_bin, "run", str(path), "-o", str(out)], capture_output=True,
                          text=True, env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def report(patchgrid_bin, path, *args):
    return subprocess.run([patchgrid_bin, "report", str(path), *args], capture_output=True, text=True,
                          env=ENV, timeout=300)


def copy(src, dst):
    shutil.copyfile(src, dst)
    return dst


# ---- reading PNGs --------------------------------------------------------------------

def png_chunks(path):
    """A minimal PNG parser: checks the signature and every chunk's CRC; returns the header,
    the tEXt chunks and the concatenated IDAT data."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    at, idat, text, hdr = 8, b"", {}, None
    while at < len(data):
        n, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + n]
        crc, = struct.unpack(">I", data[at + 8 + n:at + 12 + n])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind}"
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            hdr = dict(width=w, height=h, depth=depth, color_type=ctype, interlace=interlace)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            text[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"IEND":
            break
        at += 12 + n
    assert hdr and hdr["depth"] == 8 and hdr["color_type"] == 2 and hdr["interlace"] == 0, hdr
    return hdr, text, idat


def png_decode(hdr, idat):
    """The pixels, unfiltered by hand (slow: for one cross-check against matplotlib)."""
    w, h = hdr["width"], hdr["height"]
    raw = zlib.decompress(idat)
    stride = 3 * w
    assert len(raw) == h * (stride + 1)
    img = np.zeros((h, stride), dtype=np.int32)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        out = np.zeros(stride, dtype=np.int32)
        for x in range(stride):  # the five PNG filters
            a = out[x - 3] if x >= 3 else 0
            b = prev[x]
            c = prev[x - 3] if x >= 3 else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out[x] = (line[x] + pred) & 0xFF
        img[y] = out
        prev = out
    return img.reshape(h, w, 3).astype(np.uint8)


def png_pixels(path):
    """RGB uint8 [h, w, 3], decoded by matplotlib."""
    import matplotlib.image
    img = matplotlib.image.imread(path)
    return np.round(img[..., :3] * 255).astype(np.uint8)


def png_read(path):
    """(header, tEXt chunks, pixels) of a valid 8-bit RGB PNG."""
    hdr, text, _ = png_chunks(path)
    img = png_pixels(path)
    assert img.shape == (hdr["height"], hdr["width"], 3)
    return hdr, text, img


def geometry(text):
    g = dict(kv.split("=") for kv in text["patchgrid:heatmap"].split())
    return {k: (float(v) if k == "vmax" else int(v)) for k, v in g.items()}


def cell(img, g, row, col, panel=0):
    x = g["x0"] + panel * g["panel_step"] + col * g["cell_w"]
    y = g["y0"] + row * g["cell_h"]
    return img[y:y + g["cell_h"], x:x + g["cell_w"]]


def main_colour(block):
    """The most frequent colour of a block of pixels (a cell's fill, not its printed value)."""
    colours, counts = np.unique(block.reshape(-1, 3), axis=0, return_counts=True)
    return tuple(int(c) for c in colours[np.argmax(counts)])


def reddish(c):
    c = [int(v) for v in c]
    return c[0] > 90 and c[0] - c[2] > 50 and c[0] > c[1]


def bluish(c):
    c = [int(v) for v in c]
    return c[2] > 90 and c[2] - c[0] > 50


# ---- the stdout tables ---------------------------------------------------------------

def parse_tables(stdout):
    """{(experiment, metric): [row dicts]} from the report's text: each row's axis labels,
    token, mean and pair count."""
    tables, exp, metric, cols = {}, None, None, None
    for line in stdout.splitlines():
        m = re.match(r"== (\S+): ", line)
        if m:
            exp = m.group(1)
            continue
        m = re.match(r"-- (\S+): top ", line)
        if m:
            metric, cols = m.group(1), None
            tables[(exp, metric)] = []
            continue
        if metric and line.startswith("    rank"):
            cols = line.split()
            continue
        if metric and cols and re.match(r"\s+\d+\s", line):
            vals = shlex.split(line)
            assert len(vals) == len(cols), (cols, vals)
            row = dict(zip(cols, vals))
            row["mean"] = float(row["mean"])
            tables[(exp, metric)].append(row)
        elif line.strip() == "":
            metric, cols = None, None
    return tables


def scale_labels(group, axis):
    vals = group[axis][...]
    return [v.decode() if isinstance(v, bytes) else str(int(v)) for v in vals]


def nanmean0(a):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells no pair has: NaN, as intended
        return np.nanmean(a, axis=0)


def pair0_token(f, label):
    n = int(f["pairs/length"][0])
    try:
        i = int(label)
        i = i + n if i < 0 else i
    except ValueError:
        i = int(f[f"pairs/positions/{label}"][0])
    return f["pairs/clean_token_str"][0, i].decode() if 0 <= i < n else None


# ---- tests ---------------------------------------------------------------------------

def test_report_writes_pngs_and_index(patchgrid_bin, results, tmp_path):
    out = tmp_path / "out"
    proc = report(patchgrid_bin, results, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "partial" not in proc.stdout
    assert re.search(r"baselines \(mean over pairs, clean / corrupted\): logit_diff \S+ / \S+", proc.stdout)
    html = (out / "index.html").read_text()
    assert "<script" not in html and "<link" not in html and "http" not in html  # self-contained
    with h5py.File(results, "r") as f:
        expected = [(e, m) for e in f["experiments"] for m in f["experiments"][e]
                    if m not in ("done",) and f["experiments"][e][m].dtype.kind == "f"
                    and f["experiments"][e][m].ndim > 1]
    assert len(expected) == 8  # 4 experiments x 2 metrics
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted(f"{e}.{m}.png" for e, m in expected)
    for e, m in expected:
        name = f"{e}.{m}.png"
        assert f'<img src="{name}"' in html
        assert f"== {e}: patch " in proc.stdout
        hdr, text, img = png_read(out / name)
        assert hdr["width"] >= 300 and hdr["height"] >= 150
        if name == "heads.logit_diff.png":  # the smallest: decoded by hand too, the same pixels
            assert np.array_equal(png_decode(hdr, png_chunks(out / name)[2]), img)
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20, f"{name} is (nearly) uniform"
        assert text["Title"] == f"{e}: {m}"
        g = geometry(text)
        with h5py.File(results, "r") as f:
            shape = f[f"experiments/{e}/{m}"].shape[1:]
        want = (1, shape[0], shape[1]) if len(shape) == 2 else (shape[1], shape[0], shape[2])
        assert (g["panels"], g["rows"], g["cols"]) == want
        # Axis labels, tick labels and a colour bar: ink left of and below the cells, and a
        # red-to-blue gradient right of them.
        plot_right = g["x0"] + (g["panels"] - 1) * g["panel_step"] + g["cols"] * g["cell_w"]
        plot_bottom = g["y0"] + g["rows"] * g["cell_h"]
        assert (img[g["y0"]:plot_bottom, :g["x0"] - 2] < 100).any(), "no row labels"
        assert (img[plot_bottom + 2:, g["x0"]:plot_right] < 100).any(), "no column labels"
        bar = [x for x in range(plot_right + 5, hdr["width"])
               if reddish(tuple(img[g["y0"] + 1, x])) and any(bluish(tuple(p)) for p in img[g["y0"]:, x])]
        assert bar, f"{name}: no colour bar"


def effect_of(f, e, m):
    """numpy's mean over pairs of (value - the patched run's own baseline), per cell: the
    report's ranking. The patched run is the corrupted one when denoising."""
    g = f[f"experiments/{e}"]
    run = 0 if g.attrs["direction"].decode() == "noising" else 1
    base = f[f"baseline/{m}"][:, run]
    vals = g[m][...]
    return nanmean0(vals - base.reshape((-1,) + (1,) * (vals.ndim - 1)))


def test_top_cell_matches_numpy(patchgrid_bin, results, tmp_path):
    proc = report(patchgrid_bin, results, "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    tables = parse_tables(proc.stdout)
    assert len(tables) == 8
    with h5py.File(results, "r") as f:
        for (e, m), rows in tables.items():
            g = f[f"experiments/{e}"]
            mean = nanmean0(g[m][...])
            change = effect_of(f, e, m)
            axes = g.attrs["axes"].decode().split(",")[1:]
            assert len(rows) == min(10, np.isfinite(mean).sum())
            top = rows[0]
            assert float(top["change"]) == pytest.approx(
                np.nanmax(np.abs(change)) * np.sign(float(top["change"])), rel=1e-3, abs=1e-6)
            idx = tuple(scale_labels(g, a).index(top[a]) for a in axes)
            assert mean[idx] == pytest.approx(top["mean"], rel=1e-3, abs=1e-6), (e, m, top)
            assert change[idx] == pytest.approx(float(top["change"]), rel=1e-3, abs=1e-6)
            assert top["pairs"] == f"{np.isfinite(g[m][(slice(None),) + idx]).sum()}/{g[m].shape[0]}"
            sizes = [abs(float(r["change"])) for r in rows]
            assert sizes == sorted(sizes, reverse=True)
            if "pos" in axes:
                for r in rows:
                    tok = pair0_token(f, r["pos"])
                    assert r["token"] == (tok if tok is not None else "-"), (e, r)


@pytest.fixture(scope="module")
def placed(results, tmp_path_factory):
    """A copy with known values: resid/logit_diff is 0 except +4 at (layer 0, pos 3), -4 at
    (layer 2, pos 5), NaN at (layer 1, pos 7) for every pair, and at (layer 1, pos 8) NaN
    for pair 0 only and 1 elsewhere; heads/logit_diff_norm 1.5 except -3 at (layer 1, head 2).
    The corrupted runs' baselines of both metrics are set to 0, so the tables' "change" from
    them equals the placed values."""
    path = copy(results, tmp_path_factory.mktemp("placed") / "placed.h5")
    with h5py.File(path, "r+") as f:
        for metric in ("logit_diff", "logit_diff_norm"):
            f[f"baseline/{metric}"][:, 1] = 0
        d = f["experiments/resid/logit_diff"]
        a = np.zeros(d.shape, np.float32)
        a[:, 0, 3] = 4
        a[:, 2, 5] = -4
        a[:, 1, 7] = np.nan
        a[:, 1, 8] = 1
        a[0, 1, 8] = np.nan
        d[...] = a
        d = f["experiments/heads/logit_diff_norm"]
        a = np.full(d.shape, 1.5, np.float32)
        a[:, 1, 2] = -3
        d[...] = a
    return path


def test_colours_of_known_cells(patchgrid_bin, placed, tmp_path):
    out = tmp_path / "out"
    proc = report(patchgrid_bin, placed, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    _, text, img = png_read(out / "resid.logit_diff.png")
    g = geometry(text)
    assert g["vmax"] == 4
    assert reddish(main_colour(cell(img, g, 0, 3))), main_colour(cell(img, g, 0, 3))
    assert main_colour(cell(img, g, 0, 3)) == (103, 0, 31)          # +vmax: the darkest red
    assert bluish(main_colour(cell(img, g, 2, 5)))
    assert main_colour(cell(img, g, 2, 5)) == (5, 48, 97)           # -vmax: the darkest blue
    assert main_colour(cell(img, g, 0, 0)) == WHITE0
    nan = cell(img, g, 1, 7)
    colours = {tuple(int(v) for v in c) for c in np.unique(nan.reshape(-1, 3), axis=0)}
    assert colours == {NAN_RGB, HATCH_RGB}, colours                  # hatched grey, nothing else
    assert main_colour(nan) == NAN_RGB
    half = main_colour(cell(img, g, 1, 8))                           # mean 1 over pairs 1-2
    assert reddish(half) and half[1] > 100                           # a light red
    # The legend shows the NaN pattern too, with its words.
    right = img[:, g["x0"] + g["cols"] * g["cell_w"]:]
    assert (np.all(right == NAN_RGB, axis=2)).sum() > 50

    _, text, img = png_read(out / "heads.logit_diff_norm.png")
    g = geometry(text)
    assert bluish(main_colour(cell(img, g, 1, 2)))
    assert main_colour(cell(img, g, 1, 2)) == (5, 48, 97)
    assert reddish(main_colour(cell(img, g, 0, 0)))

    tables = parse_tables(proc.stdout)
    top = tables[("resid", "logit_diff")]
    assert (top[0]["layer"], top[0]["pos"], top[0]["mean"], top[0]["pairs"]) == ("0", "3", 4.0, "3/3")
    assert [float(r["change"]) for r in top[:3]] == [4.0, -4.0, 1.0]
    assert (top[1]["layer"], top[1]["pos"], top[1]["mean"]) == ("2", "5", -4.0)
    assert (top[2]["layer"], top[2]["pos"], top[2]["mean"], top[2]["pairs"]) == ("1", "8", 1.0, "2/3")
    assert "(1 cells have no value)" in proc.stdout
    h = tables[("heads", "logit_diff_norm")]
    assert (h[0]["layer"], h[0]["head"], h[0]["mean"]) == ("1", "2", -3.0)


def set_status(f, status):
    """The run state, the dataset /status."""
    f["status"][0] = status.encode()


def test_partial_file(patchgrid_bin, results, tmp_path):
    path = copy(results, tmp_path / "partial.h5")
    with h5py.File(path, "r+") as f:
        set_status(f, "partial")
        for e in f["experiments"]:
            g = f["experiments"][e]
            keep = 0 if e == "heads" else 1   # heads: nothing done at all
            g["done"][keep:, :] = 0
            for m in ("logit_diff", "logit_diff_norm"):
                a = g[m][...]
                a[keep:] = np.nan
                g[m][...] = a
        done = sum(int(f["experiments"][e]["done"][...].sum()) for e in f["experiments"])
        total = sum(f["experiments"][e]["done"].size for e in f["experiments"])
    out = tmp_path / "out"
    proc = report(patchgrid_bin, path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f"partial: {done} of {total} units done" in proc.stdout
    assert "no values yet" in proc.stdout
    tables = parse_tables(proc.stdout)
    assert all(r["pairs"] == "1/3" for r in tables[("resid", "logit_diff")])
    assert len(list(out.glob("*.png"))) == 8
    _, text, img = png_read(out / "heads.logit_diff.png")   # all NaN: every cell hatched
    g = geometry(text)
    for r in range(g["rows"]):
        for c in range(g["cols"]):
            assert main_colour(cell(img, g, r, c)) == NAN_RGB
    html = (out / "index.html").read_text()
    assert f"partial: {done} of {total} units done" in html


def long_config(model_dir, path, n_pairs=200, n_tokens=24):
    rng = np.random.default_rng(5)
    lines = [f"model: {model_dir}", "metrics: [logit_diff, kl]", "dataset:", "  pairs:"]
    for _ in range(n_pairs):
        clean = [int(t) for t in rng.integers(0, 50000, n_tokens)]
        corrupted = list(clean)
        for p in rng.choice(np.arange(3, n_tokens), 2, replace=False):
            corrupted[p] = int(rng.integers(0, 50000))
        lines.append(f"    - {{clean_tokens: {clean}, corrupted_tokens: {corrupted}, "
                     f"answer_token: {int(rng.integers(0, 50000))}, wrong_token: {int(rng.integers(0, 50000))}}}")
    lines += ["experiments:", "  - {name: resid, patch: resid_pre}", "  - {name: heads, patch: z}",
              "  - {name: heads_pos, patch: v, by: [layer, pos, head]}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_running_and_interrupted_run(patchgrid_bin, model_dir, tmp_path):
    """The report reads a file a sweep is writing, and the file a SIGTERM leaves."""
    config = long_config(model_dir, tmp_path / "long.yaml")
    out = tmp_path / "long.h5"
    proc = subprocess.Popen([patchgrid_bin, "run", str(config), "-o", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, text=True)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(0.5)
        if proc.poll() is not None:
            pytest.fail("the sweep finished before it could be read and interrupted: make it longer")
        live = report(patchgrid_bin, out, "-o", str(tmp_path / "live"))
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert live.returncode == 0, live.stderr
    assert "status running" in live.stdout and "partial: " in live.stdout
    with h5py.File(out, "r") as f:
        done = sum(int(f["experiments"][e]["done"][...].sum()) for e in f["experiments"])
        total = sum(f["experiments"][e]["done"].size for e in f["experiments"])
        assert f["status"][0] == b"partial"
    assert done < total
    rep = report(patchgrid_bin, out, "-o", str(tmp_path / "part"))
    assert rep.returncode == 0, rep.stderr
    assert f"partial: {done} of {total} units done" in rep.stdout
    assert len(list((tmp_path / "part").glob("*.png"))) == 6


def test_file_without_token_strings(patchgrid_bin, results, tmp_path):
    """A model without a tokenizer leaves no /pairs/clean_token_str: tokens show as ids."""
    path = copy(results, tmp_path / "ids.h5")
    with h5py.File(path, "r+") as f:
        del f["pairs/clean_token_str"]
        set_status(f, "partial")
        ids = f["pairs/clean_tokens"][0]
        total = sum(f["experiments"][e]["done"].size for e in f["experiments"])
    proc = report(patchgrid_bin, path, "-o", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert "status partial" in proc.stdout and f"partial: {total} of {total} units done" in proc.stdout
    rows = parse_tables(proc.stdout)[("resid", "logit_diff")]
    for r in rows:
        assert r["token"] == f"#{ids[int(r['pos'])]}"


def test_default_output_directory(patchgrid_bin, results, tmp_path):
    path = copy(results, tmp_path / "mine.h5")
    proc = report(patchgrid_bin, path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "mine_report" / "index.html").is_file()
    assert f"to {tmp_path}/mine_report/" in proc.stdout


@pytest.mark.parametrize("kind", ["missing", "text", "foreign_h5", "directory"])
def test_bad_input_one_line_exit_1(patchgrid_bin, tmp_path, kind):
    path = tmp_path / "x.h5"
    if kind == "text":
        path.write_text("not hdf5\n")
    elif kind == "foreign_h5":
        with h5py.File(path, "w") as f:
            f["a"] = np.arange(3)
    elif kind == "directory":
        path.mkdir()
    out = tmp_path / "out"
    proc = report(patchgrid_bin, path, "-o", str(out))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(path)), proc.stderr
    phrase = {"missing": "No such file", "text": "not an HDF5 file",
              "foreign_h5": "not a patchgrid results file", "directory": "directory"}[kind]
    assert phrase in lines[0]
    assert proc.stdout == ""
    assert not out.exists()


def test_unwritable_output(patchgrid_bin, results, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = report(patchgrid_bin, results, "-o", str(blocker / "sub"))
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and str(blocker) in proc.stderr


@pytest.mark.parametrize("args", [[], ["a.h5", "b.h5"], ["a.h5", "--bogus"], ["a.h5", "-o"],
                                  ["a.h5", "-n", "0"]])
def test_usage_errors(patchgrid_bin, args):
    proc = subprocess.run([patchgrid_bin, "report", *args], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("patchgrid report: ") and len(proc.stderr.splitlines()) == 1


def test_help(patchgrid_bin):
    proc = subprocess.run([patchgrid_bin, "report", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: patchgrid report")
    proc = subprocess.run([patchgrid_bin, "--help"], capture_output=True, text=True)
    assert "report" in proc.stdout


def test_top_n(patchgrid_bin, results, tmp_path):
    proc = report(patchgrid_bin, results, "-o", str(tmp_path / "o"), "-n", "3")
    assert proc.returncode == 0, proc.stderr
    assert all(len(rows) <= 3 for rows in parse_tables(proc.stdout).values())


# ---- tools/analyze.py and the docs ------------------------------------------------------

def test_analyze_py(results, tmp_path):
    out = tmp_path / "mpl"
    proc = subprocess.run([sys.executable, ANALYZE, str(results), "-o", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    # xarray's named dimensions, printed from the Dataset.
    assert "-- logit_diff: dims {'pair': 3, 'layer': 3, 'pos': 15}" in proc.stdout
    assert "-- logit_diff: dims {'pair': 3, 'layer': 3, 'head': 4}" in proc.stdout
    assert "-- logit_diff: dims {'pair': 3, 'layer': 3, 'pos': 2, 'head': 4}" in proc.stdout
    assert "pos=IO" in proc.stdout or "pos=END" in proc.stdout  # decoded names, not b'IO'
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 8
    for p in pngs:
        img = png_pixels(out / p)
        assert img.shape[0] > 100 and img.shape[1] > 200
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20

    # Its top cell agrees with the report's.
    sys.path.insert(0, os.path.dirname(ANALYZE))
    try:
        import analyze
    finally:
        sys.path.pop(0)
    ds = analyze.load_experiment(str(results), "resid_named")
    assert ds.logit_diff.dims == ("pair", "layer", "pos")
    assert list(ds.pos.values) == ["IO", "S1", "S2", "END"]
    coords, value = analyze.top_cells(analyze.mean_over_pairs(ds.logit_diff_norm), 1)[0]
    with h5py.File(results, "r") as f:
        mean = nanmean0(f["experiments/resid_named/logit_diff_norm"][...])
    assert abs(value) == pytest.approx(np.nanmax(np.abs(mean)), rel=1e-5)


def test_analyze_py_partial_and_bad(results, tmp_path):
    path = copy(results, tmp_path / "p.h5")
    with h5py.File(path, "r+") as f:
        set_status(f, "partial")
        a = f["experiments/resid/logit_diff"][...]
        a[:, 1:] = np.nan
        f["experiments/resid/logit_diff"][...] = a
    proc = subprocess.run([sys.executable, ANALYZE, str(path), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "status partial" in proc.stdout
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = 1
    proc = subprocess.run([sys.executable, ANALYZE, str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "not a patchgrid results file" in proc.stderr


@pytest.mark.parametrize("n", range(len(doc_blocks("python"))))
def test_docs_snippet(results, tmp_path, n):
    """Each python block of docs/analysis.md runs as it stands, next to results.h5."""
    shutil.copyfile(results, tmp_path / "results.h5")
    code = doc_blocks("python")[n]
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"snippet {n} failed:\n{code}\n{proc.stderr}"
