"""``bisep plugins``: every plugin, its distribution and version, and the names it registers."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("plugins", help="list plugins and the components they register",
                       description="List every loaded plugin with its distribution, version and "
                                   "the names it registers per kind; plugins that failed to load "
                                   "and names registered twice are reported too.")
    p.add_argument("--kind", choices=("separator", "conditioner", "loss", "dataset"),
                   help="only list names of this kind")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from bisep.registry import get_registry

    registry = get_registry()
    status = 0
    for info in registry.plugins():
        src = info.source
        print(f"{src.plugin_name}  ({src.distribution} {src.version})")
        kinds = [args.kind] if args.kind else sorted(info.names)
        for kind in kinds:
            names = info.names.get(kind, [])
            if names:
                print(f"    {kind + ':':<13} {', '.join(names)}")
    for kind, clashes in registry.duplicates().items():
        for name, sources in clashes.items():
            status = 1
            who = ", ".join(f"{s.plugin_name} ({s.distribution})" for s in sources)
            print(f"CONFLICT: {kind} '{name}' is registered by {who}")
    for failure in registry.failures:
        status = 1
        print(f"FAILED: {failure.entry_point} from {failure.distribution}: {failure.error}")
    return status
