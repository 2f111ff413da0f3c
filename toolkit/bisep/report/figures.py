"""The figures of a results page: log spectrograms of test items (mixture, reference, each
experiment's estimate) with the training curves, and mean SDR against the share of
training clips whose stems were used. A missing file is stated in the figure, not an
error."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from bisep.atomic import atomic_path
from bisep.report.experiments import Arm, Experiment, fraction_arms


def plot(experiments: list[Experiment], path: str | Path, n_items: int = 2) -> Path:
    """Write the figure: spectrograms of ``n_items`` test items shared by the experiments,
    then one panel of training curves per experiment. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _spectrogram_rows(experiments, n_items) if n_items else []
    n_cols = 2 + len(experiments)  # mixture, reference, one estimate per experiment
    n_rows = max(len(panels), 1 if n_items else 0) + 1
    fig = plt.figure(figsize=(2.6 * n_cols, 2.2 * n_rows), constrained_layout=True)
    grid = fig.add_gridspec(n_rows, n_cols)
    for r, (title, columns) in enumerate(panels):
        _draw_spectrograms(fig, grid, r, title, columns)
    if n_items and not panels:
        ax = fig.add_subplot(grid[0, :])
        _say(ax, "no separated test audio found (<exp>/<tag>/separated/items.jsonl): run "
                 "recipe stage 5 to see spectrograms here")
    for c, exp in enumerate(experiments):
        _draw_curves(fig.add_subplot(grid[n_rows - 1, c]), exp)
    return _save(fig, path)


def plot_fraction(arms: list[Arm], path: str | Path) -> Path:
    """Write the figure of mean SDR (± sd over seeds) against the share of training clips
    whose stems were used, one line per training config; weak and unsupervised arms (no
    stems) are horizontal lines. Returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    # One line per training config: the same config trained on different shares of stems.
    lines: dict[str, list[Arm]] = {}
    for arm in fraction_arms(arms):
        lines.setdefault(arm.runs[0].config_key, []).append(arm)
    for line in lines.values():
        line.sort(key=lambda a: a.stems_fraction)
        stats = [a.mean_sd("sdr") for a in line]
        name = min((a.name for a in line), key=lambda t: (len(t), t))
        ax.errorbar([100 * a.stems_fraction for a in line], [m for m, _ in stats],
                    yerr=[0 if math.isnan(sd) else sd for _, sd in stats], marker="o",
                    capsize=3, label=f"{name} ({line[0].mode})")
    for arm in arms:
        if arm.mode in ("weak", "unsupervised"):
            mean, _ = arm.mean_sd("sdr")
            ax.axhline(mean, linestyle="--", linewidth=1, color="grey" if arm.mode == "weak"
                       else "black", label=f"{arm.name} (no stems)")
    ax.set_xscale("log")
    ax.set_xlabel("training clips whose stems were used (%)")
    ax.set_ylabel("test SDR (dB)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG atomically and release it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def _spectrogram_rows(experiments: list[Experiment], n_items: int) -> list:
    """``[(row title, [(panel title, audio path)])]``: for each chosen item and source,
    the mixture, the reference and each experiment's estimate."""
    listed = {}
    for exp in experiments:
        if exp.items_file.is_file():
            listed[exp.tag] = _read_items(exp.items_file)
    if not listed:
        return []
    first = next(iter(listed.values()))
    # Items with references only: a row shows the reference beside the estimates.
    shared = [item_id for item_id in first if first[item_id]["sources"]
              and all(item_id in other for other in listed.values())]
    rows = []
    for item_id in shared[:n_items]:
        item = first[item_id]
        for source in sorted(item["sources"]):
            columns = [("mixture", item.get("mixture")), (f"reference {source}",
                                                         item["sources"][source])]
            columns += [(f"{tag} estimate", items[item_id]["estimates"].get(source))
                        for tag, items in listed.items()]
            rows.append((f"{item_id}: {source}", columns))
    return rows


def _read_items(path: Path) -> dict[str, dict]:
    """``{id: entry}`` of an ``items.jsonl`` with paths made absolute."""
    items = {}
    for line in path.read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            for key in ("sources", "estimates"):
                entry[key] = {k: path.parent / v for k, v in entry.get(key, {}).items()}
            if entry.get("mixture"):
                entry["mixture"] = path.parent / entry["mixture"]
            items[str(entry["id"])] = entry
    return items


def _draw_spectrograms(fig, grid, row: int, title: str, columns: list) -> None:
    from bisep.audio import AudioError, read

    specs = []
    for _, path in columns:
        try:
            wav, rate = read(path, mono=True) if path else (None, None)
        except AudioError:
            wav = None
        specs.append(_log_spectrogram(wav[0], rate) if wav is not None else None)
    top = max((s[0].max() for s in specs if s is not None), default=0.0)
    for c, ((name, path), spec) in enumerate(zip(columns, specs)):
        ax = fig.add_subplot(grid[row, c])
        if spec is None:
            _say(ax, f"{name}:\n{'no file' if path is None else Path(path).name + ' unreadable'}")
            continue
        db, seconds, hz = spec
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0, seconds, 0, hz / 1000))
        ax.set_title(f"{title}\n{name}" if c == 0 else name, fontsize=7)
        ax.tick_params(labelsize=6)
        if c == 0:
            ax.set_ylabel("kHz", fontsize=6)


def _log_spectrogram(wav, rate: int, n_fft: int = 512, hop: int = 128):
    """``(dB (freq, frames), seconds, Nyquist Hz)`` of a Hann-windowed STFT."""
    import numpy as np

    if wav.shape[0] < n_fft:
        wav = np.pad(wav, (0, n_fft - wav.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(wav, n_fft)[::hop]
    magnitude = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T
    return 20 * np.log10(magnitude + 1e-8), wav.shape[0] / rate, rate / 2


def _draw_curves(ax, exp: Experiment) -> None:
    curves = _read_curves(exp.curves_file)
    if isinstance(curves, str):
        _say(ax, f"{exp.tag}: no training curves\n{curves}")
        return
    steps, columns = curves
    for name, values in columns.items():
        points = [(s, v) for s, v in zip(steps, values) if v is not None]
        if not points:
            continue
        if name == "val_si_sdr":  # dB, not a loss: its own axis on the right
            right = ax.twinx()
            right.plot(*zip(*points), color="black", ls="--", marker="o", ms=2, lw=1.0)
            right.set_ylabel("val SI-SDR (dB, dashed)", fontsize=6)
            right.tick_params(labelsize=6)
            continue
        main = name in ("train_loss", "val_loss")
        ax.plot(*zip(*points), label=name, lw=1.2 if main else 0.6,
                alpha=1.0 if main else 0.6, marker="o" if name == "val_loss" else None, ms=2)
    ax.set_title(f"{exp.tag}: training", fontsize=7)
    ax.set_xlabel("step", fontsize=6)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=5)


def _read_curves(path: Path):
    """``(steps, {column: values or None})`` from ``metrics.csv``, or why not (a str)."""
    if not path.is_file():
        return f"{path.parent.parent.name}/logs/{path.name} not found"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "step" not in rows[0]:
        return f"{path.name} has no rows or no 'step' column"
    names = [n for n in rows[0] if n in ("train_loss", "val_loss", "val_si_sdr")
             or n.startswith("train/")]
    steps, columns = [], {name: [] for name in names}
    for row in rows:
        step = _number(row.get("step"))
        if step is None:
            continue
        steps.append(step)
        for name in names:
            columns[name].append(_number(row.get(name)))
    if not steps:
        return f"{path.name} has no numeric steps"
    return steps, columns


def _number(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _say(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=7, wrap=True,
            transform=ax.transAxes)
    ax.set_axis_off()


