"""Shared fixtures of the Python reference tests.

PATCHGRID        the binary under test (set by tests/run_all.sh)
PATCHGRID_BUILD  the build directory; generated test models are cached in its testdata/
                 (without it, in a pytest temporary directory)

Test models are random HF GPT-2 directories written by tools/make_model.py. MODELS is the
set every forward test runs on (any test with a `test_model` argument runs once per entry).
A model is regenerated when its options or make_model.py change.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MAKE_MODEL = os.path.join(ROOT, "tools", "make_model.py")

TINY = dict(layers=2, heads=4, d_model=64, vocab=1000, n_ctx=128, seed=1)


@dataclass(frozen=True)
class ModelSpec:
    options: dict                 # make_model.py options, e.g. {"d_model": 64, "untied": True}
    batch: int = 3                # the forward tests' prompt shape
    n_tokens: int = 11
    about: str = ""
    same_weights_as: str = ""     # another model made with the same shape and seed


# The model set. f16/bf16/sharded/old share TINY's shape and seed, so their weights
# are TINY's (rounded, for the 16-bit ones): test_forward checks that the loaders agree.
MODELS = {
    "tiny": ModelSpec(TINY, about="2 layers, 4 heads, d_model 64, tied, no prefix"),
    "deep12": ModelSpec(dict(layers=12, heads=4, d_model=96, vocab=512, n_ctx=64, seed=2,
                             prefix="transformer.", untied=True),
                        about="12 layers, untied, transformer. prefix"),
    "odd60": ModelSpec(dict(layers=2, heads=5, d_model=60, d_mlp=200, vocab=777, n_ctx=32, seed=3,
                            act="gelu", prefix="transformer.", eps=1e-3),
                       about="d_model 60 (d_head 12), n_inner 200, exact gelu, eps 1e-3"),
    "odd36": ModelSpec(dict(layers=3, heads=4, d_model=36, vocab=301, n_ctx=16, seed=4, untied=True),
                       about="d_model 36, d_head 9, untied without prefix"),
    "long": ModelSpec(dict(layers=2, heads=4, d_model=64, vocab=1000, n_ctx=1024, seed=5),
                      batch=1, n_tokens=512, about="n_ctx 1024, one 512-token prompt"),
    "f16": ModelSpec(dict(TINY, dtype="f16", prefix="transformer."), about="F16 storage",
                     same_weights_as="tiny"),
    "bf16": ModelSpec(dict(TINY, dtype="bf16", act="gelu"), about="BF16 storage, exact gelu",
                      same_weights_as="tiny"),
    "sharded": ModelSpec(dict(TINY, shards=3, untied=True), about="3 shards + index, untied",
                         same_weights_as="tiny"),
    "old": ModelSpec(dict(TINY, old_buffers=True, prefix="transformer."),
                     about="attn.bias / attn.masked_bias buffers", same_weights_as="tiny"),
}


@dataclass(frozen=True)
class TestModel:
    __test__ = False  # not a test class, whatever its name
    name: str
    dir: str
    spec: ModelSpec = field(repr=False)


def make_model_args(options):
    args = []
    for key, value in sorted(options.items()):
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is not False:
            args += [flag, str(value)]
    return args


@pytest.fixture(scope="session")
def model_specs():
    return MODELS


@pytest.fixture(scope="session")
def patchgrid_bin():
    path = os.environ.get("PATCHGRID")
    if not path:
        pytest.fail("PATCHGRID is not set: run through `make test` or set it to the patchgrid binary")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"PATCHGRID={path}: no executable file there (run `make` first)")
    return path


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory):
    path = os.environ.get("PATCHGRID_BUILD")
    return path if path else str(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="session")
def model_factory(build_dir):
    """get(name_or_options) -> model directory, generated once and cached under testdata/."""
    with open(MAKE_MODEL, "rb") as f:
        generator_hash = hashlib.sha256(f.read())
    testdata = os.path.join(build_dir, "testdata")
    os.makedirs(testdata, exist_ok=True)

    def get(name, options=None):
        options = MODELS[name].options if options is None else options
        key = generator_hash.copy()
        key.update(json.dumps(options, sort_keys=True).encode())
        path = os.path.join(testdata, f"{name}-{key.hexdigest()[:12]}")
        if os.path.isdir(path):
            return path
        for stale in os.listdir(testdata):  # older versions of this model
            if stale.rsplit("-", 1)[0] == name:
                shutil.rmtree(os.path.join(testdata, stale), ignore_errors=True)
        tmp = f"{path}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        proc = subprocess.run([sys.executable, MAKE_MODEL, tmp] + make_model_args(options),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.fail(f"make_model.py {name} failed:\n{proc.stderr}")
        os.rename(tmp, path)  # whole or not at all: an interrupted run leaves only a .tmp
        return path
    return get


def pytest_generate_tests(metafunc):
    if "test_model" in metafunc.fixturenames:
        metafunc.parametrize("test_model", list(MODELS), indirect=True)


@pytest.fixture
def test_model(request, model_factory):
    return TestModel(request.param, model_factory(request.param), MODELS[request.param])
