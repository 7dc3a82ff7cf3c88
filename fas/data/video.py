"""Frame sampling from videos: N uniformly spaced frames, or every k-th frame.

Encoded videos (.avi, .mp4, ...) are decoded with PyAV. HDF5 videos (.hdf5/.h5, as WMCA ships them) are frame
containers read with h5py; two layouts are understood, both written by Idiap's bob toolkit:

* ``bob.bio.video.FrameContainer`` (the layout of the public WMCA release, e.g. ``WMCA_preprocessed_RGB``): one
  top-level group ``Frame_<n>`` per frame holding a dataset ``array`` of shape (3, H, W), uint8, RGB planes, and
  optionally a ``FrameIndexes`` group whose members ``"0"``, ``"1"``, ... name the frame groups in video order
  (without it, frames are ordered by ``<n>``). Some WMCA files skip frame numbers; the stored ``<n>`` is returned
  as the frame index.
* ``bob.bio.video.VideoLikeContainer``: a dataset ``data`` of shape (N, 3, H, W) and a dataset ``indices`` holding
  each frame's index.

Frames stored channels-last (H, W, 3) are accepted too. Sampling (uniform, or every k-th) counts the frames present,
in video order, the same way as for PyAV videos; only the frames kept are read from disk.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np

HDF5_EXTENSIONS = (".hdf5", ".h5")
VIDEO_EXTENSIONS = (".avi", ".mov", ".mp4", ".mkv", ".webm") + HDF5_EXTENSIONS
_FRAME_GROUP = re.compile(r"^Frame_(\d+)$")


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
                  threads: int = 0, max_frames: int | None = None) -> list[tuple[int, np.ndarray]]:
    """Decode the frames to keep as ``(frame_index, RGB uint8 array)``.

    ``every_k`` (when set) keeps frames 0, k, 2k, ...; otherwise ``num_frames`` uniformly spaced frames.
    ``max_frames``: only the video's first frames are candidates (SiW protocol 1 trains on the first 60).
    ``threads``: FFmpeg decoding threads, 0 for one per core (unused for HDF5 videos).
    HDF5 videos (``.hdf5``/``.h5``) are read as frame containers (see the module docstring).
    Any decoding failure raises ``VideoError`` with the reason, so callers can skip and count the file.
    """
    path = Path(path)
    limit = max_frames if max_frames and max_frames > 0 else None
    if path.suffix.lower() in HDF5_EXTENSIONS:
        return _sample_hdf5(path, num_frames, every_k, limit)
    try:
        if every_k:
            frames = _decode_all(path, threads)[:limit]
            picked = [(i, f) for i, f in enumerate(frames) if i % every_k == 0]
        else:
            declared = min(_declared_frames(path), limit or 1 << 62)
            if declared > 0:
                picked = list(_decode_selected(path, set(uniform_indices(declared, num_frames)), threads))
                if len(picked) < min(num_frames, declared):  # container lied about its length: truncated
                    raise VideoError(f"{path}: truncated, {len(picked)} of {min(num_frames, declared)} frames decoded")
            else:
                frames = _decode_all(path, threads)[:limit]
                picked = [(i, frames[i]) for i in uniform_indices(len(frames), num_frames)]
    except VideoError:
        raise
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as exc:
        raise VideoError(f"{path}: cannot decode video ({type(exc).__name__}: {exc})") from exc
    if not picked:
        raise VideoError(f"{path}: no decodable frames")
    return picked


# ---------------------------------------------------------------- HDF5 frame containers (WMCA)
def _hdf5_frames(path: Path, f) -> list[tuple[int, Callable[[], np.ndarray]]]:
    """(frame index, reader of that frame's array) of every stored frame, in video order; nothing is read yet."""
    import h5py

    data = f.get("data")
    if isinstance(data, h5py.Dataset):  # VideoLikeContainer
        if data.ndim != 4:
            raise VideoError(f"{path}: dataset 'data' has shape {data.shape}; expected (frames, 3, H, W)")
        indices = [int(i) for i in f["indices"][()]] if "indices" in f else list(range(len(data)))
        if len(indices) != len(data):
            raise VideoError(f"{path}: {len(indices)} indices for {len(data)} frames in 'data'")
        return [(index, lambda n=n: data[n]) for n, index in enumerate(indices)]
    groups = {name: int(m.group(1)) for name in f.keys() if (m := _FRAME_GROUP.match(name))}
    order = f.get("FrameIndexes")
    if isinstance(order, h5py.Group):  # FrameContainer's saved order: "0", "1", ... -> "Frame_<n>"
        names = [order[key][()] for key in sorted(order.keys(), key=int)]
        names = [name.decode() if isinstance(name, bytes) else str(name) for name in names]
        missing = [name for name in names if name not in groups]
        if missing:
            raise VideoError(f"{path}: FrameIndexes names frames that are not stored: {missing[:3]}")
    else:
        names = sorted(groups, key=groups.get)
    return [(groups[name], lambda name=name: f[name]["array"][()]) for name in names]


def _colour_frame(array: np.ndarray, path: Path, index: int) -> np.ndarray:
    """One stored frame as H x W x 3 RGB uint8: bob stores colour planes first (3, H, W)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    elif not (array.ndim == 3 and array.shape[2] == 3):
        hint = " (4 planes: the CDIT grey/depth/infrared/thermal file, not the colour one)" \
            if array.ndim == 3 and array.shape[0] == 4 else ""
        raise VideoError(f"{path}: frame {index} has shape {array.shape}{hint}; expected a colour frame (3, H, W)")
    if array.dtype != np.uint8:
        raise VideoError(f"{path}: frame {index} is {array.dtype}; expected uint8 colour values")
    return np.ascontiguousarray(array)


def _sample_hdf5(path: Path, num_frames: int, every_k: int | None,
                 limit: int | None = None) -> list[tuple[int, np.ndarray]]:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            frames = _hdf5_frames(path, f)[:limit]
            if not frames:
                raise VideoError(f"{path}: no colour frames; expected Frame_<n>/array groups or a 'data' dataset")
            if every_k:
                positions = [i for i in range(len(frames)) if i % every_k == 0]
            else:
                positions = uniform_indices(len(frames), num_frames)
            return [(frames[i][0], _colour_frame(frames[i][1](), path, frames[i][0])) for i in positions]
    except VideoError:
        raise
    except (OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:
        raise VideoError(f"{path}: cannot read HDF5 video ({type(exc).__name__}: {exc})") from exc
