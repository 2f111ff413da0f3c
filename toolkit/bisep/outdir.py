"""Output and experiment folders: checked before any work, locked while a run writes them,
cleared of the temporary files of runs that died.

A command that writes a folder (``bisep separate``, ``bisep train``) calls
:func:`prepare` first: it creates the folder, proves it writable with a probe file, checks the
free space against what the run will write, and takes the folder's lock, so that a full disk or
a read-only folder is reported before the work, not after it, and a second run into the same
folder stops with a message naming the first instead of interleaving with it.

The lock is a PID file, ``<folder>/.bisep.lock`` (JSON: pid, host, command, start time),
created with ``O_EXCL``. A lock whose process no longer runs on this host is stale and taken
over; one from another host is trusted (its process cannot be checked from here).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bisep.errors import UserError

log = logging.getLogger(__name__)

LOCK_NAME = ".bisep.lock"
# bisep.atomic's temporary names: .<final name>.<pid>.tmp
_TMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")


class OutputError(OSError, UserError):
    """A folder that cannot take a run's outputs; the message names it and the fix."""


def check_writable(folder: str | Path, need_bytes: int = 0, option: str = "the output folder"
                   ) -> Path:
    """Create ``folder`` if needed and prove it writable and roomy enough.

    Args:
        folder: where the run writes.
        need_bytes: about how much the run will write (0: do not check the free space).
        option: how the user named the folder, for the message (``"--out-dir"``).

    Raises:
        OutputError: the folder cannot be created or written, or has too little space.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{option} {folder} cannot be created ({exc.strerror or exc}). "
                          f"Choose another folder, or fix the path or its permissions.") from None
    probe = folder / f".bisep-probe.{os.getpid()}.tmp"
    try:
        probe.write_bytes(b"\0" * 4096)
    except OSError as exc:
        raise OutputError(f"{option} {folder} is not writable ({exc.strerror or exc}). "
                          f"Choose another folder, or fix its permissions or free space.") from None
    finally:
        probe.unlink(missing_ok=True)
    check_space(folder, need_bytes, option)
    return folder


def check_space(folder: str | Path, need_bytes: int, option: str = "the output folder") -> None:
    """Refuse a folder whose file system has less than ``need_bytes`` free.

    Raises:
        OutputError: the message gives both sizes.
    """
    free = shutil.disk_usage(folder).free
    if need_bytes and free < need_bytes:
        raise OutputError(f"{option} {folder} has {_size(free)} free, but the outputs need "
                          f"about {_size(need_bytes)}. Free some space or choose another folder.")


def _size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.0f} kB"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _stale(holder: dict) -> bool:
    pid = holder.get("pid")
    # An unreadable lock is what a run killed between creating and writing it leaves.
    if not isinstance(pid, int):
        return True
    return holder.get("host") == socket.gethostname() and not pid_alive(pid)


@contextmanager
def locked(folder: str | Path, command: str | None = None) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block (see the module docstring).

    Raises:
        OutputError: a live run holds the lock; the message names its command and pid.
    """
    folder = Path(folder)
    path = folder / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "command": command or " ".join(["bisep", *sys.argv[1:]]),
          "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if not _stale(holder):
                raise OutputError(
                    f"{folder} is in use by another run: `{holder.get('command')}` (pid "
                    f"{holder.get('pid')} on {holder.get('host')}, since "
                    f"{holder.get('started')}). Wait for it to finish or write elsewhere; if "
                    f"no such run exists, delete {path}.") from None
            log.warning("%s: removing the stale lock of pid %s (not running)", folder,
                        holder.get("pid"))
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            json.dump(me, handle)
        break
    else:
        raise OutputError(f"{folder}: could not take the lock {path}; another run keeps "
                          f"taking it. Write elsewhere.")
    try:
        yield path
    finally:
        # Only our own lock: a run that found ours stale would have replaced it.
        if _holder(path).get("pid") == me["pid"]:
            path.unlink(missing_ok=True)


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete the temporary files (``bisep.atomic``) of processes that no longer run.

    Called with the folder's lock held, so no live bisep run of this folder owns them;
    a live process's file (e.g. of another tool) is kept.
    """
    removed = []
    for path in Path(folder).rglob(".*.tmp"):
        match = _TMP_NAME.match(path.name)
        if match and path.is_file() and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.warning("%s: removed %d temporary file(s) left by runs that died", folder,
                    len(removed))
    return removed


@contextmanager
def prepare(folder: str | Path, need_bytes: int = 0, option: str = "the output folder",
            command: str | None = None) -> Iterator[Path]:
    """:func:`check_writable`, then :func:`locked` and :func:`remove_orphans`: what a
    command does with its output folder before it writes anything."""
    folder = check_writable(folder, need_bytes, option)
    with locked(folder, command):
        remove_orphans(folder)
        yield folder
