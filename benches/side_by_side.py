#!/usr/bin/env python3
"""`bitgrok bench` and PyTorch (benches/pytorch_step.py) on the same machine in one run,
alternating: each round times every bitgrok configuration, then every PyTorch one, so that
both see the same machine state (clocks, other load) in turn. Prints one table of the
medians over the rounds, per model and number of models trained together: bitgrok's
ms/epoch and model-epochs/s, each PyTorch mode's, and bitgrok's speed-up over the best mode.

usage: side_by_side.py [--bitgrok target/release/bitgrok] [--python python3] [--device cpu|cuda]
                       [--p 113] [--epochs 5] [--rounds 3] [--models 1,8]
                       [--modes eager,compile,reduce-overhead,max-autotune] [--tf32]
                       [--variants nanda:f32,seed-bitnet:ternary] [--json OUT.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from peer_options import add_peer_options

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def bitgrok_round(a, weights):
    cmd = [a.bitgrok, "bench", "--json", "--p", str(a.p), "--epochs", str(a.epochs),
           "--models", a.models, "--weights", ",".join(sorted(weights))]
    if a.tensor_cores:
        cmd += ["--tensor-cores", a.tensor_cores]
    return [{"impl": "bitgrok", "preset": r["preset"], "weights": r["weights"],
             "models": r["models"], "ms_per_epoch": r["ms_per_epoch"], "products": r["products"]}
            for r in run_json(cmd)]


def pytorch_round(a):
    cmd = [a.python, os.path.join(HERE, "pytorch_step.py"), "--json", "--p", str(a.p),
           "--epochs", str(a.epochs), "--device", a.device, "--modes", a.modes,
           "--models", a.models, "--variants", a.variants] + (["--tf32"] if a.tf32 else [])
    rows = run_json(cmd)
    return [{"impl": f"torch {r['mode']}{' tf32' if r['tf32'] else ''}", "preset": r["preset"],
             "weights": r["weights"], "models": r["models"], "ms_per_epoch": r["ms_per_epoch"],
             "threads": r["threads"], "torch": r["torch"]} for r in rows]


def main():
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--bitgrok", default="target/release/bitgrok")
    args.add_argument("--python", default=sys.executable)
    add_peer_options(args, epochs=5, modes="eager,compile,reduce-overhead,max-autotune",
                     variants="nanda:f32,seed-bitnet:ternary")
    args.add_argument("--rounds", type=int, default=3)
    args.add_argument("--tensor-cores", default=None)
    args.add_argument("--json", default=None)
    a = args.parse_args()
    variants = [tuple(v.split(":")) for v in a.variants.split(",")]
    weights = {w for _, w in variants}
    samples = []
    for r in range(a.rounds):
        print(f"round {r + 1} of {a.rounds}: bitgrok", file=sys.stderr, flush=True)
        samples += [s for s in bitgrok_round(a, weights) if (s["preset"], s["weights"]) in variants]
        print(f"round {r + 1} of {a.rounds}: pytorch", file=sys.stderr, flush=True)
        samples += pytorch_round(a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(samples, f, indent=2)
    impls = list(dict.fromkeys(s["impl"] for s in samples))
    key = lambda s: (s["preset"], s["weights"], s["models"])
    cells = {}
    for s in samples:
        cells.setdefault(key(s), {}).setdefault(s["impl"], []).append(s["ms_per_epoch"])
    extra = next((s for s in samples if "torch" in s), {})
    products = next((s["products"] for s in samples if "products" in s), "?")
    print(f"Medians of {a.rounds} alternating rounds, {a.epochs} epochs each, p = {a.p}; "
          f"bitgrok: {products}; PyTorch {extra.get('torch', '?')} on {a.device} "
          f"({extra.get('threads', '?')} threads). ms per epoch (train step and test "
          f"evaluation) and model-epochs/s.\n")
    print("| model | K | " + " | ".join(impls) + " | bitgrok's speed-up over the best PyTorch |")
    print("|---|---:|" + "---:|" * len(impls) + "---:|")
    for (preset, w, k), by_impl in sorted(cells.items()):
        med = {i: statistics.median(v) for i, v in by_impl.items()}
        row = [f"{med[i]:.1f} ms ({k * 1e3 / med[i]:.3g}/s)" if i in med else "–" for i in impls]
        torch_best = min((v for i, v in med.items() if i.startswith("torch")), default=None)
        ratio = f"{torch_best / med['bitgrok']:.2f}×" if torch_best and "bitgrok" in med else "–"
        print(f"| {preset} {w} | {k} | " + " | ".join(row) + f" | {ratio} |")


if __name__ == "__main__":
    main()
