"""``bisep prepare``: recipe stage 1, render or convert a dataset into manifests.

::

    bisep prepare synth_music data --conf conf/data.yaml num_train=500 duration=2.0

The dataset is looked up in the plugin registry (kind ``dataset``); ``--conf`` (a YAML
mapping of its keyword arguments) and the ``key=value`` overrides configure it. Unknown
keys and wrong types are reported with the file and line. The plugin writes the
manifests of ``docs/data.md`` under DATA_DIR.
"""
from __future__ import annotations

import argparse

from bisep.cli.errors import CliError


def add_parser(sub):
    p = sub.add_parser("prepare", help="prepare a dataset (recipe stage 1)",
                       description="Write a dataset's manifests (and audio) under DATA_DIR "
                                   "through its dataset plugin, e.g. `bisep prepare "
                                   "synth_music data --conf conf/data.yaml`. A re-run with the "
                                   "same config on a complete output does nothing. Formats: "
                                   "docs/data.md.")
    p.add_argument("dataset", help="registered dataset name (`bisep plugins --kind dataset`)")
    p.add_argument("data_dir", help="output folder")
    p.add_argument("--conf", metavar="YAML", help="the dataset's keyword arguments")
    # REMAINDER (options parsed in run()): with nargs="*", argparse fills every positional
    # before the first option and then rejects `DATASET DATA_DIR --conf X key=value`.
    p.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                   help="overrides of --conf, e.g. num_train=500 duration=2.0")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from bisep.config import LineMap, apply_overrides, load_yaml, resolve_conf
    from bisep.data.preparer import prepare_dataset
    from bisep.registry import get_registry

    conf_path, overrides = _split_remainder(args.conf, args.overrides)
    conf, lines = load_yaml(conf_path) if conf_path else ({}, LineMap("<command line>"))
    conf = apply_overrides(conf, overrides)
    factory = get_registry().factory("dataset", args.dataset)
    conf = resolve_conf(factory, conf, lines.where, "conf", f"dataset '{args.dataset}'")
    prepare_dataset(factory(**conf), args.data_dir, args.dataset)
    return 0


def _split_remainder(conf: str | None, rest: list[str]) -> tuple[str | None, list[str]]:
    """``--conf`` given after DATA_DIR, and the ``key=value`` overrides."""

    overrides, tokens = [], iter(rest)
    for token in tokens:
        if token == "--conf" or token.startswith("--conf="):
            value = token.partition("=")[2] or next(tokens, None)
            if not value or conf:
                raise CliError("give --conf once, followed by a YAML file.")
            conf = value
        elif token.startswith("-"):
            raise CliError(f"unknown option {token}. Usage: bisep prepare DATASET DATA_DIR "
                           f"[--conf YAML] [KEY=VALUE ...]; see `bisep prepare --help`.")
        else:
            overrides.append(token)
    return conf, overrides
