"""What makes two runs the same experiment: a resolved config without the keys that only
say how a run uses the machine (a run may resume with other values), with keys added after
configs were first written filled in, and (for an arm) without the seed."""
from __future__ import annotations

from bisep.config.schema import CRITERION_KEYS, SECTIONS

# Keys that say how a run uses the machine, not what it computes: a run may resume with
# other values, and runs that differ only in them are the same experiment.
RESOURCE_KEYS = (("data", "num_workers"), ("data", "cache_audio"), ("trainer", "num_threads"),
                 ("trainer", "progress_bar"), ("trainer", "keep_freed_memory"))
# Section keys added after configs were first written: a recorded config.yaml without one
# meant its default, so comparing runs fills it in (a run resumes, runs group into arms).
LATER_KEYS = (("data", "query_source"),)
# Sections added after configs were first written: a recorded config.yaml without one meant
# every default.
LATER_SECTIONS = ("judge_update",)


def experiment_part(cfg: dict, drop: tuple[str, ...] = ()) -> dict:
    """``cfg`` without :data:`RESOURCE_KEYS` and without the top-level keys ``drop``:
    what makes two runs the same experiment (``drop=("seed",)``: the same arm)."""
    out = {key: value for key, value in cfg.items() if key not in drop}
    for section in LATER_SECTIONS:
        if section not in out:
            out[section] = {key: default for key, (_, default) in SECTIONS[section].items()}
    for section, key in LATER_KEYS:
        if isinstance(out.get(section), dict) and key not in out[section]:
            out[section] = {**out[section], key: SECTIONS[section][key][1]}
    if isinstance(out.get("criterions"), list):
        # A criterion's keys with their defaults: a recorded config.yaml that spells out
        # ``start_step: 0`` and one that leaves it out describe the same loss.
        out["criterions"] = [{key: default for key, (_, default) in CRITERION_KEYS.items()
                              if key != "name"} | item if isinstance(item, dict) else item
                             for item in out["criterions"]]
    for section, key in RESOURCE_KEYS:
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k != key}
    return out
