"""``bisep config``: validate a config and print it with every default filled in."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("config", help="validate a YAML config and print it resolved",
                       description="Validate a training config against the registered plugins "
                                   "and print the full resolved config (every default filled "
                                   "in), as `--print_config` does in ESPnet.")
    p.add_argument("config", help="the YAML config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted overrides, e.g. separator_conf.ngf=32")
    p.set_defaults(func=run)
    return p


def resolved_config(path: str, overrides: list[str]) -> dict:
    """``bisep.config.load_config``, with its errors as user-facing :class:`CliError`."""
    from bisep import config
    from bisep.cli.main import CliError

    try:
        return config.load_config(path, overrides)
    except (config.ConfigError, ValueError) as exc:
        raise CliError(str(exc)) from None


def run(args) -> int:
    from bisep.config import dump

    print(dump(resolved_config(args.config, args.overrides)), end="")
    return 0
