"""Frame sampling from videos with PyAV: N uniformly spaced frames, or every k-th frame."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import av
import numpy as np

VIDEO_EXTENSIONS = (".avi", ".mov", ".mp4", ".mkv", ".webm")


class VideoError(ValueError):
    """A video cannot be decoded (unreadable, truncated, or without frames)."""


def uniform_indices(num_available: int, num_frames: int) -> list[int]:
    """``num_frames`` indices spread evenly over ``[0, num_available)``, first and last included."""
    if num_available <= 0:
        return []
    if num_frames >= num_available:
        return list(range(num_available))
    return sorted({int(round(i)) for i in np.linspace(0, num_available - 1, num_frames)})


def _set_threads(stream, threads: int) -> None:
    """FFmpeg decodes on as many threads as there are cores when ``threads`` is 0; a worker that owns one core
    asks for 1, or every worker of a pool spawns a thread per core and they fight over the same cores."""
    stream.thread_type = "AUTO"
    stream.thread_count = threads


def _decode_all(path: Path, threads: int = 0) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        _set_threads(stream, threads)
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def _decode_selected(path: Path, wanted: set[int], threads: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        _set_threads(stream, threads)
        last = max(wanted)
        for index, frame in enumerate(container.decode(stream)):
            if index in wanted:
                yield index, frame.to_ndarray(format="rgb24")
            if index >= last:
                return


def _declared_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoError(f"{path}: no video stream")
        return int(container.streams.video[0].frames or 0)


def sample_frames(path: str | Path, num_frames: int = 10, every_k: int | None = None,
                  threads: int = 0) -> list[tuple[int, np.ndarray]]:
    """Decode the frames to keep as ``(frame_index, RGB uint8 array)``.

    ``every_k`` (when set) keeps frames 0, k, 2k, ...; otherwise ``num_frames`` uniformly spaced frames.
    ``threads``: FFmpeg decoding threads, 0 for one per core.
    Any decoding failure raises ``VideoError`` with the reason, so callers can skip and count the file.
    """
    path = Path(path)
    try:
        if every_k:
            frames = _decode_all(path, threads)
            picked = [(i, f) for i, f in enumerate(frames) if i % every_k == 0]
        else:
            declared = _declared_frames(path)
            if declared > 0:
                picked = list(_decode_selected(path, set(uniform_indices(declared, num_frames)), threads))
                if len(picked) < min(num_frames, declared):  # container lied about its length: truncated
                    raise VideoError(f"{path}: truncated, {len(picked)} of {min(num_frames, declared)} frames decoded")
            else:
                frames = _decode_all(path, threads)
                picked = [(i, frames[i]) for i in uniform_indices(len(frames), num_frames)]
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise VideoError(f"{path}: cannot decode video ({type(exc).__name__}: {exc})") from exc
    if not picked:
        raise VideoError(f"{path}: no decodable frames")
    return picked
