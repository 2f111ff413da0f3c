"""YAML experiment configs in ESPnet's shape, validated with messages that name the fix.

A config names each component by its registered plugin name and passes its keyword
arguments in the matching ``*_conf`` mapping::

    separator: cond_unet
    separator_conf: {preset: small}
    conditioner: mini_clap
    conditioner_conf: {checkpoint: exp/mini_clap/model.pth}
    criterions:
      - {name: clap_contrastive, weight: 0.5}
      - {name: consistency_reconstruction, weight: 5.0}
    optim: adam
    optim_conf: {lr: 1.0e-4}

:func:`resolve` fills every default (the component's own signature defaults included),
which is what ``--print_config`` shows. Errors are :class:`ConfigError` and say
``file:line: what is wrong; what would be right``.

The package holds one concept per module:

- :mod:`bisep.config.checks`: :class:`ConfigError`; a value against its key's types;
- :mod:`bisep.config.yaml_files`: YAML read safely, line numbers, overrides, :func:`dump`;
- :mod:`bisep.config.signatures`: a component's ``*_conf`` against its constructor;
- :mod:`bisep.config.schema`: the keys, types, defaults and ranges of a training config;
- :mod:`bisep.config.resolution`: :func:`resolve` and :func:`load_config`;
- :mod:`bisep.config.experiment`: which keys make two runs the same experiment.
"""
from bisep.config.checks import ConfigError
from bisep.config.experiment import LATER_KEYS, RESOURCE_KEYS, experiment_part
from bisep.config.resolution import check_builds, load_config, resolve
from bisep.config.schema import (CHOICES, CRITERION_KEYS, DATA_KEYS, MINIMUMS, MODES, MONITORS,
                                 OPTIMIZERS, QUERY_SOURCES, SCHEDULE_KEYS, SCHEDULERS, SECTIONS,
                                 SEED_RANGE, TOP_LEVEL, TRAINER_KEYS, check_monitor,
                                 check_top_level, monitor_mode)
from bisep.config.signatures import resolve_conf, signature_defaults
from bisep.config.yaml_files import (MAX_YAML_NODES, LineMap, apply_overrides, dump, load_yaml,
                                     parse_override, safe_load)

__all__ = ["CHOICES", "CRITERION_KEYS", "DATA_KEYS", "LATER_KEYS", "MAX_YAML_NODES", "MINIMUMS",
           "MODES", "MONITORS", "OPTIMIZERS", "QUERY_SOURCES", "RESOURCE_KEYS", "SCHEDULE_KEYS",
           "SCHEDULERS", "SECTIONS", "SEED_RANGE", "TOP_LEVEL", "TRAINER_KEYS", "ConfigError",
           "LineMap", "apply_overrides", "check_builds", "check_monitor", "check_top_level",
           "dump", "experiment_part", "load_config", "load_yaml", "monitor_mode", "parse_override",
           "resolve", "resolve_conf", "safe_load", "signature_defaults"]
