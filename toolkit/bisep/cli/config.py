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


def run(args) -> int:
    from bisep import config
    from bisep.cli.main import CliError

    try:
        resolved = config.load_config(args.config, args.overrides)
    except (config.ConfigError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print(config.dump(resolved), end="")
    return 0
