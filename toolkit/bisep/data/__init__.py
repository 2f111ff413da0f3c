"""Data for bisep: manifests, prompts, the ``synth_music`` dataset, mixtures of mixtures.

- :mod:`bisep.data.manifest`: JSON-lines manifests (``read_manifest``, ``write_manifest``).
- :mod:`bisep.data.prompts`: label phrases, mixture prompts, caption templates.
- :mod:`bisep.data.synth_music`: the default dataset plugin (recipe stage 1).
- :mod:`bisep.data.mom_plan`: mixture-of-mixtures (MoM) plans (stage 2).
- :mod:`bisep.data.mom`: the training ``MoMDataset`` that serves a plan (needs torch).

Formats and knobs: ``docs/data.md``. This package imports neither torch nor the
renderer; :mod:`bisep.data.mom` and :mod:`bisep.data.synth_music` are imported on use.
"""
from bisep.data.manifest import DataError, read_manifest, write_manifest
from bisep.data.prompts import HELDOUT_TEMPLATE, TEMPLATES, mixture_prompt, phrase

__all__ = ["DataError", "read_manifest", "write_manifest", "phrase", "mixture_prompt",
           "TEMPLATES", "HELDOUT_TEMPLATE"]
