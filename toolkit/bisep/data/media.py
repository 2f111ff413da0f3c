"""Decoding the audio of dataset media files (videos and audio clips) to mono float32.

WAV, FLAC and OGG go through ``soundfile``; videos and other containers (mp4, mkv, webm,
m4a, mp3, ...) through PyAV, whose wheels bundle FFmpeg (there is no ``ffmpeg`` binary
to call, and torchaudio >= 2.9 cannot decode without TorchCodec). A file soundfile
refuses is tried with PyAV before it is declared unreadable. Resampling is
:func:`bisep.audio.resample_audio` (torchaudio's windowed sinc).

Every failure raises :class:`MediaError` with a reason code, which the skip report of a
dataset preparation (``skipped.tsv``) records:

==================  =====================================================
reason              meaning
==================  =====================================================
``missing``         the file is not there
``unreadable``      neither decoder can read it (corrupt, truncated, ...)
``no_audio_stream`` a container without audio (a silent-only video)
``too_short``       less audio than the dataset's minimum duration
``silent``          the audio (or the part used) is digital silence
==================  =====================================================
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from bisep.audio import resample_audio
from bisep.errors import UserError

REASONS = ("missing", "unreadable", "no_audio_stream", "too_short", "silent")
SOUNDFILE_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga"})
# Audio whose RMS is below this level is treated as silence (a muted upload, a video
# whose audio track is empty): 60 dB under full scale is far below any recording.
SILENCE_DB = -60.0
# Seconds decoded before a seek target: lapped codecs need the previous frames.
PREROLL = 0.5


class MediaError(ValueError, UserError):
    """A media file that cannot give usable audio.

    Attributes:
        path: the file (or what was looked for, for ``missing``).
        reason: one of :data:`REASONS`.
        detail: what went wrong, in words.
    """

    def __init__(self, path, reason: str, detail: str):
        if reason not in REASONS:
            raise ValueError(f"unknown media error reason {reason!r}; one of {REASONS}")
        self.path, self.reason, self.detail = str(path), reason, detail
        super().__init__(f"{path}: {detail} ({reason})")


def load_media(path: str | Path | None, sample_rate: int, offset: float = 0.0,
               duration: float | None = None) -> np.ndarray:
    """Decode ``duration`` seconds of a file's audio from ``offset``, as mono at
    ``sample_rate``.

    Args:
        path: an audio or video file; ``None`` (not found) raises ``missing``.
        sample_rate: the output rate (the file is resampled when it differs).
        offset: seconds from the start of the file's audio. Past the end gives an empty
            array (the caller's length check then reports ``too_short``).
        duration: seconds to read; ``None`` reads to the end. Less is returned when the
            file ends first.

    Returns:
        ``float32`` samples, channels averaged.

    Shape:
        output: ``(time,)``.

    Raises:
        MediaError: ``missing``, ``unreadable`` or ``no_audio_stream``.
    """
    audio, rate = decode(path, offset, duration)
    return resample_audio(audio, rate, sample_rate)


def decode(path: str | Path | None, offset: float = 0.0,
           duration: float | None = None) -> tuple[np.ndarray, int]:
    """:func:`load_media` without the resampling: ``(mono float32 samples, their rate)``.

    Shape:
        output samples: ``(time,)``.

    Raises:
        MediaError: ``missing``, ``unreadable`` or ``no_audio_stream``.
    """
    if path is None or not Path(path).is_file():
        raise MediaError(path, "missing", "no such file")
    path = Path(path)
    if offset < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"offset must be >= 0 and duration > 0, got {offset}, {duration}")
    audio = rate = None
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            audio, rate = _read_soundfile(path, offset, duration)
        except (sf.LibsndfileError, RuntimeError, TypeError):
            pass  # PyAV reads WAV variants and mislabelled files that libsndfile does not
    if audio is None:
        audio, rate = _read_av(path, offset, duration)
    if not np.all(np.isfinite(audio)):
        raise MediaError(path, "unreadable", "the decoded audio holds NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32), rate


def media_duration(path: str | Path) -> float | None:
    """Seconds of audio the file's header announces, ``None`` when it does not say.

    Raises:
        MediaError: ``missing``, ``unreadable`` or ``no_audio_stream``.
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "missing", "no such file")
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            info = sf.info(str(path))
            return info.frames / info.samplerate
        except (sf.LibsndfileError, RuntimeError, TypeError):
            pass
    av = _import_av()
    with _open_av(av, path) as container:
        stream = _audio_stream(container, path)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base
    return None


def check_usable(audio: np.ndarray, sample_rate: int, path, min_duration: float,
                 silence_db: float = SILENCE_DB) -> None:
    """Raise ``too_short`` or ``silent`` for audio a dataset cannot use.

    Args:
        audio: decoded samples, ``(time,)``.
        sample_rate: their rate.
        path: the file, for the message.
        min_duration: seconds the audio must last at least.
        silence_db: RMS level (dB re full scale) under which the audio counts as silent.

    Raises:
        MediaError: ``too_short`` or ``silent``.
    """
    seconds = len(audio) / sample_rate
    if seconds < min_duration:
        raise MediaError(path, "too_short", f"{seconds:.2f} s of audio, the dataset needs at "
                                            f"least {min_duration:g} s")
    if rms_db(audio) < silence_db:
        raise MediaError(path, "silent", f"the audio is silent (RMS below {silence_db:g} dBFS)")


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dB re full scale (``-inf`` for digital silence)."""
    power = float(np.mean(np.square(audio, dtype=np.float64))) if len(audio) else 0.0
    return 10 * np.log10(power) if power > 0 else float("-inf")


def _average_channels(planes: np.ndarray) -> np.ndarray:
    """The mean of ``(channels, time)`` samples over the channels, as float32.

    ``planes`` may be a transposed view of interleaved ``(time, channels)`` samples: a
    numpy mean over their short last axis runs about ten times slower than adding the
    channel rows. Below 8 channels the rows are added in order and divided as
    ``numpy.mean`` does, so the result is the same bit for bit; from 8 channels numpy
    sums pairwise, and its mean is used.
    """
    channels = planes.shape[0]
    if channels >= 8:
        return np.ascontiguousarray(planes.mean(axis=0), dtype=np.float32)
    out = np.array(planes[0], dtype=np.float32)
    for row in planes[1:]:
        out += row
    if channels > 1:
        out /= np.float32(channels)
    return out


def _read_soundfile(path: Path, offset: float, duration: float | None):
    with sf.SoundFile(str(path)) as handle:
        rate = handle.samplerate
        start = min(round(offset * rate), handle.frames)
        if start:
            handle.seek(start)
        frames = -1 if duration is None else round(duration * rate)
        data = handle.read(frames, dtype="float32", always_2d=True)
    return _average_channels(data.T), rate


def _import_av():
    try:
        import av
    except ImportError:
        raise ImportError("decoding videos and compressed audio needs PyAV: `pip install "
                          "av==18.1.0` (tools/install.sh pins it; its wheels bundle FFmpeg)"
                          ) from None
    return av


def _open_av(av, path: Path):
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(path, "unreadable", f"FFmpeg cannot open it ({exc})") from None


def _audio_stream(container, path: Path):
    if not container.streams.audio:
        kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
        raise MediaError(path, "no_audio_stream", f"the container has no audio stream "
                                                  f"(it holds {kinds})")
    return container.streams.audio[0]


def _read_av(path: Path, offset: float, duration: float | None):
    """Decode with PyAV, seeking near ``offset`` when the stream has timestamps."""
    av = _import_av()
    try:
        result = _decode_av(av, path, offset, duration, seek=offset > 0)
        if result is None:  # no frame timestamps after the seek: count samples from 0
            result = _decode_av(av, path, offset, duration, seek=False)
    except av.error.FFmpegError as exc:
        raise MediaError(path, "unreadable", f"FFmpeg failed while decoding ({exc})") from None
    return result


def _decode_av(av, path: Path, offset: float, duration: float | None, seek: bool):
    with _open_av(av, path) as container:
        stream = _audio_stream(container, path)
        origin = float(stream.start_time * stream.time_base) \
            if stream.start_time is not None and stream.time_base is not None else 0.0
        if seek:
            # Backward seek to a frame before the target; the frames in between are decoded
            # and dropped, so lapped codecs (AAC, MP3, Vorbis) have their history.
            target = origin + max(0.0, offset - PREROLL)
            container.seek(round(target / stream.time_base), stream=stream)
        # Frames come in the codec's sample format (planar or packed, int or float);
        # converting to planar float gives (channels, samples) for every codec. Frames are
        # short (1024 samples for AAC): their channels are averaged a batch at a time, not
        # frame by frame (the per-call overhead was a third of an AAC clip's time).
        to_float = av.AudioResampler(format="fltp")
        chunks, pending, rate, first_time, have = [], [], None, None, 0
        for frame in container.decode(stream):
            if rate is None:
                rate = frame.sample_rate
                if frame.time is None and seek:
                    return None
                first_time = 0.0 if frame.time is None else frame.time - origin
            for converted in to_float.resample(frame):
                pending.append(converted.to_ndarray())
                have += pending[-1].shape[1]
            if len(pending) >= _FRAMES_PER_BATCH:
                chunks.append(_average_batch(pending))
                pending = []
            if duration is not None and (have / rate + first_time) >= offset + duration + 0.1:
                break
        if pending:
            chunks.append(_average_batch(pending))
    if rate is None:
        return np.zeros(0, np.float32), stream.rate or 1
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    start = max(0, round((offset - first_time) * rate))
    stop = None if duration is None else start + round(duration * rate)
    return audio[start:stop], rate


# Decoded frames whose channels are averaged together (about 6 s of AAC at 44.1 kHz): few
# numpy calls, and a long video's audio is held as channels only that long.
_FRAMES_PER_BATCH = 256


def _average_batch(frames: list[np.ndarray]) -> np.ndarray:
    """Mono samples of consecutive ``(channels, samples)`` frames (channels may differ
    from frame to frame only if the stream changes layout: averaged frame by frame then)."""
    if len({frame.shape[0] for frame in frames}) > 1:
        return np.concatenate([_average_channels(frame) for frame in frames])
    return _average_channels(np.concatenate(frames, axis=1))
