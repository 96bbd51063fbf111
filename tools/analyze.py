#!/usr/bin/python3
"""analyze.py RESULTS.h5 [-o DIR] [--top N] [--no-plots] — a patchgrid results file in Python.

The notebook route to the same file `patchgrid report` reads (docs/analysis.md): each
experiment group is opened with xarray (engine h5netcdf), whose named dimensions come from
the file's HDF5 dimension scales, so results are indexed by name and label:

    ds = xr.open_dataset("results.h5", engine="h5netcdf", group="experiments/resid")
    ds.logit_diff.mean("pair").sel(layer=3)          # dims (pos,), coordinate pos

For every experiment and metric this prints the dimensions and the cells with the largest
|mean over pairs| (NaN-aware: pairs without a value are skipped), and writes a matplotlib
heatmap of the mean (RdBu_r centred at 0, NaN cells hatched grey, pair 0's tokens on the
position axis) to DIR/<experiment>.<metric>.png (default: RESULTS_analysis/ next to the
file).

Importable too: load_experiment(), mean_over_pairs(), top_cells(), position_labels() and
plot_mean() are what the command line uses.

Two things xarray shows that are not TransformerLens-shaped (see docs/analysis.md):
position labels of named positions are numpy bytes (b"IO"), because the file stores them as
fixed-length HDF5 strings (load_experiment() decodes them to str); and every experiment has
a `done` variable with its own `slice` dimension (the work-unit flags).
"""
import argparse
import os
import sys

import h5py
import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

METRIC_ORDER = ["logit_diff", "logit_diff_norm", "prob", "logprob", "kl"]


def _text(v):
    """An HDF5 string (bytes or str, scalar or 1-element array) as str."""
    if isinstance(v, np.ndarray):
        v = v.reshape(-1)[0] if v.size else b""
    return v.decode("utf-8", "replace") if isinstance(v, (bytes, np.bytes_)) else str(v)


def file_info(path):
    """Root facts: status ("running" | "partial" | "complete"), engine, model, pairs, and
    pair 0's tokens (decoded strings, [] without a tokenizer) and named positions."""
    with h5py.File(path, "r") as f:
        if _text(f.attrs.get("format", b"")) != "patchgrid":
            raise ValueError(f"{path}: not a patchgrid results file (no attribute format = \"patchgrid\")")
        # The run state is a root attribute in older files, the dataset /status in newer ones.
        status = f.attrs.get("status")
        if status is None and "status" in f:
            status = f["status"][...]
        length = f["pairs/length"][...]
        tokens = []
        if "pairs/clean_token_str" in f and len(length):
            tokens = [_text(t) for t in f["pairs/clean_token_str"][0, : length[0]]]
        positions = {}
        if "pairs/positions" in f:
            positions = {k: int(v[0]) for k, v in f["pairs/positions"].items() if len(v)}
        return {
            "status": _text(status) if status is not None else "",
            "engine": _text(f.attrs.get("engine", b"")),
            "model": _text(f.attrs.get("model_path", b"")),
            "n_pairs": int(len(length)),
            "length0": int(length[0]) if len(length) else 0,
            "tokens": tokens,
            "positions": positions,
            "experiments": sorted(f["experiments"].keys()),
            "baselines": {k: np.nanmean(v[...], axis=0) for k, v in f["baseline"].items()
                          if v.ndim == 2} if "baseline" in f else {},
        }


def load_experiment(path, name):
    """The experiment group as an xarray Dataset; string coordinates (named positions)
    decoded from bytes to str."""
    ds = xr.open_dataset(path, engine="h5netcdf", group=f"experiments/{name}")
    for dim in ds.coords:
        if ds[dim].dtype.kind == "S":
            ds = ds.assign_coords({dim: [v.decode("utf-8", "replace") for v in ds[dim].values]})
    return ds


def metrics(ds):
    """The metric variables of an experiment: float arrays over pair and the grid axes."""
    names = [v for v in ds.data_vars if ds[v].dims[:1] == ("pair",) and ds[v].dtype.kind == "f"]
    return sorted(names, key=lambda m: (METRIC_ORDER.index(m) if m in METRIC_ORDER else 99, m))


def mean_over_pairs(da):
    """Mean over pairs, NaN-aware (a cell's mean is over the pairs that have it)."""
    return da.mean("pair", skipna=True)


def top_cells(mean, k=10):
    """The k cells with the largest |mean| as a list of (coords dict, value), largest first."""
    s = mean.to_series().dropna()
    order = s.abs().sort_values(ascending=False, kind="stable").index[:k]
    out = []
    for idx in order:
        idx = idx if isinstance(idx, tuple) else (idx,)
        out.append((dict(zip(s.index.names, idx)), float(s.loc[idx if len(idx) > 1 else idx[0]])))
    return out


def position_labels(pos_values, info):
    """Figure labels of a pos coordinate: "3 ' Mary'" / "IO ' Mary'" (the index or name, and
    pair 0's token there when it has one)."""
    labels = []
    for p in pos_values:
        p = str(p)
        try:
            i = int(p)
            i = i + info["length0"] if i < 0 else i
        except ValueError:
            i = info["positions"].get(p, -1)
        tok = info["tokens"][i] if 0 <= i < len(info["tokens"]) else None
        labels.append(f"{p} {tok!r}" if tok is not None else p)
    return labels


def plot_mean(mean, title, info, out_path):
    """A TransformerLens-imshow-like heatmap of a mean over pairs: rows = layer, columns =
    the last dimension; with (layer, pos, head) one layer x head panel per position."""
    dims = mean.dims
    panels = [None] if len(dims) < 3 else list(mean[dims[1]].values)
    finite = np.abs(mean.values[np.isfinite(mean.values)])
    vmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    cmap = plt.get_cmap("RdBu_r").copy()
    cmap.set_bad((0, 0, 0, 0))  # NaN cells: drawn over as hatched rectangles below
    cols = dims[-1]
    ncols = mean.sizes[cols]
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(max(5.0, 0.45 * ncols * len(panels) + 2.5), 1.2 + 0.45 * mean.sizes[dims[0]] + 1.6))
    col_labels = (position_labels(mean[cols].values, info) if cols == "pos"
                  else [str(v) for v in mean[cols].values])
    panel_labels = position_labels(panels, info) if len(dims) == 3 and dims[1] == "pos" else panels
    for ax, p, plabel in zip(axes[0], panels, panel_labels):
        grid = mean if p is None else mean.sel({dims[1]: p})
        if grid.ndim == 1:
            grid = grid.expand_dims("row")
        im = ax.imshow(np.ma.masked_invalid(grid.values), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto",
                       interpolation="nearest")
        for r, c in zip(*np.nonzero(np.isnan(grid.values))):  # NaN = no value: hatched grey
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, facecolor=(0.75, 0.75, 0.75),
                                   edgecolor=(0.5, 0.5, 0.5), hatch="///", linewidth=0))
        ax.set_xticks(range(ncols), col_labels, rotation=90, fontsize=8)
        rows = grid[grid.dims[0]].values
        ax.set_yticks(range(len(rows)), [str(v) for v in rows], fontsize=8)
        ax.set_xlabel(cols)
        if p is not None:
            ax.set_title(f"{dims[1]} {plabel}", fontsize=9)
    axes[0][0].set_ylabel(dims[0] if len(dims) > 1 else "")
    fig.suptitle(title)
    bar = fig.colorbar(im, ax=list(axes[0]))
    bar.set_label(mean.name or "")
    fig.savefig(out_path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def fmt_cell(coords):
    return "  ".join(f"{k}={v}" for k, v in coords.items())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a results file of 'patchgrid run'")
    ap.add_argument("-o", "--out", help="directory for the PNGs (default RESULTS_analysis/ next to the file)")
    ap.add_argument("--top", type=int, default=10, help="cells listed per metric (default 10)")
    ap.add_argument("--no-plots", action="store_true", help="print the summaries only")
    a = ap.parse_args(argv)

    try:
        info = file_info(a.results)
    except (OSError, KeyError, ValueError) as e:
        print(f"analyze.py: {e}", file=sys.stderr)
        return 1
    out = a.out or os.path.splitext(a.results)[0] + "_analysis"
    if not a.no_plots:
        os.makedirs(out, exist_ok=True)
    print(f"{a.results}: {info['n_pairs']} pairs, status {info['status'] or '?'}, engine {info['engine']}, "
          f"model {info['model']}")
    for m, (clean, corrupted) in info["baselines"].items():
        print(f"  baseline {m}: clean {clean:.4g}, corrupted {corrupted:.4g}")
    n_png = 0
    for name in info["experiments"]:
        ds = load_experiment(a.results, name)
        at = ds.attrs
        print(f"\n== {name}: patch {at.get('patch')}, {at.get('direction')}, source {at.get('source')}")
        for m in metrics(ds):
            da = ds[m]
            print(f"-- {m}: dims {dict(da.sizes)}")
            mean = mean_over_pairs(da)
            for rank, (coords, v) in enumerate(top_cells(mean, a.top), 1):
                print(f"   {rank:3d}  {fmt_cell(coords)}  {v:.4g}")
            if not a.no_plots and mean.ndim >= 1 and np.isfinite(mean.values).any():
                path = os.path.join(out, f"{name}.{m}.png")
                plot_mean(mean, f"{name}: {m} (mean over pairs)", info, path)
                n_png += 1
        ds.close()
    if not a.no_plots:
        print(f"\nwrote {n_png} heatmaps to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
