"""Bad experiment configs through the CLI: `patchgrid run CONFIG` must exit 1 with exactly one
line on stderr that starts with `<config path>:<line>:<col>: ` (or `<jsonl path>:<line>: `),
pointing at the offending YAML node or JSON line, and must write nothing: no output file, no
stray file beside it, and an output file that was already there stays byte for byte the same.

The model is a real HF directory (tools/make_model.py: 2 layers, 4 heads, GPT-2's vocabulary and
tokenizer, n_ctx 64), so text is tokenized by the real tokenizer. tests/unit/test_cfg.c has the
full corpus of bad configs at the library level; this file checks what a user sees. The valid
configs of tests/data/configs are run too, as the control that a good config does get through.

Expected locations are found by searching the config text for the bad value (`at="..."`), so
they do not depend on the code under test.
"""
import os
import re
import shutil
import subprocess

import pytest

from shared_data import shared_gpt2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "configs")
PATCHGRID = os.environ.get("PATCHGRID")
if not PATCHGRID:
    pytest.fail("PATCHGRID is not set: run through `make test` or set it to the patchgrid binary",
                pytrace=False)


@pytest.fixture(scope="session")
def model_dir(model_factory):
    return model_factory("cfg-gpt2tok", dict(layers=2, heads=4, d_model=64, vocab=50257,
                                             n_ctx=64, seed=7, tokenizer=shared_gpt2()))


def location(text, needle, nth=0):
    """1-based (line, column) of the nth occurrence of needle in text."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


PAIR_IDS = ("    - {clean_tokens: [50256, 40, 588], corrupted_tokens: [50256, 40, 5465],"
            " answer_token: 13, wrong_token: 11}\n")
PAIRS = "dataset:\n  pairs:\n" + PAIR_IDS
EXP = "experiments:\n  - {name: a, patch: resid_pre}\n"
IOI = ("    - clean: When Mary and John went to the store, John gave a drink to\n"
       "      corrupted: When Mary and John went to the store, Mary gave a drink to\n")

# id: (body of the config after its `model:` and `output:` lines, JSON Lines file or None,
#      where: at=TEXT (the node that starts with TEXT, nth=N for a later one), jsonl_line=N,
#      or pair=N (the Nth `- ` item of a block list), and a phrase of the message)
CASES = {
    "unknown_key": ("modle: x\n" + PAIRS + EXP, None, dict(at="modle"), "unknown key 'modle'"),
    "quoted_int": ('seed: "3"\n' + PAIRS + EXP, None, dict(at='"3"'),
                   "'seed' must be an integer"),
    "float_for_int": ("units_per_pair: 1e3\n" + PAIRS + EXP, None, dict(at="1e3"),
                      "must be an integer"),
    "yes_for_bool": ("prepend_bos: yes\n" + PAIRS + EXP, None, dict(at="yes"),
                     "must be true or false"),
    "list_for_string": (PAIRS + "experiments:\n  - {name: [a], patch: z}\n", None,
                        dict(at="[a]"), "'name' must be a string"),
    "yaml_syntax": (PAIRS + "experiments: [{name: a, patch: z}\n", None,
                    dict(at="experiments", line_only=True), "did not find expected"),
    "unknown_patch": (PAIRS + "experiments:\n  - {name: a, patch: resid}\n", None,
                      dict(at="resid}"), "unknown patch kind 'resid'"),
    "heads_on_resid": (PAIRS + "experiments:\n  - {name: a, patch: mlp_out, heads: [1]}\n", None,
                       dict(at="heads"), "'heads' is only for head patches"),
    "layer_out_of_range": (PAIRS + "experiments:\n  - {name: a, patch: resid_pre, layers: [0, 2]}\n",
                           None, dict(at="2]"), "layer 2 is out of range: the model has 2 layers"),
    "layer_range_out_of_range": (PAIRS + "experiments:\n  - name: a\n    patch: attn_out\n"
                                 "    layers: {from: 0, to: 5}\n", None, dict(at="5}"),
                                 "layer 5 is out of range"),
    "head_out_of_range": (PAIRS + "experiments:\n  - {name: a, patch: z, heads: [4]}\n", None,
                          dict(at="4]"), "head 4 is out of range: the model has 4 heads (0..3)"),
    "token_id_out_of_range": ("dataset:\n  pairs:\n    - {clean_tokens: [50256, 50257],"
                              " corrupted_tokens: [1, 2], answer_token: 1, wrong_token: 2}\n" + EXP,
                              None, dict(at="[50256, 50257]"),
                              "token id 50257 in 'clean_tokens' is out of range"),
    "length_mismatch_text": ("dataset:\n  pairs:\n    - clean: When Mary and John\n"
                             "      corrupted: When Mary and Johnathan\n"
                             "      answer: ' Mary'\n      wrong: ' John'\n" + EXP, None,
                             dict(at="clean:"),
                             "pair 1: clean prompt has 5 tokens but corrupted has 6; they must match"),
    "length_mismatch_ids": ("dataset:\n  pairs:\n    - {clean_tokens: [1, 2, 3],"
                            " corrupted_tokens: [1, 2], answer_token: 1, wrong_token: 2}\n" + EXP,
                            None, dict(at="{clean_tokens"), "clean prompt has 3 tokens but corrupted has 2"),
    "multi_token_answer": ("dataset:\n  pairs:\n" + IOI + '      answer: " Mary Ann"\n'
                           '      wrong: " John"\n' + EXP, None, dict(at='" Mary Ann"'),
                           'answer " Mary Ann" is 2 tokens; an answer must be a single token'),
    "longer_than_context": ("dataset:\n  pairs:\n    - clean: " + "a " * 70 + "\n      corrupted: "
                            + "b " * 70 + "\n      answer_token: 1\n      wrong_token: 2\n" + EXP,
                            None, dict(at="a a a"), "more than the model's context of 64"),
    "named_position_missing": ("dataset:\n  pairs:\n" + IOI + "      answer: ' Mary'\n"
                               "      wrong: ' John'\n      positions: {IO: 2}\n"
                               + IOI + "      answer: ' Mary'\n      wrong: ' John'\n"
                               "experiments:\n  - {name: a, patch: resid_pre, positions: [IO]}\n",
                               None, dict(at="clean:", nth=1), "pair 2 has no position 'IO'"),
    "mean_needs_equal_lengths": ("dataset:\n  pairs:\n" + PAIR_IDS +
                                 "    - {clean_tokens: [1], corrupted_tokens: [2], answer_token: 1,"
                                 " wrong_token: 2}\n"
                                 "experiments:\n  - {name: a, patch: resid_pre, source: mean}\n",
                                 None, dict(at="{clean_tokens", nth=1), "source: mean"),
    "missing_dataset_file": ("dataset: {file: nope.jsonl}\n" + EXP, None, dict(at="nope.jsonl"),
                             "cannot open dataset file"),
    "empty_dataset": ("dataset: {pairs: []}\n" + EXP, None, dict(at="[]"),
                      "'pairs' must not be an empty list"),
    "bad_jsonl_line": ("dataset: {file: p.jsonl}\n" + EXP,
                       '{"clean_tokens": [1], "corrupted_tokens": [2], "answer_token": 3,'
                       ' "wrong_token": 4}\n{"clean_tokens": [1, 2\n', dict(jsonl_line=2),
                       "not valid JSON"),
    "jsonl_missing_key": ("dataset: {file: p.jsonl}\n" + EXP,
                          '\n{"clean_tokens": [1], "corrupted_tokens": [2], "answer_token": 3}\n',
                          dict(jsonl_line=2), 'missing key "wrong"'),
    "jsonl_answer_text_multi_token": ("dataset: {file: p.jsonl}\n" + EXP,
                                      '{"clean": "a b", "corrupted": "a c", "answer": " Mary Ann",'
                                      ' "wrong_token": 4}\n', dict(jsonl_line=1),
                                      'answer " Mary Ann" is 2 tokens'),
    "missing_model_dir": (PAIRS + EXP, None, dict(model="nodir", at="nodir"),
                          "model directory '"),
}


def write_config(tmp_path, model_dir, case):
    body, jsonl, where, _ = CASES[case]
    text = f"model: {where.get('model', model_dir)}\noutput: out.h5\n{body}"
    path = tmp_path / "c.yaml"
    path.write_text(text)
    if jsonl is not None:
        (tmp_path / "p.jsonl").write_text(jsonl)
    return path, text


def expected_prefix(tmp_path, path, text, where):
    if "jsonl_line" in where:
        return f"{tmp_path / 'p.jsonl'}:{where['jsonl_line']}: "
    line, col = location(text, where["at"], where.get("nth", 0))
    if where.get("line_only"):  # a syntax error: the line after the bad one, any column
        return re.compile(re.escape(f"{path}:") + r"\d+:\d+: ")
    return f"{path}:{line}:{col}: "


def run(config):
    proc = subprocess.run([PATCHGRID, "run", str(config)], capture_output=True, timeout=300,
                          cwd=os.path.dirname(config))
    return proc.returncode, proc.stderr.decode("utf-8", errors="replace"), proc.stdout


def test_corpus_covers_the_brief():
    for case in ("unknown_key", "quoted_int", "layer_out_of_range", "head_out_of_range",
                 "length_mismatch_text", "multi_token_answer", "missing_dataset_file",
                 "bad_jsonl_line", "missing_model_dir"):
        assert case in CASES


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("existing_output", [False, True], ids=["no-output", "existing-output"])
def test_bad_config(tmp_path, model_dir, case, existing_output):
    path, text = write_config(tmp_path, model_dir, case)
    out = tmp_path / "out.h5"
    before = os.urandom(4096) if existing_output else None
    if existing_output:
        out.write_bytes(before)
    listing = sorted(os.listdir(tmp_path))

    rc, err, _ = run(path)

    assert "Sanitizer" not in err and "runtime error" not in err, err
    assert rc == 1, f"exit {rc}, stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n"), f"stderr is not one line: {err!r}"
    prefix = expected_prefix(tmp_path, path, text, CASES[case][2])
    if isinstance(prefix, str):
        assert lines[0].startswith(prefix), f"{lines[0]!r} does not start with {prefix!r}"
    else:
        assert prefix.match(lines[0]), f"{lines[0]!r} does not match {prefix.pattern!r}"
    assert CASES[case][3] in lines[0], f"{lines[0]!r} does not say {CASES[case][3]!r}"
    assert sorted(os.listdir(tmp_path)) == listing, "the run left files behind"
    if existing_output:
        assert out.read_bytes() == before, "the existing output file was modified"
    else:
        assert not out.exists()


def test_unreadable_config(tmp_path):
    path = tmp_path / "missing.yaml"
    rc, err, _ = run(path)
    assert rc == 1
    assert err == f"{path}: cannot read: No such file or directory\n"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["ids_all_kinds", "jsonl_pairs", "text_ioi"])
def test_valid_data_configs_run(tmp_path, model_dir, name):
    """The control: the valid configs of tests/data/configs, pointed at the model, get through."""
    for f in os.listdir(DATA):
        if f.startswith(name):
            shutil.copy(os.path.join(DATA, f), tmp_path / f)
    path = tmp_path / f"{name}.yaml"
    text = path.read_text()
    assert "\nmodel: .\n" in text
    path.write_text(text.replace("\nmodel: .\n", f"\nmodel: {model_dir}\n"))
    rc, err, _ = run(path)
    assert rc == 0, err
    out = tmp_path / ("jsonl_pairs_out.h5" if name == "jsonl_pairs" else f"{name}.h5")
    assert out.is_file()
