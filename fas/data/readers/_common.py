"""Helpers every dataset reader shares, so media types, split names, ids and error messages agree across readers."""

from __future__ import annotations

import collections
import os
from pathlib import Path, PurePath

from fas.data.manifest import ManifestError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})
# .hdf5/.h5: a whole video stored as an HDF5 frame container (WMCA); fas.data.video.sample_frames reads it.
VIDEO_EXTS = frozenset({".avi", ".mov", ".mp4", ".mkv", ".hdf5", ".h5"})
SPLIT_ALIASES = {
    "train": "train",
    "dev": "dev",
    "devel": "dev",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
}


def media_of(path: str | PurePath) -> str | None:
    """'image' or 'video' from the extension (any case); None for files that are not media (annotations, notes)."""
    ext = PurePath(path).suffix.lower()
    return "image" if ext in IMAGE_EXTS else "video" if ext in VIDEO_EXTS else None


def split_of(name: str) -> str | None:
    """The manifest split a folder or column value names (train/dev/test, with devel/val/valid as dev), else None."""
    return SPLIT_ALIASES.get(name.strip().lower())


def walk_media(folder: Path) -> list[Path]:
    """Media files under ``folder``, sorted; follows symlinked folders (datasets are often linked in) and skips
    hidden entries (``.DS_Store``, ``.cache``) and files that are not images or videos."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".") and media_of(f)]
    return sorted(found)


def walk_videos(folder: Path) -> list[Path]:
    """Video files under ``folder``, sorted: video datasets ignore any extracted frames lying beside them."""
    return [p for p in walk_media(folder) if media_of(p) == "video"]


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def sample_id(domain: str, rel: str | PurePath) -> str:
    """The stable id ``<domain>/<relative path without extension>`` (POSIX separators on every OS)."""
    rel = PurePath(rel)
    return f"{domain}/{rel.with_suffix('').as_posix()}"


def make_row(path: Path, rel: str | PurePath, *, domain: str, label: int, attack: str, subject: str, split: str,
             **extra) -> dict:
    """One manifest row; ``extra`` holds the optional columns (session, device, light, ...) and reader extras."""
    media = media_of(path)
    if media is None:
        raise ManifestError(f"{path}: not a media file; expected one of {sorted(IMAGE_EXTS | VIDEO_EXTS)}")
    row = {"sample_id": sample_id(domain, rel), "path": str(path), "media": media, "label": int(label),
           "attack": attack, "domain": domain, "subject": str(subject), "split": split}
    row.update(extra)
    return row


def disambiguate(rows: list[dict]) -> list[dict]:
    """Keep ids unique without changing the common case: files that share a stem get their extension appended,
    and a file listed in several splits gets its split."""
    for widen in (lambda r: r["sample_id"] + Path(r["path"]).suffix, lambda r: f"{r['sample_id']}@{r['split']}"):
        counts = collections.Counter(r["sample_id"] for r in rows)
        for row in rows:
            if counts[row["sample_id"]] > 1:
                row["sample_id"] = widen(row)
    return rows


def reject_protocol(dataset: str, protocol: str | None) -> None:
    """Readers without protocols refuse one, so a typo never silently yields the whole dataset."""
    if protocol is not None:
        raise ManifestError(f"dataset {dataset!r} has no protocols; got protocol {protocol!r} (leave it unset)")


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ManifestError(f"{path} does not exist; expected {what}")
    return path


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise ManifestError(f"{path} is not a directory; expected {what}")
    return path


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) for the non-empty lines, so errors can point at the line."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def no_samples(root: Path, expected: str) -> ManifestError:
    return ManifestError(f"no samples found under {root}; expected {expected}")
