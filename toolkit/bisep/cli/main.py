"""``bisep`` console script.

Each subcommand lives in ``bisep/cli/<name>.py`` (dashes become underscores: ``train-clap`` is
``train_clap.py``) and provides ``add_parser(subparsers)`` (which sets ``func`` to its
``run(args) -> int``). Modules import only argparse at import time, so ``bisep --help`` and
``bisep plugins`` start without torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import bisep

SUBCOMMANDS = ("plugins", "config", "prepare", "mix", "train", "train-clap", "separate", "score",
               "report")


class CliError(Exception):
    """A user-facing error: printed as ``bisep <cmd>: error: ...`` with exit code 2."""


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
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"bisep {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bisep {args.command}: interrupted", file=sys.stderr)
        return 130


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (no traceback)."""
    from bisep.audio import AudioError
    from bisep.config import ConfigError
    from bisep.data.manifest import DataError
    from bisep.outdir import OutputError
    from bisep.registry import PluginError

    return (AudioError, ConfigError, DataError, OutputError, PluginError, FileNotFoundError)
