#!/usr/bin/python3
"""ioi_pairs.py MODEL_DIR OUT_DIR — the patching benchmark's configs (see bench_patch.sh).

Eight IOI prompts "When {A} and {B} went to the store, {B} gave a drink to" (15 tokens with
BOS), answer " {A}", wrong " {B}", names varied, with two corruptions:
  late   only the second subject changes: "..., {A} gave a drink to" (TL's demo swap);
         clean and corrupted differ at one position, the 11th
  early  IOI's ABC: all three names replaced by three other names; differ from the 3rd token
and two sweeps each, metric logit_diff:
  resid  resid_pre by [layer, pos]   (12 x 15 = 180 cells per pair on GPT-2 small)
  z      z by [layer, head]          (12 x 12 = 144 cells per pair)
Writes OUT_DIR/{late,early}_{resid,z}.yaml and prints their paths. Every prompt is checked to
be 14 tokens with `$PATCHGRID tokenize` (15 with the BOS that `run` prepends), every answer
and wrong name one token.
"""
import os
import subprocess
import sys

TEMPLATE = "When {} and {} went to the store, {} gave a drink to"
PAIRS = [("Mary", "John"), ("Tom", "James"), ("Sarah", "Paul"), ("Anna", "Mark"),
         ("Lisa", "Mike"), ("Alice", "Bob"), ("Emma", "Jack"), ("Laura", "David")]
OTHER = ["Amy", "Peter", "Rose", "Chris", "Sam", "Ben", "Kate", "Dan"]  # none of PAIRS' names
SWEEPS = {"resid": "{name: resid_pre, patch: resid_pre, by: [layer, pos]}",
          "z": "{name: z, patch: z, by: [layer, head]}"}


def prompts(corruption):
    """[(clean, corrupted, answer, wrong)] of one corruption."""
    out = []
    for k, (a, b) in enumerate(PAIRS):
        clean = TEMPLATE.format(a, b, b)
        if corruption == "late":
            corrupted = TEMPLATE.format(a, b, a)
        else:
            c = [OTHER[(k + i) % len(OTHER)] for i in range(3)]
            corrupted = TEMPLATE.format(*c)
        out.append((clean, corrupted, " " + a, " " + b))
    return out


def token_counts(patchgrid, model_dir, texts):
    proc = subprocess.run([patchgrid, "tokenize", model_dir], input="\n".join(texts) + "\n",
                          capture_output=True, text=True, check=True)
    return [len(line.split()) for line in proc.stdout.splitlines()]


def yaml_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    model_dir, out_dir = (os.path.abspath(p) for p in sys.argv[1:3])
    patchgrid = os.environ["PATCHGRID"]
    os.makedirs(out_dir, exist_ok=True)
    for corruption in ("late", "early"):
        pairs = prompts(corruption)
        texts = [t for p in pairs for t in p]
        counts = token_counts(patchgrid, model_dir, texts)
        for text, n in zip(texts, counts):
            want = 1 if text.startswith(" ") else 14
            if n != want:
                sys.exit(f"ioi_pairs.py: {text!r} is {n} tokens, expected {want}")
        for sweep, exp in SWEEPS.items():
            path = os.path.join(out_dir, f"{corruption}_{sweep}.yaml")
            with open(path, "w") as f:
                f.write(f"# patching benchmark: IOI, {corruption} corruption, {sweep} sweep\n")
                f.write(f"model: {yaml_str(model_dir)}\n")
                f.write(f"output: {corruption}_{sweep}.h5\nmetrics: [logit_diff]\n")
                f.write("dataset:\n  pairs:\n")
                for clean, corrupted, answer, wrong in pairs:
                    f.write(f"    - {{clean: {yaml_str(clean)}, corrupted: {yaml_str(corrupted)}, "
                            f"answer: {yaml_str(answer)}, wrong: {yaml_str(wrong)}}}\n")
                f.write(f"experiments:\n  - {exp}\n")
            print(path)


if __name__ == "__main__":
    main()
