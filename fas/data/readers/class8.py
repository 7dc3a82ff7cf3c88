"""CLIPC8's 8-category data, in our own layout: ``ROOT/<split>/<letter>[_name]/<images>``.

A root holding split folders is one domain ("class8"); a root holding sub-folders that each hold split folders is
a multi-domain tree, each sub-folder name being a domain. Category letters a..h map to the attacks below.
"""

from __future__ import annotations

import re
from pathlib import Path

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import (
    disambiguate,
    make_row,
    no_samples,
    reject_protocol,
    split_of,
    subdirs,
    walk_media,
)

CLASS8_CATEGORIES: list[tuple[str, str]] = [
    ("a", REAL),
    ("b", "id_card"),
    ("c", "face_mask"),
    ("d", "online_verification"),
    ("e", "personal_id"),
    ("f", "recaptured"),
    ("g", "photoshopped"),
    ("h", "dark_environment"),
]
_ATTACK_OF = dict(CLASS8_CATEGORIES)
_CATEGORY_DIR = re.compile(r"^([a-h])(?:_.*)?$", re.IGNORECASE)
_EXPECTED = "ROOT/<train|dev|test>/<a..h>[_name]/<images> or ROOT/<domain>/<train|dev|test>/<a..h>[_name]/<images>"


def subject_of(stem: str) -> str:
    """``<subject>_<rest>`` names carry their subject; any other stem is its own subject."""
    head, sep, rest = stem.partition("_")
    return head if sep and head and rest else stem


def _has_splits(folder: Path) -> bool:
    return any(split_of(d.name) for d in subdirs(folder))


def class8_domains(root: Path) -> list[tuple[str, Path]]:
    """(domain, domain root) pairs: the root itself, or each sub-folder of a multi-domain tree."""
    if _has_splits(root):
        return [("class8", root)]
    domains = [(d.name, d) for d in subdirs(root) if _has_splits(d)]
    if not domains:
        raise no_samples(root, _EXPECTED)
    strays = [d for d in subdirs(root) if not _has_splits(d)]
    if strays:
        raise ManifestError(f"{strays[0]}: holds no train/dev/test folders; in a multi-domain tree every "
                            f"sub-folder of {root} must be a domain laid out as <domain>/<split>/<a..h>[_name]/")
    return domains


def _category_rows(folder: Path, letter: str, domain: str, domain_root: Path, split: str) -> list[dict]:
    rows = []
    for path in walk_media(folder):
        rows.append(make_row(path, path.relative_to(domain_root), domain=domain, label=int(letter == "a"),
                             attack=_ATTACK_OF[letter], subject=subject_of(path.stem), split=split, category=letter))
    return rows


def _split_rows(split_dir: Path, split: str, domain: str, domain_root: Path) -> list[dict]:
    loose = [p for p in walk_media(split_dir) if p.parent == split_dir]
    if loose:
        raise ManifestError(f"{loose[0]}: file outside a category folder; expected {split_dir}/<a..h>[_name]/")
    rows = []
    for folder in subdirs(split_dir):
        match = _CATEGORY_DIR.match(folder.name)
        if not match:
            raise ManifestError(f"{folder}: unknown category folder; expected a letter a..h, optionally followed by "
                                f"_name (e.g. a_normal_facial_photo)")
        rows += _category_rows(folder, match.group(1).lower(), domain, domain_root, split)
    return rows


def _domain_rows(domain: str, domain_root: Path) -> list[dict]:
    rows = []
    for folder in subdirs(domain_root):
        split = split_of(folder.name)
        if split is None:
            raise ManifestError(f"{folder}: unknown split folder; expected train, dev (or val/valid) or test")
        rows += _split_rows(folder, split, domain, domain_root)
    return rows


@register("class8")
def read_class8(root: Path, protocol: str | None) -> list[dict]:
    """Rows for a single- or multi-domain 8-category tree, with the category letter as extra column."""
    reject_protocol("class8", protocol)
    rows = [row for domain, domain_root in class8_domains(root) for row in _domain_rows(domain, domain_root)]
    if not rows:
        raise no_samples(root, _EXPECTED)
    return disambiguate(rows)
