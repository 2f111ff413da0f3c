"""A recipe's results page (recipe stage 7, ``bisep report``).

- :mod:`bisep.report.experiments`: the scored experiments of an exp folder, and arms
  (runs that differ only in their seed);
- :mod:`bisep.report.claims`: the ratios a paper claims, put beside ours;
- :mod:`bisep.report.tables`: the markdown tables;
- :mod:`bisep.report.figures`: spectrograms, training curves, SDR against share of stems;
- :mod:`bisep.report.page`: ``RESULTS.md`` and its figures, written together
  (:func:`write_report`).
"""
from bisep.report.claims import PAPER_CLAIMS, Claim, read_claims
from bisep.report.experiments import (Arm, Experiment, ReportError, find_experiments,
                                      group_arms, load_experiment, mode_from_tag)
from bisep.report.page import render_markdown, write_report
from bisep.report.tables import ratio_table

__all__ = ["PAPER_CLAIMS", "Arm", "Claim", "Experiment", "ReportError", "find_experiments",
           "group_arms", "load_experiment", "mode_from_tag", "ratio_table", "read_claims",
           "render_markdown", "write_report"]
