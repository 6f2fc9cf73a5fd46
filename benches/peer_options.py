"""The options of benches/pytorch_step.py, which benches/side_by_side.py takes too and passes on
to it: one list for both scripts."""


def add_peer_options(args, **defaults):
    """Adds the PyTorch benchmark's options to the argparse parser `args` (`defaults` override
    the defaults by option name)."""
    d = {"p": 113, "epochs": 10, "device": "cpu", "modes": "eager", "models": "1",
         "variants": "nanda:f32,seed-bitnet:ternary,seed-bitnet:binary", **defaults}
    args.add_argument("--p", type=int, default=d["p"])
    args.add_argument("--epochs", type=int, default=d["epochs"])
    args.add_argument("--device", default=d["device"])
    args.add_argument("--tf32", action="store_true")
    args.add_argument("--modes", default=d["modes"])
    args.add_argument("--models", default=d["models"])
    args.add_argument("--variants", default=d["variants"])
