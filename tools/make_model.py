#!/usr/bin/python3
"""make_model.py OUT_DIR [options] — write a random Hugging Face-format GPT-2 model directory.

The directory holds config.json (GPT2Config keys) and model.safetensors (or shards plus
model.safetensors.index.json) in HF's GPT2LMHeadModel layout, Conv1D weights stored
[in, out]. Weights are random but scaled like a trained model's, so that activations stay
O(1), attention patterns are far from uniform and logits stay small: float32 rounding in
any two implementations then agrees to ~1e-6 relative.

Deterministic: the same seed and shape give the same float32 weights whatever the storage
dtype, key prefix, sharding or buffers (all tensors come from one generator in a fixed
order, lm_head last), so variants of one model can be checked against each other.

Uses numpy only (vectorised), so a GPT-2-small-shaped model (124M parameters) takes seconds.
"""
import argparse
import json
import math
import os
import shutil
import sys

import numpy as np

DTYPES = {  # --dtype -> (safetensors dtype, config torch_dtype, bytes per element)
    "f32": ("F32", "float32", 4),
    "f16": ("F16", "float16", 2),
    "bf16": ("BF16", "bfloat16", 2),
}


def to_bf16_bits(x):
    """float32 array -> uint16 bfloat16 bit patterns, rounded to nearest even (no NaNs here)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounding = np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))
    return ((bits + rounding) >> np.uint32(16)).astype(np.uint16)


def encode(x, dtype):
    """The little-endian bytes of float32 array x stored as dtype ('f32'|'f16'|'bf16')."""
    if dtype == "f32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if dtype == "f16":
        return np.ascontiguousarray(x).astype("<f2").tobytes()
    return to_bf16_bits(x).astype("<u2").tobytes()


def random_weights(a):
    """Yields (HF name without prefix, float32 array) in file order.

    Scales: projections ~ N(0, s^2/fan_in) with s chosen so q.k/sqrt(d_head) has a
    standard deviation of about 2 (peaked but not one-hot attention), each block adds
    O(0.5) to the residual, and logits have a standard deviation of about 2.
    """
    rng = np.random.default_rng(a.seed)
    C, D, V, P = a.d_model, a.d_mlp, a.vocab, a.n_ctx

    def normal(shape, std, mean=0.0):
        x = rng.standard_normal(shape, dtype=np.float32)
        x *= np.float32(std)
        if mean:
            x += np.float32(mean)
        return x

    yield "wte.weight", normal((V, C), 2.0 / math.sqrt(C))
    yield "wpe.weight", normal((P, C), 1.0 / math.sqrt(C))
    for l in range(a.layers):
        h = f"h.{l}."
        yield h + "ln_1.weight", normal((C,), 0.1, 1.0)
        yield h + "ln_1.bias", normal((C,), 0.05)
        qkv = np.concatenate([normal((C, C), 1.2 / math.sqrt(C)),   # W_Q
                              normal((C, C), 1.2 / math.sqrt(C)),   # W_K
                              normal((C, C), 1.0 / math.sqrt(C))],  # W_V
                             axis=1)
        yield h + "attn.c_attn.weight", qkv                          # [C, 3C]
        yield h + "attn.c_attn.bias", normal((3 * C,), 0.1)
        yield h + "attn.c_proj.weight", normal((C, C), 0.5 / math.sqrt(C))
        yield h + "attn.c_proj.bias", normal((C,), 0.05)
        yield h + "ln_2.weight", normal((C,), 0.1, 1.0)
        yield h + "ln_2.bias", normal((C,), 0.05)
        yield h + "mlp.c_fc.weight", normal((C, D), 1.0 / math.sqrt(C))
        yield h + "mlp.c_fc.bias", normal((D,), 0.1)
        yield h + "mlp.c_proj.weight", normal((D, C), 0.8 / math.sqrt(D))
        yield h + "mlp.c_proj.bias", normal((C,), 0.05)
    yield "ln_f.weight", normal((C,), 0.1, 1.0)
    yield "ln_f.bias", normal((C,), 0.05)
    if a.untied:
        yield "lm_head.weight", normal((V, C), 2.0 / math.sqrt(C))


def old_buffers(a):
    """The non-persistent buffers that old GPT-2 checkpoints carry in every block."""
    P = a.n_ctx
    for l in range(a.layers):
        yield f"h.{l}.attn.bias", np.tril(np.ones((P, P), np.float32)).reshape(1, 1, P, P)
        yield f"h.{l}.attn.masked_bias", np.array(-1e4, np.float32)


def write_safetensors(path, tensors, dtype):
    """Writes [(name, float32 array)] as one safetensors file with tensors stored as dtype."""
    st_dtype = DTYPES[dtype][0]
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, x in tensors:
        end = offset + x.size * DTYPES[dtype][2]
        header[name] = {"dtype": st_dtype, "shape": list(x.shape), "data_offsets": [offset, end]}
        offset = end
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # as the reference writer: data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little"))
        f.write(blob)
        for _, x in tensors:
            f.write(encode(x, dtype))
    return offset


def split_shards(tensors, n):
    """Splits the tensor list, in order, into n non-empty runs of roughly equal size."""
    if not 1 <= n <= len(tensors):
        sys.exit(f"make_model.py: --shards must be between 1 and {len(tensors)}")
    total = sum(x.size for _, x in tensors)
    shards, current, done = [], [], 0
    for i, (name, x) in enumerate(tensors):
        current.append((name, x))
        done += x.size
        left = len(tensors) - i - 1
        want = n - len(shards) - 1  # shards still to start after this one
        if want > 0 and (done >= total * (len(shards) + 1) / n or left == want):
            shards.append(current)
            current = []
    shards.append(current)
    assert len(shards) == n and all(shards)
    return shards


def write_model(a):
    tensors = list(random_weights(a))
    n_params = sum(x.size for _, x in tensors)
    if a.old_buffers:
        # HF's old files list the buffers among each block's weights; order does not matter.
        tensors += list(old_buffers(a))
    tensors = [(name if name == "lm_head.weight" else a.prefix + name, x) for name, x in tensors]

    os.makedirs(a.out_dir, exist_ok=True)
    config = {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": a.layers,
        "n_head": a.heads,
        "n_embd": a.d_model,
        "n_inner": None if a.d_mlp == 4 * a.d_model else a.d_mlp,
        "vocab_size": a.vocab,
        "n_positions": a.n_ctx,
        "n_ctx": a.n_ctx,
        "layer_norm_epsilon": a.eps,
        "activation_function": a.act,
        "tie_word_embeddings": not a.untied,
        "bos_token_id": a.vocab - 1,
        "eos_token_id": a.vocab - 1,
        "torch_dtype": DTYPES[a.dtype][1],
    }
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")

    if a.shards == 1:
        write_safetensors(os.path.join(a.out_dir, "model.safetensors"), tensors, a.dtype)
    else:
        weight_map, total_size = {}, 0
        for i, shard in enumerate(split_shards(tensors, a.shards)):
            fname = f"model-{i + 1:05d}-of-{a.shards:05d}.safetensors"
            total_size += write_safetensors(os.path.join(a.out_dir, fname), shard, a.dtype)
            weight_map.update((name, fname) for name, _ in shard)
        index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
        with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")

    if a.tokenizer:
        for fname in ("vocab.json", "merges.txt"):
            shutil.copyfile(os.path.join(a.tokenizer, fname), os.path.join(a.out_dir, fname))
    print(f"{a.out_dir}: {n_params} parameters, {a.layers} layers, d_model {a.d_model}, "
          f"{a.heads} heads, vocab {a.vocab}, n_ctx {a.n_ctx}, {a.dtype}")


def parse_args(argv):
    p = argparse.ArgumentParser(description="Write a random HF-format GPT-2 model directory.")
    p.add_argument("out_dir")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--d-mlp", type=int, help="default 4 * d_model (config n_inner: null)")
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--n-ctx", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eps", type=float, default=1e-5)
    p.add_argument("--act", choices=["gelu_new", "gelu"], default="gelu_new")
    p.add_argument("--prefix", choices=["", "transformer."], default="",
                   help="key prefix of the transformer weights (lm_head.weight never has one)")
    p.add_argument("--untied", action="store_true", help="separate lm_head.weight")
    p.add_argument("--dtype", choices=list(DTYPES), default="f32", help="stored dtype")
    p.add_argument("--shards", type=int, default=1)
    p.add_argument("--old-buffers", action="store_true",
                   help="also store h.{l}.attn.bias and h.{l}.attn.masked_bias")
    p.add_argument("--tokenizer", metavar="DIR", help="copy vocab.json and merges.txt from DIR")
    a = p.parse_args(argv)
    if a.d_mlp is None:
        a.d_mlp = 4 * a.d_model
    for name in ("layers", "heads", "d_model", "d_mlp", "vocab", "n_ctx"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if a.d_model % a.heads:
        p.error(f"--d-model {a.d_model} is not a multiple of --heads {a.heads}")
    return a


if __name__ == "__main__":
    write_model(parse_args(sys.argv[1:]))
