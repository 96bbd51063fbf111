#!/usr/bin/python3
"""torch_forward.py MODEL_DIR BATCH TOKENS [--reps N] — time the PyTorch reference forward.

The plain torch.nn.functional GPT-2 forward of tests/py/gpt2_ref.py (no hooks, full logits at
every position, as TransformerLens computes them), one thread, no autograd. Prints
`torch B=.. T=.. seconds=.. tokens/s=..` with the median time of N runs after one warm-up.
"""
import argparse
import os
import statistics
import sys
import time

# torch.set_num_threads does not reach the BLAS torch calls (Debian's torch links OpenBLAS,
# which runs its own thread pool): pin it too, before the library loads.
os.environ.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from gpt2_ref import GPT2Ref  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir")
    p.add_argument("batch", type=int)
    p.add_argument("tokens", type=int)
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(1)
    model = GPT2Ref(a.model_dir)
    tokens = torch.randint(0, model.d_vocab, (a.batch, a.tokens), generator=torch.Generator().manual_seed(0))
    times = []
    with torch.no_grad():
        model.forward_functional(tokens)  # warm-up
        for _ in range(a.reps):
            start = time.perf_counter()
            model.forward_functional(tokens)
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(f"torch B={a.batch} T={a.tokens} seconds={seconds:.4f} tokens/s={a.batch * a.tokens / seconds:.1f}")


if __name__ == "__main__":
    main()
