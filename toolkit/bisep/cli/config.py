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
    """The config of ``bisep config`` and ``bisep train``: :func:`bisep.config.load_config`
    (its errors are :class:`bisep.config.ConfigError`, printed by ``bisep.cli.main``)."""
    from bisep.config import load_config

    return load_config(path, overrides)


def run(args) -> int:
    from bisep.config import dump

    print(dump(resolved_config(args.config, args.overrides)), end="")
    return 0
