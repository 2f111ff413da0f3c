"""``bisep train``: train a separator from a YAML config (recipe stage 4).

    bisep train --config conf/train_weak.yaml --data-dir data --dump-dir dump \\
        --exp-dir exp/weak [KEY=VALUE ...]
    bisep train --config conf/train_weak.yaml --print_config [KEY=VALUE ...]

Re-running on an experiment folder that holds ``checkpoints/last.ckpt`` continues from it.
The folder layout is described in :mod:`bisep.train.fit`. The folder is checked writable and
locked for the run (:mod:`bisep.outdir`): a second ``bisep train`` into it stops with a
message naming the first.
"""
from __future__ import annotations

from bisep.cli.errors import CliError, user_errors


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
    from bisep.config import dump

    resolved = resolved_config(args.config, args.overrides)
    if args.print_config:
        print(dump(resolved), end="")
        return 0
    missing = [f"--{n.replace('_', '-')}" for n in ("data_dir", "dump_dir", "exp_dir")
               if not getattr(args, n)]
    if missing:
        raise CliError(f"{', '.join(missing)} required (or --print_config)")
    from contextlib import nullcontext

    from bisep.outdir import prepare
    from bisep.train.fit import fit
    from bisep.train.guards import NonFiniteError

    # Multi-process training starts this command again in every worker; the first holds the
    # lock for all of them.
    guard = nullcontext() if _worker_rank() else prepare(args.exp_dir, option="--exp-dir")
    try:
        with guard:
            model = fit(resolved, args.data_dir, args.dump_dir, args.exp_dir)
    except (CheckpointError, NonFiniteError, *user_errors()) as exc:
        raise CliError(str(exc)) from None
    if model is not None:  # the other ranks of a multi-process run write nothing
        print(f"bisep train: wrote {model}")
    return 0


def _worker_rank() -> bool:
    """Whether this process is a distributed-training worker other than the first (the
    ranks torchrun, SLURM and Lightning's launcher set in the environment)."""
    import os

    return any(os.environ.get(key, "0") not in ("", "0")
               for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))
