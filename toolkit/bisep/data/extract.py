"""Stage-1 extraction: a corpus's media files into fixed-length 16-bit mono WAVs.

In ``nj`` worker processes: decode (:mod:`bisep.data.media`), resample to the recipe's
rate, crop or zero-pad to its length, and write the WAVs atomically under
``wav/<split>/``. A source either becomes one clip (a crop centred where the dataset says)
or, with ``max_segments > 1``, up to that many non-silent consecutive segments spread over
the file (long MUSIC videos). A bad file never stops the run: it gets a reason of
:data:`bisep.data.media.REASONS` in the skip report ``skipped.tsv``.

Re-runs are cheap: ``wav/extracted.jsonl`` records, per source, the settings and file
stamp it was extracted with and the clips it gave; a source whose record matches and
whose WAVs are complete is not decoded again. Sources that were skipped are tried again
(the file may have been added since).
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from bisep.atomic import write_text_if_changed
from bisep.audio import resample_audio
from bisep.data.media import MediaError, check_usable, decode, media_duration, rms_db
from bisep.data.pcm import to_pcm16, write_pcm16
from bisep.data.sources import Source

# Bump when extraction changes its output for the same settings: old WAVs are redone.
EXTRACT_VERSION = 1


@dataclass(frozen=True)
class ExtractSettings:
    """What every extracted clip is: its rate, length, the least audio a source must have
    (samples at ``sample_rate``) and the silence level."""

    sample_rate: int
    num_samples: int
    min_samples: int
    silence_db: float


def _init_worker() -> None:
    # One thread per worker process: nj processes already use the cores. torch is imported
    # only by a worker that resamples, so set the limit for that import when it comes.
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    else:
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


def extract_source(source: Source, wav_dir: str, settings: ExtractSettings) -> dict:
    """Decode one source and write its clip(s) (runs in a worker process).

    Returns:
        ``{"id", "clips": [[clip_id, wav path], ...]}`` or ``{"id", "reason", "detail"}``.
    """
    try:
        clips = _extract(source, Path(wav_dir), settings)
        return {"id": source.id, "clips": clips}
    except MediaError as exc:
        return {"id": source.id, "reason": exc.reason, "detail": exc.detail}
    except Exception as exc:  # noqa: BLE001  a decoder's odd failure must not stop the run
        return {"id": source.id, "reason": "unreadable",
                "detail": f"{type(exc).__name__}: {exc}"}


def _extract(source: Source, wav_dir: Path, s: ExtractSettings) -> list[list[str]]:
    rate, length = s.sample_rate, s.num_samples
    min_seconds = s.min_samples / rate
    if source.max_segments == 1 and source.center is not None:
        # Decode only the crop: the file may be a whole video.
        offset = max(0.0, source.center - length / rate / 2)
        total = media_duration(source.path)
        if total is not None:
            offset = max(0.0, min(offset, total - length / rate))
        audio, native = decode(source.path, offset, length / rate)
        if offset > 0 and len(audio) < min_seconds * native:
            audio, native = decode(source.path)  # the header's duration was wrong
    else:
        audio, native = decode(source.path)
    # Checked at the file's own rate first: a bad file is rejected before any resampling.
    check_usable(audio, native, source.path, min_seconds, s.silence_db)
    audio = resample_audio(audio, native, rate)
    if source.max_segments == 1 and source.center is not None:
        windows = [(0, audio)]
    else:
        windows = _windows(audio, source.max_segments, length, s.silence_db)
    if not windows:
        raise MediaError(source.path, "silent", f"every {length / rate:g} s segment is silent "
                                                f"(RMS below {s.silence_db:g} dBFS)")
    clips = []
    for index, piece in windows:
        piece = piece[:length]
        check_usable(piece, rate, source.path, min_seconds, s.silence_db)
        clip_id = source.id if source.max_segments == 1 else f"{source.id}_{index:03d}"
        path = wav_dir / source.split / f"{clip_id}.wav"
        write_pcm16(path, to_pcm16(np.pad(piece, (0, length - len(piece)))), rate)
        clips.append([clip_id, str(path)])
    return clips


def _windows(audio: np.ndarray, max_segments: int, length: int, silence_db: float):
    """``[(index, samples)]``: the centred crop (``max_segments == 1``), or up to
    ``max_segments`` non-silent consecutive segments, evenly spread over the file."""
    if max_segments == 1 or len(audio) <= length:
        start = max(0, (len(audio) - length) // 2)
        return [(0, audio[start:start + length])]
    pieces = [(k, audio[k * length:(k + 1) * length]) for k in range(len(audio) // length)]
    pieces = [(k, x) for k, x in pieces if rms_db(x) >= silence_db]
    if len(pieces) > max_segments:
        picks = np.unique(np.round(np.linspace(0, len(pieces) - 1, max_segments)).astype(int))
        pieces = [pieces[i] for i in picks]
    return pieces


def is_complete_wav(path: str | Path, settings: ExtractSettings) -> bool:
    """A readable 16-bit mono WAV of the recipe's rate and length."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return False
    return (info.samplerate == settings.sample_rate and info.frames == settings.num_samples
            and info.channels == 1 and info.subtype == "PCM_16")


def _stamp(source: Source, settings: ExtractSettings) -> str:
    """What a source's clips depend on: its file (size, mtime) and the settings."""
    stat = os.stat(source.path)
    key = [EXTRACT_VERSION, source.path, stat.st_size, stat.st_mtime_ns, source.split,
           source.center, source.max_segments, settings.sample_rate, settings.num_samples,
           settings.min_samples, settings.silence_db]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]



def extract_all(sources: list[Source], data_dir: Path, settings: ExtractSettings, nj: int = 1,
                name: str = "corpus") -> tuple[dict[str, dict], int]:
    """Extract every source not already extracted with the same settings and file stamp
    (``data_dir/wav/extracted.jsonl``), in ``nj`` worker processes.

    Returns:
        ``(id -> result of extract_source, number of sources reused)``; a source without a
        file gives reason ``missing``.
    """
    wav_dir = data_dir / "wav"
    journal_path = wav_dir / "extracted.jsonl"
    done = _read_journal(journal_path)
    results, todo, stamps = {}, [], {}
    for source in sources:
        if source.path is None:
            results[source.id] = {"id": source.id, "reason": "missing",
                                  "detail": "listed in the metadata, no file found"}
            continue
        stamps[source.id] = _stamp(source, settings)
        record = done.get(source.id)
        if record and record.get("stamp") == stamps[source.id] and all(
                is_complete_wav(data_dir / wav, settings) for _, wav in record["clips"]):
            results[source.id] = {"id": source.id, "clips": [
                [clip_id, str((data_dir / wav).resolve())] for clip_id, wav in record["clips"]]}
        else:
            todo.append(source)
    reused = len(stamps) - len(todo)
    wav_dir.mkdir(parents=True, exist_ok=True)
    with open(journal_path, "a", encoding="utf-8") as journal:
        for result in _run_jobs(todo, wav_dir, settings, nj, name):
            results[result["id"]] = result
            if "clips" in result:
                clips = [[c, os.path.relpath(w, data_dir)] for c, w in result["clips"]]
                journal.write(json.dumps({"id": result["id"], "stamp": stamps[result["id"]],
                                          "clips": clips}) + "\n")
                journal.flush()  # a killed run keeps what it finished
    # Rewrite the journal with one line per current source (drops stale lines).
    lines = [json.dumps({"id": s.id, "stamp": stamps[s.id], "clips": [
        [c, os.path.relpath(w, data_dir)] for c, w in results[s.id]["clips"]]}) + "\n"
        for s in sources if "clips" in results[s.id]]
    write_text_if_changed(journal_path, "".join(lines))
    return results, reused

def _run_jobs(todo: list[Source], wav_dir: Path, settings: ExtractSettings, nj: int,
              name: str):
    """Yield extraction results as they finish (in worker processes when nj > 1)."""
    if not todo:
        return
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc=f"{name} extract", unit="file",
               disable=not sys.stderr.isatty())
    if nj == 1:
        for source in todo:
            yield extract_source(source, str(wav_dir), settings)
            bar.update()
    else:
        # fork: workers start at once; the parent has run no torch op yet.
        context = multiprocessing.get_context(
            "fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(nj, mp_context=context,
                                 initializer=_init_worker) as pool:
            futures = [pool.submit(extract_source, s, str(wav_dir), settings)
                       for s in todo]
            for future in as_completed(futures):
                yield future.result()
                bar.update()
    bar.close()

def write_skip_report(path: Path, skipped: list[tuple[Source, dict]]) -> None:
    """``skipped.tsv`` (``id, path, reason, detail``): every source that gave no clip."""
    def cell(text) -> str:
        return str(text).replace("\t", " ").replace("\n", " ")

    rows = ["id\tpath\treason\tdetail\n"] + [
        f"{cell(s.id)}\t{cell(s.path or s.looked_for)}\t{r['reason']}\t{cell(r['detail'])}\n"
        for s, r in skipped]
    write_text_if_changed(path, "".join(rows))


def _read_journal(path: Path) -> dict[str, dict]:
    """``id -> record`` of ``wav/extracted.jsonl``; unreadable lines (a run killed while
    appending) are ignored."""
    records = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                records[record["id"]] = record
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return records
