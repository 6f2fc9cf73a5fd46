#!/bin/sh
# Issue 20's GPU checks in one command on a lent GPU machine (the device README's recipe: carry
# the release binary target/release/bitgrok and .gl with the Vulkan loader where the machine
# has none). Writes into $OUT: devices.txt (the cooperative-matrix configurations the driver
# reports, and whether the integer products run on them), check-on.txt, check-off.txt and
# check-split.txt (`bitgrok check` on each path, the last with the float products split on
# tensor cores too; `on` fails where the adapter cannot run them), bench.jsonl (`bench --json`,
# rounds alternating --tensor-cores off, on, and on with --float-products split-f16, K = 1, 8,
# 64; each row's `products` names its path) and, where the
# machine's Python has PyTorch, side_by_side.md (bitgrok beside PyTorch eager, compile,
# reduce-overhead and max-autotune with TF32, K = 1, 8, 64).
#
# usage: scripts/tensor_core_checks.sh [ROUNDS]   (default 2; not yet timed on a GPU: run it with
# a limit, since every bench row is kept as it is written)
set -u
rounds=${1:-2}
out=${OUT:-.}
if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
bin=./target/release/bitgrok
{ $bin devices; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } \
    >"$out/devices.txt" 2>&1
for name in on off split; do
    case $name in
    split) options="--tensor-cores on --float-products split-f16" ;;
    *) options="--tensor-cores $name" ;;
    esac
    timeout 120 $bin check $options >"$out/check-$name.txt" 2>&1
    echo "check $options: exit $?" >>"$out/devices.txt"
done
i=0
while [ $i -lt "$rounds" ]; do
    for options in "--tensor-cores off" "--tensor-cores on" \
        "--tensor-cores on --float-products split-f16"; do
        $bin bench --json --models 1,8,64 --epochs 200 $options 2>>"$out/bench.err" |
            python3 -c 'import json, sys; [print(json.dumps(r)) for r in json.load(sys.stdin)]' \
            >>"$out/bench.jsonl"
    done
    i=$((i + 1))
done
if python3 -c 'import torch' 2>/dev/null; then
    PYTHONUNBUFFERED=1 timeout 240 python3 benches/side_by_side.py --bitgrok $bin --device cuda \
        --tf32 --models 1,8,64 --epochs 100 --rounds 1 --json "$out/side_by_side.json" \
        >"$out/side_by_side.md" 2>>"$out/bench.err"
fi
exit 0
