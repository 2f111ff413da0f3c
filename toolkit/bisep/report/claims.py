"""The claims a results page puts beside its own numbers: ratios of mean test SDR between
two training modes, each with the value a paper states.

By default the page compares against :data:`PAPER_CLAIMS`, the three ratios that the
abstract of the paper bisep reproduces states in words ("+71%", "97.5%", "+17%"; no table
cell of the paper could be read, see ``docs/paper.md#headline-claims``). A recipe that
reproduces other claims passes its own file to ``bisep report --claims``::

    claims:
      - numerator: weak
        denominator: unsupervised
        paper: "1.71 (+71%)"
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from bisep.config import MODES, ConfigError, safe_load
from bisep.report.experiments import ReportError


@dataclass(frozen=True)
class Claim:
    """``SDR(numerator mode) / SDR(denominator mode)``, stated as ``paper`` (free text)."""

    numerator: str
    denominator: str
    paper: str

    @property
    def name(self) -> str:
        return f"{self.numerator} / {self.denominator}"


#: The abstract's three headline ratios: weakly supervised training reaches 1.71 times the
#: SDR of unsupervised training and 97.5% of supervised training, and semi-supervised
#: training 1.17 times the SDR of supervised training.
PAPER_CLAIMS = (Claim("weak", "unsupervised", "1.71 (+71%)"),
                Claim("weak", "supervised", "0.975 (97.5%)"),
                Claim("semi", "supervised", "1.17 (+17%)"))


def read_claims(path: str | Path) -> tuple[Claim, ...]:
    """The claims of a YAML file (format in the module docstring).

    Raises:
        ReportError: the file is missing or unreadable, or an entry lacks a key or names a
            mode that is not one of :data:`bisep.config.MODES`.
    """
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{path}: no such claims file (--claims); give a YAML file with a "
                          f"'claims' list, or leave --claims out to use the paper's ratios.")
    try:
        data = safe_load(path.read_text(), str(path))
    except (yaml.YAMLError, ConfigError) as exc:
        raise ReportError(f"{path}: not valid YAML ({exc}); fix the claims file.") from None
    entries = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ReportError(f"{path}: needs a non-empty 'claims' list of "
                          f"{{numerator, denominator, paper}} entries.")
    claims = []
    for index, entry in enumerate(entries):
        where = f"{path}: claims[{index}]"
        if not isinstance(entry, dict) or {"numerator", "denominator", "paper"} - set(entry):
            raise ReportError(f"{where}: needs the keys numerator, denominator and paper.")
        for key in ("numerator", "denominator"):
            if entry[key] not in MODES:
                raise ReportError(f"{where}: {key} '{entry[key]}' is not a training mode; "
                                  f"use one of {', '.join(MODES)}.")
        claims.append(Claim(entry["numerator"], entry["denominator"], str(entry["paper"])))
    return tuple(claims)
