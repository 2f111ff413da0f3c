"""``bisep mix``: recipe stage 2, draw the mixture-of-mixtures plans.

::

    bisep mix --data-dir data --dump-dir dump [--num-train-mom 10000] [--num-parts 2]
              [--supervised-fraction 0.0] [--seed 0]

writes ``dump/mom_train.jsonl`` (parts from ``data/train.jsonl``), ``dump/mom_valid.jsonl``
(parts from ``data/valid.jsonl``, so validation never touches train or test clips) and,
with ``--supervised-fraction`` > 0, ``dump/sup_ids.txt`` (the train clips whose stems
supervised/semi-supervised training may read, one id per line). Validation clips all
have references: with a supervised fraction every validation MoM is ``sup``, otherwise
none is. The logic is :func:`bisep.data.mom_plan.write_plans`; format: ``docs/data.md``.
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
    from bisep.data.mom_plan import write_plans

    written = write_plans(args.data_dir, args.dump_dir, args.num_train_mom, args.num_valid_mom,
                          args.num_parts, args.supervised_fraction, args.sup_mom_fraction,
                          args.seed)
    print(f"bisep mix: {written.summary()}")
    for path in written.files:
        print(f"wrote {path}")
    return 0
