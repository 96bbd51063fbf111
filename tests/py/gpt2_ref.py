"""gpt2_ref.py — an independent PyTorch GPT-2 forward pass with TransformerLens hook points.

Written from the math, not from patchgrid's C code. Reads a Hugging Face GPT-2 directory
(config.json + model.safetensors or shards; F32/F16/BF16, keys with or without
`transformer.`) with its own safetensors reader. Semantics are HF's, i.e. TransformerLens's
`from_pretrained_no_processing`: no weight folding or centering.

Two forward passes over the same weights:
  GPT2Ref.forward            TL-style: einsum over TL-shaped weights, a hook at every TL hook
                             point; hooks may read (run_with_cache) or overwrite (run_with_hooks).
  GPT2Ref.forward_functional plain torch.nn.functional on the raw HF (Conv1D) weights, no hooks;
                             the cross-check of the first, and the fast one for benchmarks.

A hook is TL's: fn(activation, hook) -> new activation or None (keep), hook.name is the name.
"""
import json
import math
import os
from collections import namedtuple

import numpy as np
import torch
import torch.nn.functional as F

Hook = namedtuple("Hook", "name")


def read_safetensors(path):
    """{name: float32 numpy array} of one .safetensors file (F32, F16 and BF16 only)."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    n = int.from_bytes(bytes(raw[:8]), "little")
    header = json.loads(bytes(raw[8:8 + n]))
    header.pop("__metadata__", None)
    data = raw[8 + n:]
    out = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        buf, shape = data[begin:end], tuple(t["shape"])
        if t["dtype"] == "F32":
            x = buf.view("<f4").astype(np.float32)
        elif t["dtype"] == "F16":
            x = buf.view("<f2").astype(np.float32)
        elif t["dtype"] == "BF16":  # bfloat16 is the upper half of a float32
            x = (buf.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {t['dtype']} not supported")
        out[name] = x.reshape(shape)
    return out


def read_hf_weights(model_dir):
    """{HF name without `transformer.`: float32 numpy array} from one file or an index."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for fname in files:
        for name, x in read_safetensors(os.path.join(model_dir, fname)).items():
            weights[name.removeprefix("transformer.")] = x
    return weights


def hook_names(n_layers):
    """Every hook TL's HookedTransformer runs for GPT-2, in execution order."""
    block = ["hook_resid_pre", "ln1.hook_scale", "ln1.hook_normalized",
             "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores",
             "attn.hook_pattern", "attn.hook_z", "hook_attn_out", "hook_resid_mid",
             "ln2.hook_scale", "ln2.hook_normalized", "mlp.hook_pre", "mlp.hook_post",
             "hook_mlp_out", "hook_resid_post"]
    return (["hook_embed", "hook_pos_embed"]
            + [f"blocks.{l}.{h}" for l in range(n_layers) for h in block]
            + ["ln_final.hook_scale", "ln_final.hook_normalized"])


def name_matcher(spec):
    """TL's ways of naming hooks: a name, a list of names, or a predicate on the name."""
    if isinstance(spec, str):
        return lambda name: name == spec
    if callable(spec):
        return spec
    names = set(spec)
    return lambda name: name in names


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


class GPT2Ref:
    def __init__(self, model_dir, dtype=torch.float32):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.n_layers, self.n_heads = cfg["n_layer"], cfg["n_head"]
        self.d_model, self.d_vocab = cfg["n_embd"], cfg["vocab_size"]
        self.d_head = self.d_model // self.n_heads
        self.d_mlp = cfg.get("n_inner") or 4 * self.d_model
        self.n_ctx = cfg["n_positions"]
        self.eps = cfg["layer_norm_epsilon"]
        self.act_name = cfg["activation_function"]
        self.act = {"gelu_new": gelu_new, "gelu": gelu_erf}[self.act_name]
        self.tied = cfg.get("tie_word_embeddings", True)
        self.dtype = dtype
        self.hf = {k: torch.from_numpy(v).to(dtype) for k, v in read_hf_weights(model_dir).items()}
        if self.tied:
            self.hf["lm_head.weight"] = self.hf["wte.weight"]
        self.blocks = [self._tl_block(l) for l in range(self.n_layers)]

    def _tl_block(self, l):
        """Block l's weights in TL's shapes (W_Q [head, d_model, d_head], W_O [head, d_head, d_model])."""
        w = lambda name: self.hf[f"h.{l}.{name}"]
        C, H, Dh = self.d_model, self.n_heads, self.d_head
        W_Q, W_K, W_V = w("attn.c_attn.weight").split(C, dim=1)       # each [C, H*Dh]
        b_Q, b_K, b_V = w("attn.c_attn.bias").split(C)
        heads_in = lambda W: W.reshape(C, H, Dh).permute(1, 0, 2)     # [H, C, Dh]
        return dict(ln1_w=w("ln_1.weight"), ln1_b=w("ln_1.bias"),
                    W_Q=heads_in(W_Q), W_K=heads_in(W_K), W_V=heads_in(W_V),
                    b_Q=b_Q.reshape(H, Dh), b_K=b_K.reshape(H, Dh), b_V=b_V.reshape(H, Dh),
                    W_O=w("attn.c_proj.weight").reshape(H, Dh, C), b_O=w("attn.c_proj.bias"),
                    ln2_w=w("ln_2.weight"), ln2_b=w("ln_2.bias"),
                    W_in=w("mlp.c_fc.weight"), b_in=w("mlp.c_fc.bias"),
                    W_out=w("mlp.c_proj.weight"), b_out=w("mlp.c_proj.bias"))

    def _tokens(self, tokens):
        tokens = torch.as_tensor(tokens, dtype=torch.long)
        if tokens.dim() == 1:
            tokens = tokens[None]
        assert tokens.shape[1] <= self.n_ctx, f"{tokens.shape[1]} tokens > n_ctx {self.n_ctx}"
        assert 0 <= int(tokens.min()) and int(tokens.max()) < self.d_vocab, "token id out of range"
        return tokens

    def forward(self, tokens, hooks=()):
        """Logits [batch, pos, vocab]; hooks = [(names, fn)] (see name_matcher), run in order."""
        tokens = self._tokens(tokens)
        hooks = [(name_matcher(names), fn) for names, fn in hooks]

        def hook(name, x):
            for match, fn in hooks:
                if match(name):
                    y = fn(x, Hook(name))
                    x = x if y is None else y
            return x

        def layer_norm(prefix, x, w, b):
            x = x - x.mean(-1, keepdim=True)
            scale = hook(prefix + "hook_scale", (x.pow(2).mean(-1, keepdim=True) + self.eps).sqrt())
            return hook(prefix + "hook_normalized", x / scale * w + b)

        batch, n_pos = tokens.shape
        embed = hook("hook_embed", self.hf["wte.weight"][tokens])
        pos_embed = hook("hook_pos_embed", self.hf["wpe.weight"][:n_pos].repeat(batch, 1, 1))
        resid = embed + pos_embed
        future = torch.ones(n_pos, n_pos, dtype=torch.bool).triu(1)  # [query, key]: key > query
        for l, w in enumerate(self.blocks):
            p = f"blocks.{l}."
            resid = hook(p + "hook_resid_pre", resid)
            x = layer_norm(p + "ln1.", resid, w["ln1_w"], w["ln1_b"])
            q = hook(p + "attn.hook_q", torch.einsum("bpc,hcd->bphd", x, w["W_Q"]) + w["b_Q"])
            k = hook(p + "attn.hook_k", torch.einsum("bpc,hcd->bphd", x, w["W_K"]) + w["b_K"])
            v = hook(p + "attn.hook_v", torch.einsum("bpc,hcd->bphd", x, w["W_V"]) + w["b_V"])
            scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(self.d_head)
            scores = hook(p + "attn.hook_attn_scores", scores.masked_fill(future, -math.inf))
            pattern = F.softmax(scores, dim=-1)
            pattern = hook(p + "attn.hook_pattern", torch.where(pattern.isnan(), torch.zeros_like(pattern), pattern))
            z = hook(p + "attn.hook_z", torch.einsum("bhqk,bkhd->bqhd", pattern, v))
            attn_out = hook(p + "hook_attn_out", torch.einsum("bqhd,hdc->bqc", z, w["W_O"]) + w["b_O"])
            resid = hook(p + "hook_resid_mid", resid + attn_out)
            x = layer_norm(p + "ln2.", resid, w["ln2_w"], w["ln2_b"])
            pre = hook(p + "mlp.hook_pre", x @ w["W_in"] + w["b_in"])
            post = hook(p + "mlp.hook_post", self.act(pre))
            mlp_out = hook(p + "hook_mlp_out", post @ w["W_out"] + w["b_out"])
            resid = hook(p + "hook_resid_post", resid + mlp_out)
        x = layer_norm("ln_final.", resid, self.hf["ln_f.weight"], self.hf["ln_f.bias"])
        return x @ self.hf["lm_head.weight"].T

    def run_with_hooks(self, tokens, fwd_hooks=()):
        """TL's run_with_hooks: fwd_hooks = [(names, fn(act, hook))]."""
        return self.forward(tokens, fwd_hooks)

    def run_with_cache(self, tokens, names_filter=None, fwd_hooks=()):
        """TL's run_with_cache: (logits, {name: activation}); the cache sees activations after fwd_hooks."""
        cache = {}

        def save(x, hook):
            cache[hook.name] = x.detach()
        wanted = (lambda name: True) if names_filter is None else names_filter
        logits = self.forward(tokens, list(fwd_hooks) + [(wanted, save)])
        return logits, cache

    def forward_functional(self, tokens):
        """Logits from torch.nn.functional on the raw HF weights: the independent cross-check."""
        tokens = self._tokens(tokens)
        hf, B, T = self.hf, tokens.shape[0], tokens.shape[1]
        C, H, Dh = self.d_model, self.n_heads, self.d_head
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = hf["wte.weight"][tokens] + hf["wpe.weight"][:T]
        for l in range(self.n_layers):
            w = lambda name: hf[f"h.{l}.{name}"]
            h = F.layer_norm(x, (C,), w("ln_1.weight"), w("ln_1.bias"), self.eps)
            qkv = torch.addmm(w("attn.c_attn.bias"), h.reshape(B * T, C), w("attn.c_attn.weight"))
            q, k, v = (t.reshape(B, T, H, Dh).transpose(1, 2) for t in qkv.split(C, dim=1))
            att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(Dh))
            att = F.softmax(att.masked_fill(future, -math.inf), dim=-1)
            y = (att @ v).transpose(1, 2).reshape(B * T, C)
            x = x + torch.addmm(w("attn.c_proj.bias"), y, w("attn.c_proj.weight")).reshape(B, T, C)
            h = F.layer_norm(x, (C,), w("ln_2.weight"), w("ln_2.bias"), self.eps)
            h = torch.addmm(w("mlp.c_fc.bias"), h.reshape(B * T, C), w("mlp.c_fc.weight"))
            h = F.gelu(h, approximate="tanh" if self.act_name == "gelu_new" else "none")
            x = x + torch.addmm(w("mlp.c_proj.bias"), h, w("mlp.c_proj.weight")).reshape(B, T, C)
        x = F.layer_norm(x, (C,), hf["ln_f.weight"], hf["ln_f.bias"], self.eps)
        return F.linear(x, hf["lm_head.weight"])
