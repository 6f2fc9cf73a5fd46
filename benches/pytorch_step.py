#!/usr/bin/env python3
"""The study's own kind of code, timed: one full-batch training epoch of the same models in
PyTorch eager mode, to set beside `bitgrok bench` on the same machine.

Models (as bitgrok's presets): `nanda` (full precision, positional embedding, causal attention)
and `seed-bitnet` (BitLinear: per-token RMS norm and int8 absmax activations, ternary or binary
weights with straight-through gradients, no positional embedding, bidirectional attention,
final RMSNorm with gain). Every position goes through the model, as in the study's code; the loss
is the cross-entropy of the last position. AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98).

usage: pytorch_step.py [--p 113] [--frac 0.3] [--epochs 10] [--device cpu|cuda] [--json]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

D_MODEL, N_HEADS, D_HEAD, D_MLP = 128, 4, 32, 512
EPS = 1e-5


def ste(x, q):
    """q(x) forward, identity backward."""
    return x + (q - x).detach()


def quantise_weight(w, mode):
    if mode == "f32":
        return w
    if mode == "binary":
        # Exactly two values, as bitgrok packs them: a weight equal to the mean counts as +1.
        q = torch.where(w < w.mean(), -1.0, 1.0) * w.abs().mean()
    else:
        gamma = w.abs().mean().clamp(min=EPS)
        q = torch.clamp(torch.round(w / gamma), -1, 1) * gamma
    return ste(w, q)


def linear_input(x, bitlinear):
    if not bitlinear:
        return x
    x = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + EPS)
    scale = 127.0 / x.abs().amax(-1, keepdim=True).clamp(min=EPS)
    return ste(x, torch.clamp(torch.round(x * scale), -128, 127) / scale)


class Model(torch.nn.Module):
    def __init__(self, p, preset, weights):
        super().__init__()
        self.bit = preset == "seed-bitnet"
        self.weights = weights
        v = p + 1
        init = lambda *shape: torch.nn.Parameter(torch.randn(*shape) * 0.8 / math.sqrt(D_MODEL))
        self.W_E = init(v, D_MODEL)
        self.W_pos = None if self.bit else init(3, D_MODEL)
        self.W_Q, self.W_K, self.W_V = (init(N_HEADS, D_MODEL, D_HEAD) for _ in range(3))
        self.W_O = init(N_HEADS * D_HEAD, D_MODEL)
        self.W_in = init(D_MODEL, D_MLP)
        self.W_out = init(D_MLP, D_MODEL)
        self.ln_final = torch.nn.Parameter(torch.ones(D_MODEL)) if self.bit else None
        self.W_U = init(D_MODEL, p)
        mask = torch.tril(torch.ones(3, 3, dtype=torch.bool))
        self.register_buffer("mask", mask if not self.bit else torch.ones(3, 3, dtype=torch.bool))

    def forward(self, tokens):
        q = lambda w: quantise_weight(w, self.weights)
        x = self.W_E[tokens]
        if self.W_pos is not None:
            x = x + self.W_pos
        a = linear_input(x, self.bit)
        qh = torch.einsum("npd,hde->nhpe", a, q(self.W_Q))
        kh = torch.einsum("npd,hde->nhpe", a, q(self.W_K))
        vh = torch.einsum("npd,hde->nhpe", a, q(self.W_V))
        scores = (qh @ kh.transpose(-1, -2)) / math.sqrt(D_HEAD)
        pattern = scores.masked_fill(~self.mask, float("-inf")).softmax(-1)
        z = (pattern @ vh).transpose(1, 2).reshape(x.shape[0], 3, N_HEADS * D_HEAD)
        x = x + linear_input(z, self.bit) @ q(self.W_O)
        post = F.relu(linear_input(x, self.bit) @ q(self.W_in))
        x = x + linear_input(post, self.bit) @ q(self.W_out)
        last = x[:, -1]
        if self.ln_final is not None:
            last = last / torch.sqrt(last.pow(2).mean(-1, keepdim=True) + EPS) * self.ln_final
        return last @ self.W_U


def data(p, frac, device):
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    tokens = torch.stack([a.flatten(), b.flatten(), torch.full((p * p,), p)], 1)
    labels = (a.flatten() + b.flatten()) % p
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(598))
    n = round(frac * p * p)
    train, test = perm[:n], perm[n:]
    return [t.to(device) for t in (tokens[train], labels[train], tokens[test], labels[test])]


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_epochs(p, frac, preset, weights, epochs, device):
    torch.manual_seed(0)
    model = Model(p, preset, weights).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    train_x, train_y, test_x, test_y = data(p, frac, device)

    def step(evaluate):
        loss = F.cross_entropy(model(train_x), train_y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if evaluate:
            with torch.no_grad():
                F.cross_entropy(model(test_x), test_y)

    result = {}
    for name, evaluate in [("ms_per_epoch", True), ("ms_per_train_step", False)]:
        step(evaluate)  # warm-up
        sync(device)
        start = time.perf_counter()
        for _ in range(epochs):
            step(evaluate)
        sync(device)
        result[name] = (time.perf_counter() - start) * 1e3 / epochs
    return result


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--p", type=int, default=113)
    args.add_argument("--frac", type=float, default=0.3)
    args.add_argument("--epochs", type=int, default=10)
    args.add_argument("--device", default="cpu")
    args.add_argument("--json", action="store_true")
    a = args.parse_args()
    rows = []
    for preset, weights in [("nanda", "f32"), ("seed-bitnet", "ternary"), ("seed-bitnet", "binary")]:
        r = time_epochs(a.p, a.frac, preset, weights, a.epochs, a.device)
        rows.append({"preset": preset, "weights": weights, "p": a.p, "device": a.device,
                     "threads": torch.get_num_threads(), "torch": torch.__version__, **r})
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['preset']:<12} {r['weights']:<8} p={r['p']} {r['device']} "
                  f"({r['threads']} threads, torch {r['torch']}): {r['ms_per_epoch']:.1f} ms/epoch "
                  f"(train step + test eval), {r['ms_per_train_step']:.1f} ms/train step")


if __name__ == "__main__":
    main()
