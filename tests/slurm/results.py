"""Helpers of the Slurm test, on the MPI tests' own functions (tests/py/test_mpi.py).

    results.py config OUT.yaml MODEL_DIR N_PAIRS SEED   a sweep config over random token pairs
    results.py compare REFERENCE.h5 OTHER.h5            exit 0 if OTHER is complete and its
                                                        results and baselines equal REFERENCE's
                                                        bitwise (NaN included)
"""
import os
import pathlib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
from test_mpi import assert_identical, results, write_config  # noqa: E402


def compare(ref_path, other_path):
    ref, other = results(ref_path), results(other_path)
    if other["status"] != b"complete":
        print(f"{other_path}: status is {other['status'].decode()}, not complete")
        return 1
    for k, v in other.items():
        if k.endswith("/done") and not v.all():
            print(f"{other_path}: {k} has {int((v == 0).sum())} units not done")
            return 1
    try:
        assert_identical(ref, other, f"{other_path} vs {ref_path}")
    except AssertionError as e:
        print(f"DIFFERENT: {e}")
        return 1
    values = sum(v.size for k, v in ref.items() if k != "status")
    print(f"identical (bitwise): {len(ref) - 1} datasets, {values} values")
    return 0


def main(argv):
    if len(argv) == 6 and argv[1] == "config":
        write_config(pathlib.Path(argv[2]), argv[3], n_pairs=int(argv[4]), seed=int(argv[5]))
        return 0
    if len(argv) == 4 and argv[1] == "compare":
        return compare(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
