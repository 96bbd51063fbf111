"""Where the tests find the shared test data (not part of the repository)."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def shared_gpt2():
    """The real GPT-2 tokenizer files: $PATCHGRID_SHARED/tokenizers/gpt2 (tests/run_all.sh sets
    it from <repo>/../shared or /work/shared). Fails, saying where it looked, when missing."""
    shared = os.environ.get("PATCHGRID_SHARED") or os.path.join(ROOT, "..", "shared")
    d = os.path.normpath(os.path.join(shared, "tokenizers", "gpt2"))
    missing = [f for f in ("vocab.json", "merges.txt") if not os.path.isfile(os.path.join(d, f))]
    if missing:
        pytest.fail(f"GPT-2 tokenizer files missing: {', '.join(missing)} not found in {d} "
                    f"(looked in $PATCHGRID_SHARED/tokenizers/gpt2, default <repo>/../shared)")
    return d
