"""The plugin module named by the entry point: cheap to import (no torch)."""
from bisep import hookimpl


@hookimpl
def bisep_register_separators():
    return {"example_gain": "bisep_example_plugin.separator:GainSeparator"}


@hookimpl
def bisep_register_losses():
    return {"example_l2": "bisep_example_plugin.separator:MaskL2Loss"}


@hookimpl
def bisep_register_conditioners():
    return {"example_hash": "bisep_example_plugin.conditioner:HashConditioner"}
