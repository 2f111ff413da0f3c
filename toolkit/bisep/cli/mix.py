"""``bisep mix``: recipe stage 2, draw the mixture-of-mixtures plans.

::

    bisep mix --data-dir data --dump-dir dump [--num-train-mom 10000] [--num-parts 2]
              [--supervised-fraction 0.0] [--seed 0]

writes ``dump/mom_train.jsonl`` (parts from ``data/train.jsonl``), ``dump/mom_valid.jsonl``
(parts from ``data/valid.jsonl``, so validation never touches train or test clips) and,
with ``--supervised-fraction`` > 0, ``dump/sup_ids.txt`` (the train clips whose stems
supervised/semi-supervised training may read, one id per line). Validation clips all
have references: with a supervised fraction every validation MoM is ``sup``, otherwise
none is. Format: :mod:`bisep.data.mom_plan`, ``docs/data.md``.
"""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("mix", help="draw mixture-of-mixtures plans (recipe stage 2)",
                       description="Write dump/mom_train.jsonl (MoMs of data/train.jsonl clips), "
                                   "dump/mom_valid.jsonl (MoMs of data/valid.jsonl clips) and, "
                                   "with --supervised-fraction > 0, dump/sup_ids.txt. The parts "
                                   "of a MoM have disjoint labels; gains are drawn uniformly "
                                   "from 0.5..1.5. See docs/data.md.")
    p.add_argument("--data-dir", required=True, help="the prepared data (train.jsonl, valid.jsonl)")
    p.add_argument("--dump-dir", required=True, help="where to write the plans")
    p.add_argument("--num-train-mom", type=int, default=10000,
                   help="training MoMs, i.e. items per epoch (default 10000)")
    p.add_argument("--num-valid-mom", type=int, default=100,
                   help="validation MoMs (default 100)")
    p.add_argument("--num-parts", type=int, default=2,
                   help="clips per MoM, N (default 2, as the paper)")
    p.add_argument("--supervised-fraction", type=float, default=0.0,
                   help="share of train clips whose stems may be used (semi-supervised: e.g. "
                        "0.1; supervised: 1.0; default 0 = weak/unsupervised)")
    p.add_argument("--sup-mom-fraction", type=float, default=None,
                   help="share of training MoMs drawn only from the supervised clips "
                        "(default: the supervised fraction)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from pathlib import Path

    from bisep.cli.main import CliError
    from bisep.atomic import write_text_atomic
    from bisep.data.manifest import DataError, read_manifest
    from bisep.data.mom_plan import make_mom_plan, write_plan

    data, dump = Path(args.data_dir), Path(args.dump_dir)
    try:
        train = read_manifest(data / "train.jsonl", check_files=False)
        valid = read_manifest(data / "valid.jsonl", check_files=False)
        lines, supervised = make_mom_plan(
            train, args.num_train_mom, args.num_parts, args.supervised_fraction,
            args.sup_mom_fraction, seed=args.seed, prefix="mom")
        valid_lines, _ = make_mom_plan(
            valid, args.num_valid_mom, args.num_parts,
            1.0 if args.supervised_fraction > 0 else 0.0, seed=args.seed + 1,
            prefix="mom_valid")
    except DataError as exc:
        raise CliError(str(exc)) from None
    written = [write_plan(dump / "mom_train.jsonl", lines),
               write_plan(dump / "mom_valid.jsonl", valid_lines)]
    sup_ids = dump / "sup_ids.txt"
    if supervised:
        written.append(write_text_atomic(sup_ids, "".join(f"{i}\n" for i in supervised)))
    else:
        sup_ids.unlink(missing_ok=True)  # a stale subset from an earlier run would mislead
    print(f"bisep mix: {len(lines)} training MoMs of {len(train)} clips "
          f"({sum(line['sup'] for line in lines)} sup, {len(supervised)} supervised clips), "
          f"{len(valid_lines)} validation MoMs of {len(valid)} clips.")
    for path in written:
        print(f"wrote {path}")
    return 0
