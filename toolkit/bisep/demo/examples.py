"""The example mixtures the demo page offers: a few test compositions of the recipe that
trained the model (with their instrument names and query phrases), or the audio files of
a folder the user names (``bisep demo --examples DIR``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bisep.errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DEFAULT_COUNT = 4


class ExamplesError(ValueError, UserError):
    """An ``--examples`` folder that offers nothing to play."""


@dataclass(frozen=True)
class Example:
    """One example row: the mixture, what to type as its query, and its caption.

    Attributes:
        audio: the mixture file.
        query: the query field's text for it (the first source's phrase; empty when the
            sources are unknown).
        label: the caption shown under the example ("test_000003: flute + xylophone").
    """

    audio: Path
    query: str
    label: str


def manifest_examples(manifest: str | Path, count: int = DEFAULT_COUNT) -> list[Example]:
    """``count`` compositions of a test manifest, chosen in file order so that each adds
    an instrument not shown yet (a page of four cello duets shows little)."""
    from bisep.data.manifest import item_phrases, read_manifest

    items = [item for item in read_manifest(manifest, check_files=False)
             if Path(item["audio"]).is_file()]
    chosen, seen = [], set()
    for item in items:
        if len(chosen) == count:
            break
        if not set(item["labels"]) <= seen:
            chosen.append(item)
            seen.update(item["labels"])
    return [Example(Path(item["audio"]), item_phrases(item)[0],
                    f"{item['id']}: {' + '.join(item['labels'])}") for item in chosen]


def folder_examples(folder: str | Path) -> list[Example]:
    """Every audio file directly in ``folder``, sorted, captioned with its name.

    Raises:
        ExamplesError: the folder does not exist or holds no audio file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ExamplesError(f"--examples {folder}: no such folder; name a folder of audio "
                            f"files ({', '.join(AUDIO_SUFFIXES)}).")
    files = sorted(p for p in folder.iterdir() if p.is_file()
                   and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ExamplesError(f"--examples {folder}: the folder holds no audio file "
                            f"({', '.join(AUDIO_SUFFIXES)}).")
    return [Example(path, "", path.stem) for path in files]
