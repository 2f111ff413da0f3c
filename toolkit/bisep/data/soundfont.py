"""Note lists rendered to audio from a General MIDI soundfont.

:class:`Renderer` loads a ``.sf2`` once (checking that it voices every program of
:data:`bisep.data.melody.INSTRUMENTS`) and renders one instrument's notes at a time with
``tinysoundfont``, mono, each render independent of the ones before it.
:func:`default_soundfont` finds the soundfont bundled with pretty_midi, and
:func:`is_audible` tells a usable render from a near-silent one.

A change here that changes what is drawn or rendered must bump
``bisep.data.synth_music.GENERATOR_VERSION``: prepared folders are only re-rendered when
their recorded fingerprint differs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bisep.data.manifest import DataError
from bisep.data.melody import INSTRUMENTS


def default_soundfont() -> Path:
    """pretty_midi's bundled General MIDI soundfont (TimGM6mb, 6 MB)."""
    try:
        import pretty_midi
    except ImportError:
        raise DataError("synth_music needs pretty_midi for its default soundfont: "
                        "`pip install pretty_midi`, or give soundfont=PATH.sf2.") from None
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


class Renderer:
    """Render single-instrument note lists with tinysoundfont, mono, at ``sample_rate``.

    Each render uses a fresh clone of the loaded soundfont (cheap: the sample data is
    shared), so no state carries over from one stem to the next and renders are
    reproducible in any order.
    """

    def __init__(self, soundfont: str | Path, sample_rate: int):
        try:
            from tinysoundfont import _tinysoundfont
        except ImportError:
            raise DataError("synth_music renders with tinysoundfont: "
                            "`pip install --no-deps tinysoundfont` (see docs/install.md)."
                            ) from None
        self._tsf = _tinysoundfont
        self.soundfont, self.sample_rate = Path(soundfont), sample_rate
        try:
            self._base = _tinysoundfont.SoundFont(str(soundfont))
        except Exception as exc:  # the binding raises plain RuntimeError/ValueError
            raise DataError(f"{soundfont}: cannot be loaded as a soundfont ({exc}). Give a "
                            f"General MIDI .sf2 file.") from None
        missing = [f"{name} (program {program})" for name, inst in INSTRUMENTS.items()
                   for program in inst.programs if self._base.get_preset_index(0, program) < 0]
        if missing:
            raise DataError(f"{soundfont}: has no preset for {', '.join(missing)} in bank 0. "
                            f"Use a General MIDI soundfont.")

    def render(self, program: int, notes: list[tuple[float, float, int, int]],
               num_samples: int) -> np.ndarray:
        """Render ``notes`` (see :func:`bisep.data.melody.make_melody`) as
        ``(num_samples,)`` float32."""
        synth = self._tsf.SoundFont(self._base)
        synth.set_output(self._tsf.OutputMode.Mono, self.sample_rate, 0.0)
        synth.channel_set_bank(0, 0)
        synth.channel_set_preset_number(0, program, False)
        events = sorted([(round(start * self.sample_rate), 1, pitch, velocity)
                         for start, _, pitch, velocity in notes]
                        + [(round(end * self.sample_rate), 0, pitch, 0)
                           for _, end, pitch, _ in notes])
        out = np.zeros(num_samples, np.float32)
        done = 0
        for sample, is_on, pitch, velocity in events:
            sample = min(sample, num_samples)
            if sample > done:
                synth.render(memoryview(out[done:sample]).cast("B"), False)
                done = sample
            if is_on:
                synth.channel_note_on(0, pitch, velocity / 127.0)
            else:
                synth.channel_note_off(0, pitch)
        if done < num_samples:
            synth.render(memoryview(out[done:]).cast("B"), False)
        return out


def is_audible(audio: np.ndarray, sample_rate: int, min_active: float = 0.5) -> bool:
    """Whether a raw render is usable: not silent, and sounding in at least
    ``min_active`` of its 50 ms frames (a frame sounds when its RMS is above 1/30 of
    the clip's, about -30 dB)."""
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < 1e-5:
        return False
    hop = sample_rate // 20
    frames = audio[:len(audio) // hop * hop].reshape(-1, hop)
    frame_rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    return float(np.mean(frame_rms > rms / 30)) >= min_active
