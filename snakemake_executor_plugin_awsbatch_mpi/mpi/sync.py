"""Copy a directory tree over an authenticated channel as a streamed tar archive.

Why a tar stream: it keeps the tree's structure, modes and symlinks, needs no temporary
archive on either side, and the standard library reads and writes it incrementally. The
receiver extracts with the ``data`` filter (nothing outside the target, no device files, no
setuid bits); members the filter refuses (e.g. a symlink pointing outside the tree) are
skipped with a warning instead of failing the whole launch.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import nodelog
from .protocol import KIND_DATA, Channel, ProtocolError

CHUNK = 1 << 20


@dataclass
class TreeStats:
    files: int = 0
    bytes: int = 0
    skipped: int = 0

    def describe(self) -> str:
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        return f"{self.files} files, {self.bytes / 1e6:.1f} MB{skipped}"


class _FrameWriter(io.RawIOBase):
    """File-like sink that sends what is written as ``D`` frames; close() sends the end mark."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.buffer += data
        while len(self.buffer) >= CHUNK:
            self.channel.send(KIND_DATA, bytes(self.buffer[:CHUNK]))
            del self.buffer[:CHUNK]
        return len(data)

    def finish(self) -> None:
        if self.buffer:
            self.channel.send(KIND_DATA, bytes(self.buffer))
            self.buffer.clear()
        self.channel.send(KIND_DATA, b"")


class _FrameReader(io.RawIOBase):
    """File-like source fed by ``D`` frames; an empty frame is the end of the stream."""

    def __init__(self, channel: Channel):
        self.channel = channel
        self.pending = b""
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self.pending and not self.eof:
            kind, data = self.channel.recv()
            if kind != KIND_DATA:
                raise ProtocolError(f"expected tar data, got frame kind {kind!r}")
            if data:
                self.pending = data
            else:
                self.eof = True
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n

    def drain(self) -> None:
        """Read up to the end mark (tar stops reading at its own end-of-archive blocks)."""
        while self.readinto(bytearray(CHUNK)):
            pass


def send_tree(channel: Channel, root: Path, exclude: Iterable[Path] = ()) -> TreeStats:
    """Send root's contents (not root itself) as a tar stream; ``exclude`` paths are left out."""
    stats = TreeStats()
    excluded = set()
    for path in exclude:
        try:
            excluded.add("./" + Path(path).resolve().relative_to(root.resolve()).as_posix())
        except ValueError:
            continue  # not inside root

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if any(info.name == ex or info.name.startswith(ex + "/") for ex in excluded):
            return None
        if info.isfile():
            stats.files += 1
            stats.bytes += info.size
        return info

    writer = _FrameWriter(channel)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=f"./{entry}", recursive=True, filter=keep)
    writer.finish()
    return stats


def _fallback_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """For Pythons without tarfile filters (3.11.0-3.11.3): the essential checks only."""
    target = os.path.realpath(os.path.join(dest, member.name))
    if os.path.commonpath([target, os.path.realpath(dest)]) != os.path.realpath(dest):
        raise ValueError(f"{member.name} would land outside the target directory")
    if member.issym() or member.islnk():
        link = os.path.join(os.path.dirname(target), member.linkname)
        if os.path.isabs(member.linkname) or not os.path.realpath(link).startswith(
            os.path.realpath(dest)
        ):
            raise ValueError(f"{member.name} links outside the target directory")
    if member.isdev():
        raise ValueError(f"{member.name} is a device file")
    member.mode &= 0o777
    return member


def receive_tree(channel: Channel, target: Path) -> TreeStats:
    """Extract a tar stream from the channel into target (created if needed)."""
    stats = TreeStats()
    log = nodelog.get()
    data_filter = getattr(tarfile, "data_filter", None)
    errors: tuple[type[BaseException], ...] = (
        (tarfile.FilterError, ValueError) if hasattr(tarfile, "FilterError") else (ValueError,)
    )

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        try:
            member = data_filter(member, dest) if data_filter else _fallback_filter(member, dest)
        except errors as exc:
            stats.skipped += 1
            log.warning("not replicating %s: %s", member.name, exc)
            return None
        if member.isfile():
            stats.files += 1
            stats.bytes += member.size
        return member

    target.mkdir(parents=True, exist_ok=True)
    reader = _FrameReader(channel)
    stream = io.BufferedReader(reader, CHUNK)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        if data_filter:
            tar.extractall(target, filter=check)
        else:  # pragma: no cover - old 3.11 patch releases
            for member in tar:
                checked = check(member, str(target))
                if checked is not None:
                    tar.extract(checked, target)
    reader.drain()
    return stats
