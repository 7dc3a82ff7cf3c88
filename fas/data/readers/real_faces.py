"""A folder of real faces only (FFHQ-style): any nested folders of images, all bona fide.

If ROOT has split folders (train, dev or val/valid, test) every image must lie in one of them; otherwise each image
gets a split from a stable hash of its relative path (train 90%, dev 5%, test 5%), so re-reading the same tree
always gives the same split. Each image is its own subject (such collections carry no identities).
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePath

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import (
    disambiguate,
    make_row,
    media_of,
    no_samples,
    reject_protocol,
    split_of,
    walk_media,
)

DOMAIN = "real_faces"
SPLIT_PERCENT = (("train", 90), ("dev", 95), ("test", 100))  # cumulative


def hashed_split(rel: PurePath) -> str:
    """train/dev/test from the relative path's SHA-1, independent of the machine, Python version and file order."""
    bucket = int.from_bytes(hashlib.sha1(rel.as_posix().encode()).digest()[:8], "big") % 100
    return next(split for split, upto in SPLIT_PERCENT if bucket < upto)


def _split(rel: PurePath, has_split_folders: bool, path: Path) -> str:
    if not has_split_folders:
        return hashed_split(rel)
    split = split_of(rel.parts[0]) if len(rel.parts) > 1 else None
    if split is None:
        raise ManifestError(f"{path}: image outside the split folders; when ROOT has train/dev/test folders every "
                            "image must be inside one of them")
    return split


@register("real_faces")
def read_real_faces(root: Path, protocol: str | None) -> list[dict]:
    """Every image under ROOT as a bona fide sample."""
    reject_protocol("real_faces", protocol)
    has_split_folders = any(split_of(p.name) for p in root.iterdir() if p.is_dir())
    rows = []
    for path in (p for p in walk_media(root) if media_of(p) == "image"):
        rel = path.relative_to(root)
        rows.append(make_row(path, rel, domain=DOMAIN, label=1, attack=REAL, subject=rel.with_suffix("").as_posix(),
                             split=_split(rel, has_split_folders, path)))
    if not rows:
        raise no_samples(root, "image files (.jpg .jpeg .png .bmp .webp) in any nested folders")
    return disambiguate(rows)
