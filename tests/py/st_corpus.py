"""Malformed safetensors checkpoints, for tests of the loader's error messages.

BAD_FILES maps a case name to the bytes of a bad `model.safetensors`; BAD_INDEXES maps a case
name to (index.json text, {shard name: bytes}, name of the file at fault) for bad sharded
checkpoints. Each must be rejected with a one-line message naming the file at fault.
"""
import json
import struct


def st_bytes(header, data=b"", hlen=None, trunc=None):
    """A safetensors file: u64 LE header length (`hlen`, default the real one), the header
    (a dict is JSON-encoded, str/bytes are used as given), `data`, all cut to `trunc` bytes."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    blob = struct.pack("<Q", len(header) if hlen is None else hlen) + header + data
    return blob if trunc is None else blob[:trunc]


def entry(dtype="F32", shape=(1,), offsets=(0, 4), **extra):
    e = {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}
    e.update(extra)
    return e


def one(data_len=4, **kw):
    """A header with the single tensor 't'."""
    return lambda: st_bytes({"t": entry(**kw)}, bytes(data_len))


def _cases():
    z4, z8, z12 = bytes(4), bytes(8), bytes(12)
    return {
        "truncated_length": st_bytes("{}", trunc=5),
        "header_len_over_limit": st_bytes("{}", hlen=1 << 40),
        "header_len_over_file": st_bytes("{}", hlen=1000),
        "header_len_0": st_bytes("{}", hlen=0),
        "header_len_1": st_bytes("{}", hlen=1),
        "header_len_max_u64": st_bytes("{}", hlen=(1 << 64) - 1),
        "not_json": st_bytes("{not json}"),
        "json_truncated": st_bytes('{"t": {'),
        "json_array": st_bytes("[1, 2]"),
        "json_string": st_bytes('"abc"'),
        "duplicate_keys": st_bytes('{"t": %s, "t": %s}' % (json.dumps(entry()),
                                   json.dumps(entry(offsets=(4, 8)))), z8),
        "entry_not_object": st_bytes({"t": [1]}),
        "missing_dtype": st_bytes({"t": {"shape": [1], "data_offsets": [0, 4]}}, z4),
        "missing_shape": st_bytes({"t": {"dtype": "F32", "data_offsets": [0, 4]}}, z4),
        "missing_offsets": st_bytes({"t": {"dtype": "F32", "shape": [1]}}, z4),
        "unknown_dtype": one(dtype="F17")(),
        "unknown_field": one(extra=1)(),
        "shape_negative": one(shape=(-1,))(),
        "shape_float": one(shape=(1, 2.0), offsets=(0, 8), data_len=8)(),
        "shape_string": one(shape=("1",))(),
        "too_many_dims": one(shape=(1,) * 9)(),
        "shape_overflow": one(dtype="U8", shape=(1 << 32, 1 << 32))(),
        "bytes_overflow": one(dtype="F64", shape=(1 << 62,))(),
        "offsets_reversed": one(offsets=(4, 0))(),
        "offsets_out_of_buffer": one(shape=(2,), offsets=(0, 8))(),
        "offsets_too_big": st_bytes('{"t": {"dtype": "F32", "shape": [1], '
                                    '"data_offsets": [0, 99999999999999999999]}}', z4),
        "offsets_arity_1": one(offsets=(0,))(),
        "offsets_arity_3": one(offsets=(0, 4, 4))(),
        "size_mismatch": one(shape=(3,), offsets=(0, 8), data_len=8)(),
        "overlap": st_bytes({"a": entry(shape=(2,), offsets=(0, 8)),
                             "b": entry(shape=(2,), offsets=(4, 12))}, z12),
        "hole": st_bytes({"a": entry(), "b": entry(offsets=(8, 12))}, z12),
        "trailing_bytes": one(data_len=8)(),
        "non_utf8_header": st_bytes(b'{"t\xff": ' + json.dumps(entry()).encode() + b"}", z4),
        "metadata_not_string": st_bytes({"__metadata__": {"k": 1}}),
        "metadata_not_object": st_bytes({"__metadata__": ["k"]}),
        "newline_in_name": st_bytes({"a\nb": 3}),
        "nul_in_name": st_bytes('{"a\\u0000b": 3}'),
    }


BAD_FILES = _cases()

_SHARD_A = st_bytes({"a": entry()}, bytes(4))
_SHARD_B = st_bytes({"b": entry()}, bytes(4))
_SHARDS = {"s1.safetensors": _SHARD_A, "s2.safetensors": _SHARD_B}


def _index(weight_map):
    return json.dumps({"metadata": {"total_size": 8}, "weight_map": weight_map})


INDEX = "model.safetensors.index.json"
# name -> (index text, shards, the file the message must name)
BAD_INDEXES = {
    "index_parent_path": (_index({"a": "../s1.safetensors"}), _SHARDS, INDEX),
    "index_absolute_path": (_index({"a": "/etc/passwd"}), _SHARDS, INDEX),
    "index_missing_shard": (_index({"a": "s1.safetensors", "b": "s3.safetensors"}), _SHARDS,
                            INDEX),
    "index_tensor_not_in_shard": (_index({"a": "s1.safetensors", "c": "s2.safetensors"}),
                                  _SHARDS, INDEX),
    "index_wrong_shard": (_index({"a": "s2.safetensors", "b": "s2.safetensors"}), _SHARDS,
                          INDEX),
    "index_not_json": ('{"weight_map"', _SHARDS, INDEX),
    "index_empty_weight_map": (_index({}), _SHARDS, INDEX),
    "index_tensor_in_two_shards": (_index({"a": "s1.safetensors", "b": "s3.safetensors"}),
                                   {"s1.safetensors": _SHARD_A, "s3.safetensors": _SHARD_A},
                                   "s3.safetensors"),
    "index_bad_shard": (_index({"a": "s1.safetensors", "b": "s2.safetensors"}),
                        {"s1.safetensors": _SHARD_A, "s2.safetensors": BAD_FILES["hole"]},
                        "s2.safetensors"),
}

# Well-formed files (fuzzing seeds): every float dtype, scalar, empty tensor, metadata.
VALID_FILES = {
    "valid_f32": st_bytes({"w": entry(shape=(2, 2), offsets=(0, 16))}, bytes(16)),
    "valid_mixed": st_bytes({"__metadata__": {"format": "pt"},
                             "h": entry("F16", (2,), (0, 4)), "b": entry("BF16", (2,), (4, 8)),
                             "d": entry("F64", (), (8, 16)), "e": entry("I32", (0, 3), (16, 16)),
                             "i": entry("I64", (1,), (16, 24))}, bytes(24)),
    "valid_empty": st_bytes({}),
}

FUZZ_DICT = ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"F32"', '"F16"',
             '"BF16"', '"F64"', '"I32"', '"U8"', '"BOOL"', '"F8_E4M3"', '[0, 4]', '[]', '{}',
             '18446744073709551615', '4294967296', '-1', '1.5']


def write_seeds(out_dir):
    """Every case above as a file in out_dir, and a libFuzzer dictionary at out_dir.dict."""
    import os
    os.makedirs(out_dir, exist_ok=True)
    for name, blob in {**BAD_FILES, **VALID_FILES}.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(blob)
    with open(out_dir.rstrip("/") + ".dict", "w") as f:
        f.writelines(json.dumps(token) + "\n" for token in FUZZ_DICT)


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 2:
        sys.exit("usage: st_corpus.py SEED_DIR   (writes fuzzing seeds and SEED_DIR.dict)")
    write_seeds(sys.argv[1])
