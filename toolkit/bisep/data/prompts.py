"""Text prompts for labels: separation queries, mixture descriptions, training templates.

Labels are manifest names (``acoustic_guitar``); prompts use their text form
(``acoustic guitar``)::

    phrase("violin")                     -> "the sound of a violin"
    phrase("accordion")                  -> "the sound of an accordion"
    mixture_prompt(["flute", "violin"])  -> "the sound mixture of a flute and a violin"
    mixture_prompt(["violin"])           -> "the sound of a violin"
    fill(TEMPLATES[3], ["flute", "violin"]) -> "a piece for flute and violin"

Class names of real corpora (MUSIC, VGGSound) are free text that an article would spoil
("male speech, man speaking"); they take the same two templates as written, as the paper
words them::

    text_phrase("violin")                        -> "The sound of violin"
    text_mixture_prompt(["cello", "violin"])     -> "The sound mixture of cello and violin"

:data:`TEMPLATES` are the caption templates the audio-text model (mini_clap) trains on;
each has one ``{}`` slot that reads well with a bare label or a list of them, so
``template.format(label_text(label))`` works for one label. :data:`HELDOUT_TEMPLATE` is
never used in training: zero-shot accuracy with it measures whether the audio tower
learnt the instrument or the caption wording.
"""
from __future__ import annotations

import re
from typing import Sequence

#: The single-source query and the mixture description: the one wording of each.
PHRASE_TEMPLATE = "the sound of {}"
MIXTURE_TEMPLATE = "the sound mixture of {}"

TEMPLATES = (
    "the sound of the {}",
    "{} music",
    "music played on the {}",
    "a piece for {}",
    "the {} playing a melody",
    "listen to the {}",
)
HELDOUT_TEMPLATE = "a recording of someone playing the {}"


def label_text(label: str) -> str:
    """``"acoustic_guitar"`` -> ``"acoustic guitar"``."""
    return label.replace("_", " ")


def slugify(text: str) -> str:
    """A label name for free text: lower case, runs of other characters than letters and
    digits become ``_`` (``"Male speech, man speaking"`` -> ``"male_speech_man_speaking"``).
    """
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


def with_article(label: str) -> str:
    """The label's text with its indefinite article: ``"an accordion"``, ``"a violin"``."""
    text = label_text(label)
    return f"{'an' if text[:1].lower() in 'aeiou' else 'a'} {text}"


def join_words(words: Sequence[str]) -> str:
    """``["a"]`` -> ``"a"``; ``["a", "b", "c"]`` -> ``"a, b and c"``."""
    words = list(words)
    if not words:
        raise ValueError("join_words needs at least one word")
    if len(words) == 1:
        return words[0]
    return f"{', '.join(words[:-1])} and {words[-1]}"


def phrase(label: str) -> str:
    """The single-source query of a label: ``"the sound of a violin"``."""
    return PHRASE_TEMPLATE.format(with_article(label))


def mixture_prompt(labels: Sequence[str]) -> str:
    """The description of a clip holding ``labels`` (in the given order).

    One label gives :func:`phrase`; more give ``"the sound mixture of a flute and a
    violin"`` (``"..., a cello and a violin"`` for three).
    """
    labels = list(labels)
    if not labels:
        raise ValueError("mixture_prompt needs at least one label")
    if len(labels) == 1:
        return phrase(labels[0])
    return MIXTURE_TEMPLATE.format(join_words([with_article(lab) for lab in labels]))


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def text_phrase(text: str) -> str:
    """The query of a class name used as written: ``"The sound of violin"``."""
    return _sentence(PHRASE_TEMPLATE.format(text))


def text_mixture_prompt(texts: Sequence[str]) -> str:
    """The description of a mixture of class names used as written: ``"The sound mixture
    of cello and violin"``."""
    return _sentence(MIXTURE_TEMPLATE.format(join_words(texts)))


def fill(template: str, labels: Sequence[str] | str) -> str:
    """A template of :data:`TEMPLATES` (or :data:`HELDOUT_TEMPLATE`) filled with one label
    or a list of them: ``fill("{} music", ["flute", "violin"])`` -> ``"flute and violin
    music"``."""
    if isinstance(labels, str):
        labels = [labels]
    return template.format(join_words([label_text(lab) for lab in labels]))
