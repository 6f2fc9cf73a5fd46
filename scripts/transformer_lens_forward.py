#!/usr/bin/env python3
"""Logits of a TransformerLens HookedTransformer state dict, computed with numpy alone.

Reads a `bitgrok export` (MODEL.safetensors and MODEL.config.json) and writes the last-position
logits of every pair [a, b, =] (a-major, float64, shape [p*p, d_vocab_out]) to OUT as .npy.
It follows TransformerLens's forward for a one-layer model without LayerNorm: embeddings,
attention with scores q.k / sqrt(d_head) and a causal mask (unless attention_dir is
"bidirectional"), residual, ReLU MLP, residual, unembedding, every bias included.

usage: transformer_lens_forward.py MODEL.safetensors OUT.npy
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def residuals(w, cfg):
    """Float64 weights -> the residual stream at the last position before the MLP (x1), the MLP's
    pre-activations there, and the residual stream after it (x2)."""
    p = cfg["d_vocab"] - 1
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    tokens = np.stack([a.ravel(), b.ravel(), np.full(p * p, p)], axis=1)  # [n, 3]
    x = w["embed.W_E"][tokens] + w["pos_embed.W_pos"][None]  # [n, 3, D]
    attn = "blocks.0.attn."
    q = np.einsum("npd,hde->nhpe", x, w[attn + "W_Q"]) + w[attn + "b_Q"][None, :, None]
    k = np.einsum("npd,hde->nhpe", x, w[attn + "W_K"]) + w[attn + "b_K"][None, :, None]
    v = np.einsum("npd,hde->nhpe", x, w[attn + "W_V"]) + w[attn + "b_V"][None, :, None]
    scores = np.einsum("nhqe,nhke->nhqk", q, k) / np.sqrt(cfg["d_head"])
    if cfg.get("attention_dir", "causal") == "causal":
        scores = np.where(np.tril(np.ones((3, 3), bool)), scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    pattern = np.exp(scores)
    pattern /= pattern.sum(axis=-1, keepdims=True)
    z = np.einsum("nhqk,nhke->nhqe", pattern, v)
    x = x + np.einsum("nhqe,hed->nqd", z, w[attn + "W_O"]) + w[attn + "b_O"]
    mlp = "blocks.0.mlp."
    pre = x @ w[mlp + "W_in"] + w[mlp + "b_in"]
    x2 = x + np.maximum(pre, 0.0) @ w[mlp + "W_out"] + w[mlp + "b_out"]
    return x[:, -1], pre[:, -1], x2[:, -1]


def unembed(w, x2):
    return x2 @ w["unembed.W_U"] + w["unembed.b_U"]


def logits(weights, cfg):
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    return unembed(w, residuals(w, cfg)[2])


def main():
    model, out = Path(sys.argv[1]), Path(sys.argv[2])
    cfg = json.loads(model.with_suffix(".config.json").read_text())
    np.save(out, logits(load_file(model), cfg))


if __name__ == "__main__":
    main()
