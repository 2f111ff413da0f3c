"""``bisep shards``: split a list for parallel jobs and merge what the jobs wrote (recipe
stages 5 and 6 with ``--nj N``).

::

    bisep shards split data/test.jsonl --nj 4 --out-dir exp/weak/separated/split4
    bisep shards merge-separated --manifest data/test.jsonl --out-dir exp/weak/separated \\
        exp/weak/separated/split4/{1,2,3,4}
    bisep shards merge-scores --out-dir exp/weak/scores exp/weak/scores/split4/{1,2,3,4}

``split`` prints the number of shards it wrote (fewer than ``--nj`` when the list is
shorter). The logic is in :mod:`bisep.shards`.
"""
from __future__ import annotations

from bisep.cli.errors import CliError


def add_parser(sub):
    p = sub.add_parser("shards", help="split a list into shards / merge the jobs' outputs",
                       description="Split a JSON-lines list into contiguous shards for "
                                   "parallel jobs, and merge the outputs of `bisep separate "
                                   "--list` or `bisep score` jobs run on them.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    split = actions.add_parser("split", help="write <out-dir>/<name>.<n>.jsonl, n = 1..N")
    split.add_argument("list", help="a data manifest or a bisep score --list file")
    split.add_argument("--nj", type=int, required=True, help="number of shards")
    split.add_argument("--out-dir", required=True, help="where the shards go")
    sep = actions.add_parser("merge-separated",
                             help="merge the items.jsonl of bisep separate --list jobs")
    sep.add_argument("--manifest", required=True, help="the list the shards were cut from")
    sep.add_argument("--out-dir", required=True, help="gets items.jsonl, separation.json")
    sep.add_argument("shard_dirs", nargs="+", metavar="JOB_DIR", help="each job's -o, in order")
    score = actions.add_parser("merge-scores", help="merge the outputs of bisep score jobs")
    score.add_argument("--out-dir", required=True, help="gets per_item.csv, summary.json")
    score.add_argument("shard_dirs", nargs="+", metavar="JOB_DIR",
                       help="each job's --out-dir, in order")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from bisep.shards import ShardError, merge_scores, merge_separated, split_list

    try:
        if args.action == "split":
            print(len(split_list(args.list, args.nj, args.out_dir)))
        elif args.action == "merge-separated":
            path = merge_separated(args.shard_dirs, args.manifest, args.out_dir)
            print(f"wrote {path} (from {len(args.shard_dirs)} job(s))")
        else:
            summary = merge_scores(args.shard_dirs, args.out_dir)
            means = ", ".join(f"{name} {stats['mean']:.3f}"
                              for name, stats in summary["metrics"].items()
                              if stats["mean"] is not None)
            print(f"scored {summary['items']['scored']} of {summary['items']['listed']} items "
                  f"({summary['rows']} sources) in {len(args.shard_dirs)} job(s): mean {means}")
            print(f"wrote {args.out_dir}/per_item.csv and summary.json")
    except ShardError as exc:
        raise CliError(str(exc)) from None
    return 0
