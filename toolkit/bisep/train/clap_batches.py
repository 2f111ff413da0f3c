"""The clips and batches that ``bisep train-clap`` trains mini_clap's audio tower on.

A batch (:class:`BatchMaker`) mixes these kinds of items, because the separator's weak loss
judges separator outputs that still leak:

- clean single-instrument clips of the pool;
- 2-instrument mixtures of the pool (rendered as such; their instruments count as equally
  loud);
- mixtures made on the fly from clean clips: 2 (sometimes 3) instruments, each added one at a
  level from ``added_level_db`` under or at the first one's, from leakage to a balanced mix;
- *masked outputs*, which look like a separator's: a made mixture of 2 (sometimes 3)
  instruments at levels from ``masked_level_db`` passes through a time-frequency mask built
  from the first instrument's ratio mask (sharpened or softened), blended with a smooth
  random mask. Because masking is linear, the output is exactly the sum of each
  instrument's masked part, so how much of each instrument it holds is known;
- *separator outputs* (:func:`separator_outputs`, drawn from a bank made before training):
  the masks of trained separators, queried with each instrument of 2-instrument mixtures of
  the pool's clips. The same linearity gives their exact leakage, so the judge learns what
  real separators leave behind, the outputs a separator trained against it would produce.

Every item carries the energy of each instrument's part in it (:class:`Batch`): the targets
of the ``energy`` objective (:func:`bisep.losses.audio_text.energy_share_loss`). Every item
also gets a random gain and a random circular time shift.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# STFT of the masked outputs: the separators' usual 32 ms window at 16 kHz.
MASK_N_FFT, MASK_HOP = 512, 128
# Masked outputs made at a time (:func:`masked_outputs`).
MASK_CHUNK = 8
# Key of a masked output's artefact energy in :attr:`Batch.energies` (``artefact_targets``).
ARTEFACT = "<artefact>"


@dataclass
class ClipSet:
    """Clips of one manifest held in memory: ``audio`` ``(n, samples)``, ``labels`` per clip
    (instrument names), ``ids``."""

    audio: torch.Tensor
    labels: list[tuple[str, ...]]
    ids: list[str]

    def subset(self, keep) -> "ClipSet":
        keep = list(keep)
        return ClipSet(self.audio[keep], [self.labels[i] for i in keep],
                       [self.ids[i] for i in keep])


@dataclass
class Batch:
    """One training batch.

    Attributes:
        audio: ``(M, samples)``.
        labels: the instruments of each item (sorted).
        energies: per item, the energy of each instrument's part (relative units); with
            ``artefact_targets``, a masked output's first instrument counts only its kept
            part and the rest is under :data:`ARTEFACT`.
    """

    audio: torch.Tensor
    labels: list[tuple[str, ...]]
    energies: list[dict[str, float]]


def load_clips(manifest: str | Path, sample_rate: int, clip_seconds: float) -> ClipSet:
    """Read every clip of a manifest at ``sample_rate`` (mono), cut or zero-padded to
    ``clip_seconds``."""
    from bisep.audio import read
    from bisep.data.manifest import DataError, read_manifest

    items = read_manifest(manifest)
    if not items:
        raise DataError(f"{manifest} lists no clips; re-run data preparation (recipe stage 1)")
    length = int(round(clip_seconds * sample_rate))
    audio = torch.zeros(len(items), length)
    for i, item in enumerate(items):
        wav, _ = read(item["audio"], sample_rate=sample_rate, mono=True)
        wav = torch.from_numpy(wav[0, :length])
        audio[i, :wav.shape[0]] = wav
    return ClipSet(audio, [tuple(sorted(item["labels"])) for item in items],
                   [item["id"] for item in items])


def split_by_count(clips: ClipSet) -> tuple[ClipSet, ClipSet]:
    """(single-instrument clips, clips with two or more)."""
    single = [i for i, lab in enumerate(clips.labels) if len(lab) == 1]
    multi = [i for i, lab in enumerate(clips.labels) if len(lab) > 1]
    return clips.subset(single), clips.subset(multi)


def unit_rms(audio: torch.Tensor) -> torch.Tensor:
    """Each row scaled to RMS 1 (silent rows stay 0)."""
    rms = audio.square().mean(dim=-1, keepdim=True).sqrt()
    return audio / rms.clamp_min(1e-8)


def db(value: torch.Tensor) -> torch.Tensor:
    """Amplitude factor of a level in dB."""
    return 10.0 ** (value / 20.0)


def masked_outputs(parts: torch.Tensor, sharpness: torch.Tensor, blend: torch.Tensor,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Separator-like outputs of mixtures, and each source's part in them.

    The mask is ``(1 - blend) · R0^sharpness + blend · N``: ``R0`` the magnitude ratio mask of
    source 0, ``N`` a smooth random mask in [0, 1]. It is applied to the mixture's STFT; the
    output is the sum of the masked sources, which are returned too.

    Args:
        parts: the sources of each mixture (zero rows for absent ones).
        sharpness: exponent of the ratio mask per mixture (> 1 sharper, < 1 softer).
        blend: share of the random mask per mixture, in [0, 1].
        generator: for the random masks.

    Shape:
        - parts: ``(n, P, samples)``.
        - sharpness, blend: ``(n,)``.
        - output: ``((n, samples), (n, P, samples))`` the outputs and each source's
          masked part (they sum to the output).
    """
    n, p, length = parts.shape
    freqs, frames = MASK_N_FFT // 2 + 1, length // MASK_HOP + 1
    # Smooth noise: uniform values on a coarse grid (about 500 Hz x 64 ms), interpolated.
    coarse = torch.rand(n, 1, freqs // 16 + 2, frames // 8 + 2, generator=generator)
    masked = parts.new_zeros(n, p, length)
    # A few items at a time, so that their spectra stay in the CPU's caches (about 1.2x
    # faster than the whole batch at once); no item's numbers depend on another item's.
    for first in range(0, n, MASK_CHUNK):
        items = slice(first, first + MASK_CHUNK)
        masked[items] = _masked_sources(parts[items], sharpness[items], blend[items],
                                        coarse[items])
    return masked.sum(dim=1), masked


def _masked_sources(parts: torch.Tensor, sharpness: torch.Tensor, blend: torch.Tensor,
                    coarse: torch.Tensor) -> torch.Tensor:
    """:func:`masked_outputs`' masked sources, ``(n, P, samples)``, given the coarse grids
    ``(n, 1, f, t)`` of their random masks."""
    n, p, length = parts.shape
    window = torch.hann_window(MASK_N_FFT, device=parts.device)
    # Rows source by source (source 0 of every item first). An absent source is an all-zero
    # row: its spectrum and masked part are zero, so its transforms are skipped (a quarter
    # of them when 2- and 3-source items share a batch). No row's STFT or iSTFT depends on
    # another row and adding a zero is exact, so the outputs keep their bits.
    rows = parts.transpose(0, 1).reshape(p * n, length)
    keep = rows.ne(0).any(dim=-1)
    keep[:n] = True  # source 0's magnitudes are the ratio mask's numerator
    item = torch.arange(n, device=parts.device).repeat(p)[keep]
    spec = torch.stft(rows[keep], MASK_N_FFT, MASK_HOP, window=window, return_complex=True)
    freqs, frames = spec.shape[-2:]
    mag = torch.hypot(spec.real, spec.imag)  # the complex abs's bits at about half its cost
    # Added source by source: the order, and so the bits, of a sum over the sources.
    total, start = mag[:n].clone(), n
    for source in range(1, p):
        present = keep[source * n:(source + 1) * n]
        block = mag[start:start + int(present.sum())]
        total[present] += block
        start += block.shape[0]
    ratio = mag[:n] / total.clamp_min(1e-8)
    noise = F.interpolate(coarse, size=(freqs, frames), mode="bilinear",
                          align_corners=False)[:, 0]
    mask = (1 - blend)[:, None, None] * ratio ** sharpness[:, None, None] \
        + blend[:, None, None] * noise
    # A real mask scales the real and imaginary parts alike: no complex product needed.
    masked_spec = torch.view_as_complex(torch.view_as_real(spec) * mask[item, ..., None])
    kept = torch.istft(masked_spec, MASK_N_FFT, MASK_HOP, window=window, length=length)
    masked = parts.new_zeros(p * n, length)
    masked[keep] = kept
    return masked.reshape(p, n, length).transpose(0, 1)


def target_artefacts(clean: torch.Tensor, masked: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a masked source into kept target and artefact.

    The masked source's component along the clean one, ``α s`` with
    ``α = <m, s> / |s|²``, is the kept target; the rest, ``m - α s``, is what the mask did to
    the source beyond a gain: the distortion an SDR counts and an SIR does not.

    Shape:
        - clean, masked: ``(n, samples)`` a source and its masked version.
        - output: ``((n,), (n,))`` kept energy and artefact energy (they add up to
          ``|m|²``).
    """
    power = clean.square().sum(-1).clamp_min(1e-12)
    alpha = (masked * clean).sum(-1) / power
    kept = alpha.square() * power
    return kept, (masked - alpha[:, None] * clean).square().sum(-1)


@torch.no_grad()
def separator_outputs(separator, conditioner, singles: ClipSet, count: int, seed: int,
                      level_db=(-6.0, 6.0), batch: int = 16) -> tuple[torch.Tensor, list, list]:
    """A trained separator's outputs on 2-instrument mixtures, with their exact leakage.

    ``count`` mixtures of two clean clips of different instruments (the second at a level
    from ``level_db``) are separated with each instrument's phrase; each source is passed
    through the same mask on its own, so every output's energy per instrument is known.

    Args:
        separator: a :class:`~bisep.separators.base.BaseSeparator` (eval mode).
        conditioner: gives the queries' text embeddings (and token states, for separators
            that read them).
        singles: clean single-instrument clips at the separator's sample rate.
        count: mixtures (two outputs each).
        seed: draws the clips and levels.
        level_db: range of the second clip's level against the first.

    Returns:
        ``(audio (2·count, samples), labels, energies, splits)``: ``labels`` and
        ``energies`` as in :class:`Batch` (the queried instrument first), ``splits`` the
        queried instrument's (kept, artefact) energies (:func:`target_artefacts`).
    """
    from bisep.data.prompts import phrase
    from bisep.separators.base import Conditioning

    generator = torch.Generator().manual_seed(seed)
    own = [lab[0] for lab in singles.labels]
    audio = unit_rms(singles.audio) * 0.05
    outputs, labels, energies, splits = [], [], [], []
    made = 0
    while made < count:
        n = min(batch, count - made)
        first = torch.randint(len(own), (4 * n,), generator=generator)
        second = torch.randint(len(own), (4 * n,), generator=generator)
        keep = [(int(a), int(b)) for a, b in zip(first, second) if own[a] != own[b]][:n]
        n = len(keep)
        level = db(level_db[0] + (level_db[1] - level_db[0]) * torch.rand(n, generator=generator))
        sources = torch.stack([torch.stack([audio[a], lv * audio[b]])
                               for (a, b), lv in zip(keep, level)])  # (n, 2, L)
        length = sources.shape[-1]
        spec, mag = separator.analyze(sources.sum(dim=1))
        names = [(own[a], own[b]) for a, b in keep]
        prompts = [phrase(x) for pair in names for x in pair]
        query = conditioner.embed_text(prompts).reshape(n, 2, -1).to(mag.dtype)
        tokens = mask = None
        if separator.uses_tokens:
            tokens, mask = conditioner.embed_text_tokens(prompts)
            tokens, mask = tokens.reshape(n, 2, *tokens.shape[1:]), mask.reshape(n, 2, -1)
        masks = separator.predict_masks(separator.encode(mag), Conditioning(query, tokens, mask))
        part_spec, _ = separator.analyze(sources.reshape(2 * n, length))
        part_spec = part_spec.reshape(n, 2, *part_spec.shape[1:])
        for q in range(2):  # q: the queried source of each mixture
            mask = masks[:, q:q + 1]
            parts = torch.stack([separator.synthesize(part_spec[:, i], mask, length)[:, 0]
                                 for i in (q, 1 - q)], dim=1)  # queried source first
            output = parts.sum(dim=1)
            outputs.append(output)
            energy = parts.square().sum(dim=-1)
            kept, artefact = target_artefacts(sources[:, q], parts[:, 0])
            for i, pair in enumerate(names):
                labels.append(tuple(sorted(pair)))
                energies.append({pair[q]: float(energy[i, 0]), pair[1 - q]: float(energy[i, 1])})
                splits.append((float(kept[i]), float(artefact[i])))
        made += n
    return torch.cat(outputs), labels, energies, splits


class BatchMaker:
    """Draws the training batches described in the module docstring (seeded).

    Args:
        singles, mixtures: the pool's single-instrument clips and its mixtures.
        conf: the resolved train config (:class:`bisep.train.clap_config.MiniClapTrainConfig`).
        bank: the output of :func:`separator_outputs` to draw separator outputs from.
        captions: the templates a caption is drawn from (a template with ``{}``, or
            ``None`` for the separator's :func:`~bisep.data.prompts.mixture_prompt`).
    """

    def __init__(self, singles: ClipSet, mixtures: ClipSet, conf: dict, captions: list,
                 bank: tuple | None = None):
        self.singles, self.mixtures = singles, mixtures
        self.bank = bank
        self.single_audio = unit_rms(singles.audio)
        self.mixture_audio = unit_rms(mixtures.audio)
        self.conf = conf
        self.captions = captions
        self.generator = torch.Generator().manual_seed(conf["seed"])
        self.rng = np.random.default_rng(conf["seed"])
        self.by_label: dict[str, list[int]] = {}
        for i, (label,) in enumerate(singles.labels):
            self.by_label.setdefault(label, []).append(i)
        self.label_names = sorted(self.by_label)

    def _uniform(self, low_high, n: int) -> torch.Tensor:
        low, high = low_high
        return low + (high - low) * torch.rand(n, generator=self.generator)

    def _draw_parts(self, level_db) -> tuple[torch.Tensor, tuple[str, ...]]:
        """``(count, samples)`` unit-RMS clips of distinct instruments, each after the first
        at a level from ``level_db``; their labels in the same order."""
        count = 3 if self.rng.random() < self.conf["three_fraction"] else 2
        count = min(count, len(self.label_names))
        labels = self.rng.choice(self.label_names, size=count, replace=False)
        idx = [int(self.rng.choice(self.by_label[lab])) for lab in labels]
        levels = torch.cat([torch.zeros(1), self._uniform(level_db, count - 1)])
        return db(levels)[:, None] * self.single_audio[idx], tuple(str(x) for x in labels)

    def _made_mixtures(self, n: int):
        audio, labels, energies = [], [], []
        for _ in range(n):
            parts, names = self._draw_parts(self.conf["added_level_db"])
            audio.append(parts.sum(dim=0))
            labels.append(tuple(sorted(names)))
            energies.append(dict(zip(names, parts.square().sum(dim=-1).tolist())))
        return audio, labels, energies

    def _masked(self, n: int):
        drawn = [self._draw_parts(self.conf["masked_level_db"]) for _ in range(n)]
        most = max(parts.shape[0] for parts, _ in drawn)
        parts = torch.zeros(n, most, self.single_audio.shape[1])
        for i, (item, _) in enumerate(drawn):
            parts[i, :item.shape[0]] = item
        low, high = self.conf["mask_sharpness"]
        sharpness = torch.exp(self._uniform((np.log(low), np.log(high)), n))
        blend = self._uniform((0.0, self.conf["mask_max_blend"]), n)
        audio, masked = masked_outputs(parts, sharpness, blend, self.generator)
        energy = masked.square().sum(dim=-1)
        energies = [dict(zip(names, energy[i, :len(names)].tolist()))
                    for i, (_, names) in enumerate(drawn)]
        if self.conf["artefact_targets"]:
            kept, artefact = target_artefacts(parts[:, 0], masked[:, 0])
            for i, (_, names) in enumerate(drawn):
                energies[i][names[0]] = float(kept[i])
                energies[i][ARTEFACT] = float(artefact[i])
        return list(audio), [tuple(sorted(names)) for _, names in drawn], energies

    def _from_bank(self, n: int):
        audio, labels, energies, splits = self.bank
        pick = torch.randint(len(labels), (n,), generator=self.generator).tolist()
        chosen = []
        for i in pick:
            energy = dict(energies[i])
            if self.conf["artefact_targets"]:
                queried = next(iter(energies[i]))  # the queried instrument comes first
                energy[queried], energy[ARTEFACT] = splits[i]
            chosen.append(energy)
        return list(audio[pick]), [labels[i] for i in pick], chosen

    def caption(self, labels) -> str:
        """A caption naming ``labels`` in a random order with a random template."""
        from bisep.data.prompts import fill, mixture_prompt

        labels = list(self.rng.permutation(list(labels)))
        template = self.captions[int(self.rng.integers(len(self.captions)))]
        return mixture_prompt(labels) if template is None else fill(template, labels)

    def __call__(self) -> Batch:
        """One batch."""
        conf = self.conf
        clean = torch.randint(len(self.singles.ids), (conf["clean_per_batch"],),
                              generator=self.generator)
        parts = [self.single_audio[clean]]
        labels = [self.singles.labels[i] for i in clean.tolist()]
        energies = [{lab[0]: 1.0} for lab in labels]
        if conf["pool_mixtures_per_batch"] and len(self.mixtures.ids):
            pool = torch.randint(len(self.mixtures.ids), (conf["pool_mixtures_per_batch"],),
                                 generator=self.generator)
            parts.append(self.mixture_audio[pool])
            labels += [self.mixtures.labels[i] for i in pool.tolist()]
            energies += [{lab: 1.0 for lab in self.mixtures.labels[i]} for i in pool.tolist()]
        if len(self.label_names) > 1:
            for count, make in ((conf["made_mixtures_per_batch"], self._made_mixtures),
                                (conf["masked_per_batch"], self._masked),
                                (conf["separator_per_batch"] if self.bank else 0,
                                 self._from_bank)):
                if count:
                    audio, more_labels, more_energies = make(count)
                    parts.append(torch.stack(audio))
                    labels += more_labels
                    energies += more_energies
        audio = unit_rms(torch.cat(parts))
        # RMS 0.05 (the renders' level) times a random gain; the tower normalises the level
        # itself, so the gain only moves the clip against the log floor and float rounding.
        audio = 0.05 * db(self._uniform(conf["gain_db"], audio.shape[0]))[:, None] * audio
        shifts = torch.randint(audio.shape[1], (audio.shape[0],), generator=self.generator)
        audio = torch.stack([torch.roll(a, int(s)) for a, s in zip(audio, shifts)])
        return Batch(audio, labels, energies)
