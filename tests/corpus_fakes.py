"""Tiny fake copies of MUSIC, VGGSound and AudioCaps for the corpus recipe tests.

Each builder writes, under a folder, a few short clips (tones and noise at 44.1 or 48 kHz,
some stereo) as WAV and as MP4 (AAC audio, some with a tiny video stream) with the
dataset's real metadata format, plus broken entries on purpose. It returns the ids that
must be skipped, with their reasons: one listed but missing, one corrupt file (random
bytes), one silent clip, one too short, one MP4 without an audio stream.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf

BROKEN = ("missing", "unreadable", "silent", "too_short", "no_audio_stream")


def signal(index: int, seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    """A clip that differs per index: a tone with vibrato plus a little noise,
    ``(channels, time)`` float32 at about -16 dBFS."""
    rng = np.random.default_rng(index)
    t = np.arange(round(seconds * rate)) / rate
    freq = 200.0 + 37.0 * index
    tone = 0.2 * np.sin(2 * np.pi * freq * t + 3 * np.sin(2 * np.pi * 5 * t))
    out = np.stack([tone + 0.02 * rng.standard_normal(len(t)) for _ in range(channels)])
    return out.astype(np.float32)


def write_wav(path: Path, audio: np.ndarray, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio.T, rate)
    return path


def write_mp4(path: Path, audio: np.ndarray | None, rate: int, video: bool = False) -> Path:
    """An MP4 with an AAC stream of ``audio`` ``(channels, time)`` (None: no audio) and,
    with ``video``, a 32x32 MPEG-4 stream."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        if video:
            picture = container.add_stream("mpeg4", rate=10)
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
        if audio is not None:
            layout = "stereo" if audio.shape[0] == 2 else "mono"
            sound = container.add_stream("aac", rate=rate, layout=layout)
            for start in range(0, audio.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(audio[:, start:start + 1024]), format="fltp",
                    layout=layout)
                frame.sample_rate, frame.pts = rate, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
        if video:
            for i in range(5):
                image = np.full((32, 32, 3), 40 * i, np.uint8)
                container.mux(picture.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(picture.encode(None))
    return path


def write_media(path: Path, index: int, seconds: float, rate: int = 44100, channels: int = 1,
                video: bool = False) -> Path:
    """A good clip as WAV or MP4 (by ``path``'s suffix)."""
    audio = signal(index, seconds, rate, channels)
    return write_mp4(path, audio, rate, video) if path.suffix == ".mp4" \
        else write_wav(path, audio, rate)


def write_broken(path: Path, reason: str, rate: int = 44100) -> None:
    """A file that must be skipped for ``reason`` (nothing for ``missing``)."""
    if reason == "unreadable":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(np.random.default_rng(7).bytes(3000))
    elif reason == "silent":
        write_wav(path, np.zeros((1, rate), np.float32), rate)
    elif reason == "too_short":
        write_wav(path, signal(99, 0.1, rate), rate)
    elif reason == "no_audio_stream":
        write_mp4(path, None, rate, video=True)


def fake_music(root: Path) -> dict[str, str]:
    """MUSIC: 6 instruments x 3 good videos (1.2 s) + 5 broken; returns {id: reason}."""
    videos, index, broken = {}, 0, {}
    for instrument in ("accordion", "acoustic_guitar", "cello", "flute", "trumpet", "violin"):
        ids = videos.setdefault(instrument, [])
        for k in range(3):
            video = f"{instrument[:3]}Vid{k}-x"
            ids.append(video)
            suffix = ".mp4" if k % 2 else ".wav"
            write_media(root / instrument / f"{video}{suffix}", index, 1.2,
                        rate=48000 if k == 1 else 44100, channels=2 if k == 2 else 1,
                        video=k == 1)
            index += 1
    for reason in BROKEN:
        video = f"bad_{reason}"
        videos["violin"].append(video)
        write_broken(root / "violin" / f"{video}{'.mp4' if 'audio' in reason else '.wav'}",
                     reason)
        broken[f"violin_{video}"] = reason
    videos["cello"].append("celVid0-x")  # listed twice: used once
    (root / "MUSIC21_solo_videos.json").write_text(json.dumps({"videos": videos}))
    return broken


def fake_vggsound(root: Path) -> dict[str, str]:
    """VGGSound: 4 classes x 4 clips (1 s) under the three file namings + 5 broken."""
    rows, broken, index = [], {}, 0
    for label in ("dog barking", "playing violin, fiddle", "rain", "male speech, man speaking"):
        for k in range(4):
            video, start = f"yt{index:02d}_{label[:3]}", 10 * k
            rows.append([video, start, label, "test" if k == 3 else "train"])
            name = {0: f"{video}_{start:06d}.mp4", 1: f"{video}_{start}_{start + 10}.wav",
                    2: f"{video}.mp4", 3: f"{video}_{start:06d}.wav"}[k]
            write_media(root / "video" / name, index, 1.0, rate=48000 if k == 2 else 44100,
                        channels=2 if k == 0 else 1, video=k == 0)
            index += 1
    for reason in BROKEN:
        video = f"bad-{reason}"
        rows.append([video, 30, "rain", "train"])
        write_broken(root / "video" / f"{video}_000030{'.mp4' if 'audio' in reason else '.wav'}",
                     reason)
        broken[f"{video}_000030"] = reason
    with open(root / "vggsound.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return broken


AUDIOCAPS_CAPTIONS = [
    "A man speaks followed by a dog barking",
    "Birds chirp while wind blows through trees",
    "A vehicle engine revs then accelerates away",
    "Water runs from a faucet as a woman talks",
    "Rain falls on a roof with distant thunder",
    "A baby cries and a woman speaks, then a door closes",
    "People applaud and cheer",
    "A bell rings several times",
    "An aircraft engine hums with wind noise",
    "A train horn blows as the train passes by",
    "A cat meows while music plays in the background",
    "Footsteps on gravel followed by a car door slamming",
    "A crowd murmurs and a man speaks over a loudspeaker",
    "Typing on a keyboard with a clock ticking",
    "A motorcycle idles then drives off",
    "Sheep bleat and a dog barks in the distance",
]


def fake_audiocaps(root: Path) -> dict[str, str]:
    """AudioCaps: train/val/test csv (val and test with 2 captions per clip), clips of 1 s
    as <id>.wav, Y<id>.wav, <audiocap_id>.mp4, plus 5 broken train clips."""
    groups = {"train": 6, "val": 8, "test": 4}
    index, cap_id, broken = 0, 1000, {}
    for group, count in groups.items():
        rows = [["audiocap_id", "youtube_id", "start_time", "caption"]]
        for k in range(count):
            video = f"{group[:2]}Clip{k}_{'-' if k % 2 else 'a'}Z"
            captions = 1 if group == "train" else 2
            for c in range(captions):
                text = AUDIOCAPS_CAPTIONS[(index + 5 * c) % len(AUDIOCAPS_CAPTIONS)]
                rows.append([str(cap_id), video, "30", text])
                cap_id += 1
            name = {0: f"{video}.wav", 1: f"Y{video}.wav", 2: f"{cap_id - 1}.mp4"}[k % 3]
            write_media(root / "audio" / group / name, index, 1.0,
                        rate=48000 if k % 3 == 2 else 44100, channels=2 if k == 1 else 1,
                        video=k == 2)
            index += 1
        if group == "train":
            for reason in BROKEN:
                video = f"bad{reason}"
                rows.append([str(cap_id), video, "0", "A dog barks"])
                cap_id += 1
                write_broken(root / "audio" / "train" /
                             f"{video}{'.mp4' if 'audio' in reason else '.wav'}", reason)
                broken[video] = reason
        with open(root / f"{group}.csv", "w", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return broken
