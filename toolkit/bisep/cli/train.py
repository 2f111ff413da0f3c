"""``bisep train``: train a separator from a YAML config (recipe stage 4).

    bisep train --config conf/train_weak.yaml --data-dir data --dump-dir dump \\
        --exp-dir exp/weak [KEY=VALUE ...]
    bisep train --config conf/train_weak.yaml --print_config [KEY=VALUE ...]

Re-running on an experiment folder that holds ``checkpoints/last.ckpt`` continues from it.
The folder layout is described in :mod:`bisep.train.fit`.
"""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("train", help="train a separator (recipe stage 4)",
                       description="Train a query-conditioned separator with the loss terms of "
                                   "a config (unsupervised, weak, supervised or semi mode). "
                                   "Continues from EXP_DIR/checkpoints/last.ckpt when present.")
    p.add_argument("--config", required=True, help="training config (YAML)")
    p.add_argument("--data-dir", help="stage 1 output: train.jsonl, valid.jsonl")
    p.add_argument("--dump-dir", help="stage 2 output: mom_train.jsonl, mom_valid.jsonl")
    p.add_argument("--exp-dir", help="where checkpoints, logs and model.pth go")
    p.add_argument("--print_config", "--print-config", action="store_true",
                   help="print the resolved config (every default filled in) and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, e.g. trainer.max_steps=100 optim_conf.lr=1e-3")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from bisep.checkpoint import CheckpointError
    from bisep.cli.config import resolved_config
    from bisep.cli.main import CliError, user_errors
    from bisep.config import dump

    resolved = resolved_config(args.config, args.overrides)
    if args.print_config:
        print(dump(resolved), end="")
        return 0
    missing = [f"--{n.replace('_', '-')}" for n in ("data_dir", "dump_dir", "exp_dir")
               if not getattr(args, n)]
    if missing:
        raise CliError(f"{', '.join(missing)} required (or --print_config)")
    from bisep.train.fit import fit

    try:
        model = fit(resolved, args.data_dir, args.dump_dir, args.exp_dir)
    except (CheckpointError, *user_errors()) as exc:
        raise CliError(str(exc)) from None
    print(f"bisep train: wrote {model}")
    return 0
