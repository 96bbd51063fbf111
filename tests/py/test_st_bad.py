"""Hostile and malformed safetensors checkpoints through the CLI: `patchgrid info DIR` must
exit 1 with exactly one line on stderr naming the bad file, and never trip a sanitizer.

The corpus is in st_corpus.py (the C unit test tests/unit/test_st.c has its twin at the
loader level, with the exact phrases).
"""
import json
import os
import subprocess

import pytest

from st_corpus import BAD_FILES, BAD_INDEXES

PATCHGRID = os.environ.get("PATCHGRID")
if not PATCHGRID:
    pytest.fail("PATCHGRID is not set: run through `make test` or set it to the patchgrid binary",
                pytrace=False)

CONFIG = {"model_type": "gpt2", "n_layer": 1, "n_head": 1, "n_embd": 4, "vocab_size": 8,
          "n_positions": 8}


def model_dir(tmp_path, files):
    """tmp_path/model with config.json and `files` ({name: bytes or str})."""
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(CONFIG))
    for name, content in files.items():
        (d / name).write_bytes(content.encode() if isinstance(content, str) else content)
    return d


def expect_one_line_error(d, bad_file):
    proc = subprocess.run([PATCHGRID, "info", str(d)], capture_output=True, timeout=120)
    err = proc.stderr.decode("utf-8", errors="replace")
    assert "Sanitizer" not in err and "runtime error" not in err, err
    assert proc.returncode == 1, f"exit {proc.returncode}, stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"stderr is not one line: {err!r}"
    assert str(d / bad_file) in lines[0], f"{lines[0]!r} does not name {d / bad_file}"


def test_corpus_size():
    assert len(BAD_FILES) + len(BAD_INDEXES) >= 20


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file(tmp_path, case):
    d = model_dir(tmp_path, {"model.safetensors": BAD_FILES[case]})
    expect_one_line_error(d, "model.safetensors")


@pytest.mark.parametrize("case", sorted(BAD_INDEXES))
def test_bad_index(tmp_path, case):
    index, shards, bad = BAD_INDEXES[case]
    d = model_dir(tmp_path, dict(shards, **{"model.safetensors.index.json": index}))
    expect_one_line_error(d, bad)


def test_empty_file(tmp_path):
    expect_one_line_error(model_dir(tmp_path, {"model.safetensors": b""}), "model.safetensors")


def test_model_is_a_directory(tmp_path):
    d = model_dir(tmp_path, {})
    (d / "model.safetensors").mkdir()
    expect_one_line_error(d, "model.safetensors")


def test_model_is_a_fifo(tmp_path):
    d = model_dir(tmp_path, {})
    os.mkfifo(d / "model.safetensors")
    expect_one_line_error(d, "model.safetensors")


def test_no_weights(tmp_path):
    expect_one_line_error(model_dir(tmp_path, {}), "")  # names the directory itself
