"""``bisep`` console script.

Each subcommand lives in ``bisep/cli/<name>.py`` (dashes become underscores: ``train-clap`` is
``train_clap.py``) and provides ``add_parser(subparsers)`` (which sets ``func`` to its
``run(args) -> int``). Modules import only argparse at import time, so ``bisep --help`` and
``bisep plugins`` start without torch.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys

import bisep
from bisep.cli.errors import CliError
from bisep.errors import UserError

SUBCOMMANDS = ("plugins", "config", "prepare", "mix", "train", "train-clap", "separate", "score",
               "report", "export-model", "export-onnx", "demo", "shards")



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bisep",
        description="Language-conditioned audio source separation with weak CLAP supervision.")
    parser.add_argument("--version", action="version",
                        version=f"bisep {bisep.__version__} (python {sys.version.split()[0]})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"bisep.cli.{name.replace('-', '_')}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with log_to_console():
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"bisep {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bisep {args.command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def log_to_console():
    """Show the library's log (the ``bisep`` loggers) while a command runs: INFO as plain
    lines on stdout, where recipe logs and tests have always read them, and warnings and
    errors on stderr. The handlers go when the command ends, so calling :func:`main` again in
    one process (tests) does not print every line twice. ``BISEP_LOG_LEVEL=DEBUG`` shows
    debug lines too (e.g. which mixtures each training process reads)."""
    import os

    wanted = os.environ.get("BISEP_LOG_LEVEL", "INFO").upper()
    if wanted not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise CliError(f"BISEP_LOG_LEVEL={wanted}: use DEBUG, INFO, WARNING or ERROR")
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.WARNING)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING)
    err.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    logger = logging.getLogger("bisep")
    level = logger.level
    logger.setLevel(wanted)
    logger.addHandler(out)
    logger.addHandler(err)
    try:
        yield
    finally:
        logger.removeHandler(out)
        logger.removeHandler(err)
        logger.setLevel(level)

