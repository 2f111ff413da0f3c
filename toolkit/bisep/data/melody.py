"""Instruments of the ``synth_music`` dataset and the melodies they play.

:data:`INSTRUMENTS` maps each of MUSIC's instruments that General MIDI has to an
:class:`Instrument`: the programs that may voice it, its pitch range, the note lengths it
favours and how detached its notes are. :func:`make_melody` draws one seeded melody for an
instrument as a plain note list, so the same list can be rendered by any backend
(:mod:`bisep.data.soundfont` renders it with a soundfont).

A change here that changes what is drawn or rendered must bump
``bisep.data.synth_music.GENERATOR_VERSION``: prepared folders are only re-rendered when
their recorded fingerprint differs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Instrument:
    """How melodies of one instrument are drawn.

    Attributes:
        programs: General MIDI programs (0-based); one is drawn per stem.
        low, high: MIDI pitch range of its melodies (inside the real instrument's).
        beats: note lengths in beats, drawn uniformly (repeat a value to weight it).
        legato: range of the sounding fraction of each note (articulation).
    """

    programs: tuple[int, ...]
    low: int
    high: int
    beats: tuple[float, ...]
    legato: tuple[float, float]


INSTRUMENTS: dict[str, Instrument] = {
    "accordion": Instrument((21,), 53, 81, (0.5, 1, 1, 2), (0.85, 0.98)),
    "acoustic_guitar": Instrument((24, 25), 40, 76, (0.25, 0.5, 0.5, 1), (0.6, 0.95)),
    "cello": Instrument((42,), 36, 69, (0.5, 1, 1, 2), (0.8, 0.98)),
    "clarinet": Instrument((71,), 52, 84, (0.5, 0.5, 1, 1.5), (0.75, 0.95)),
    "flute": Instrument((73,), 60, 93, (0.25, 0.5, 0.5, 1), (0.7, 0.95)),
    "saxophone": Instrument((65, 66), 49, 77, (0.5, 0.5, 1, 1.5), (0.75, 0.95)),
    "trumpet": Instrument((56,), 54, 82, (0.25, 0.5, 1, 1), (0.6, 0.9)),
    "tuba": Instrument((58,), 29, 58, (1, 1, 2), (0.7, 0.95)),
    "violin": Instrument((40,), 55, 93, (0.25, 0.5, 0.5, 1, 2), (0.8, 0.98)),
    "xylophone": Instrument((13,), 65, 96, (0.25, 0.25, 0.5), (0.3, 0.6)),
}
"""MUSIC's instruments (erhu has no General MIDI program) with their melody settings."""

SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
          "dorian": (0, 2, 3, 5, 7, 9, 10), "pentatonic": (0, 2, 4, 7, 9)}
# Melody steps in scale degrees: mostly stepwise motion, some leaps.
STEPS = np.array([-4, -2, -1, -1, 0, 1, 1, 2, 4])


def make_melody(instrument: Instrument, rng: np.random.Generator, duration: float,
                tempo: float, tonic: int, scale: str) -> list[tuple[float, float, int, int]]:
    """A random melody filling ``duration`` seconds.

    The pitches walk on ``scale`` from ``tonic`` inside a window of about an octave and a
    half drawn within the instrument's range (so clips use different registers).

    Returns:
        ``[(start_s, end_s, pitch, velocity), ...]`` sorted by start.
    """
    degrees = SCALES[scale]
    allowed = [p for p in range(instrument.low, instrument.high + 1)
               if (p - tonic) % 12 in degrees]
    width = min(len(allowed), int(1.5 * len(degrees)) + 1)
    first = int(rng.integers(0, len(allowed) - width + 1))
    window = allowed[first:first + width]
    beat = 60.0 / tempo
    position = int(rng.integers(width))
    base_velocity = rng.uniform(60, 110)
    legato = rng.uniform(*instrument.legato)
    t = rng.uniform(0.0, 0.5) * beat  # a short pickup, so onsets differ between stems
    notes = []
    while t < duration:
        length = float(rng.choice(instrument.beats)) * beat
        if notes and rng.random() < 0.12:  # a rest
            t += length
            continue
        position += int(rng.choice(STEPS))
        # Reflect at the window's edges rather than clip: clipping piles notes on the edges.
        period = 2 * (width - 1) if width > 1 else 1
        position %= period
        if position >= width:
            position = period - position
        velocity = int(np.clip(base_velocity + rng.normal(0, 8), 30, 127))
        notes.append((t, t + length * legato, window[position], velocity))
        t += length
    return notes
