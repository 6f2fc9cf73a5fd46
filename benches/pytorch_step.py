#!/usr/bin/env python3
"""The study's own kind of code, timed: one full-batch training epoch of the same models in
PyTorch, to set beside `bitgrok bench` on the same machine, in the configurations a user would
pick: eager mode, torch.compile (default, "reduce-overhead" which CUDA-graphs the step, and
"max-autotune"), and K models trained together as one stacked model through torch.func
(stack_module_state + vmap), as a bitgrok sweep trains them.

Models (as bitgrok's presets): `nanda` (full precision, positional embedding, causal attention)
and `seed-bitnet` (BitLinear: per-token RMS norm and int8 absmax activations, ternary or binary
weights with straight-through gradients, no positional embedding, bidirectional attention,
final RMSNorm with gain). Every position goes through the model, as in the study's code; the loss
is the cross-entropy of the last position. AdamW lr 1e-3, weight decay 1, betas (0.9, 0.98)
(fused on CUDA). K stacked models share the data and sum their losses, so each gets its own
gradient and AdamW (element-wise) treats each as if alone. `--tf32` lets CUDA's float32 products
use TF32 tensor cores (a user would; it is labelled in the output).

usage: pytorch_step.py [--p 113] [--frac 0.3] [--epochs 10] [--device cpu|cuda] [--tf32]
                       [--modes eager,compile,reduce-overhead,max-autotune] [--models 1,8,64]
                       [--variants nanda:f32,seed-bitnet:ternary,seed-bitnet:binary] [--json]
"""
import argparse
import json
import math
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state

from peer_options import add_peer_options

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


def stacked(p, preset, weights, k, device):
    """K models (seeds 0 .. K-1) as one: their parameters stacked along a new first axis, and
    the forward pass of one model mapped over it."""
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(Model(p, preset, weights).to(device))
    if k == 1:
        return models[0], list(models[0].parameters())
    params, buffers = stack_module_state(models)
    params = {name: torch.nn.Parameter(t) for name, t in params.items()}
    base = models[0]

    def one(ps, bs, tokens):
        return functional_call(base, (ps, bs), (tokens,))

    every = torch.vmap(one, in_dims=(0, 0, None))
    return (lambda tokens: every(params, buffers, tokens)), list(params.values())


def time_epochs(p, frac, preset, weights, epochs, device, mode, k):
    # Each configuration compiles afresh: compiled graphs of earlier ones would count against
    # dynamo's recompile limit and send this one back to eager mode.
    torch._dynamo.reset()
    forward, params = stacked(p, preset, weights, k, device)
    fused = device == "cuda"
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98), fused=fused)
    train_x, train_y, test_x, test_y = data(p, frac, device)

    def loss_of(tokens, labels):
        logits = forward(tokens)
        if k > 1:
            # [K, n, p]: the sum of each model's mean loss.
            return F.cross_entropy(logits.flatten(0, 1), labels.repeat(k), reduction="sum") / len(labels)
        return F.cross_entropy(logits, labels)

    if mode != "eager":
        loss_of = torch.compile(loss_of, mode=None if mode == "compile" else mode)

    def step(evaluate):
        loss = loss_of(train_x, train_y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if evaluate:
            with torch.no_grad():
                loss_of(test_x, test_y)

    result = {}
    for name, evaluate in [("ms_per_epoch", True), ("ms_per_train_step", False)]:
        # Warm-up: compilation (and CUDA-graph recording) happens in the first calls.
        for _ in range(3 if mode != "eager" else 1):
            step(evaluate)
        sync(device)
        start = time.perf_counter()
        for _ in range(epochs):
            step(evaluate)
        sync(device)
        result[name] = (time.perf_counter() - start) * 1e3 / epochs
    result["model_epochs_per_s"] = k * 1e3 / result["ms_per_epoch"]
    return result


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_peer_options(args)
    args.add_argument("--frac", type=float, default=0.3)
    args.add_argument("--json", action="store_true")
    a = args.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    rows = []
    for variant in a.variants.split(","):
        preset, weights = variant.split(":")
        for mode in a.modes.split(","):
            for k in (int(x) for x in a.models.split(",")):
                r = time_epochs(a.p, a.frac, preset, weights, a.epochs, a.device, mode, k)
                rows.append({"preset": preset, "weights": weights, "p": a.p, "device": a.device,
                             "mode": mode, "models": k, "tf32": a.tf32,
                             "threads": torch.get_num_threads(), "torch": torch.__version__, **r})
                if not a.json:
                    print(f"{preset:<12} {weights:<8} {mode:<16} K={k:<3} p={a.p} {a.device}"
                          f"{' tf32' if a.tf32 else ''} ({torch.get_num_threads()} threads, torch "
                          f"{torch.__version__}): {r['ms_per_epoch']:.2f} ms/epoch, "
                          f"{r['ms_per_train_step']:.2f} ms/train step, "
                          f"{r['model_epochs_per_s']:.3g} model-epochs/s", flush=True)
    if a.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
