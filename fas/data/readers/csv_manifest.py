"""A user's own data described by a CSV: ``ROOT/manifest.csv`` (the protocol may name another CSV in ROOT).

Required columns: ``path`` (relative to the CSV's folder, or absolute), ``label`` (1 real, 0 attack) and ``split``
(train, dev or val/valid, test). Optional: attack (default 'real' or 'attack' from the label), domain (default the
ROOT folder's name), subject (default the sample itself), session, device, light, media (default from the
extension), frame_index, sample_id (default ``<domain>/<path without extension>``). Other columns are kept as
extra string columns.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from fas.data.manifest import COLUMNS, REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import disambiguate, media_of, require_file, sample_id, split_of

REQUIRED = ("path", "label", "split")
DEFAULT_CSV = "manifest.csv"


def _label(value: str, where: str) -> int:
    if value.strip() not in ("0", "1"):
        raise ManifestError(f"{where}: label {value!r}; expected 1 (real) or 0 (attack)")
    return int(value)


def _frame_index(value: str | None, where: str) -> int | None:
    if not value:
        return None
    if not value.strip().isdigit():
        raise ManifestError(f"{where}: frame_index {value!r}; expected a non-negative integer")
    return int(value)


def _resolve(value: str, base: Path, where: str) -> tuple[Path, str]:
    """(absolute existing path, id part: relative to the CSV folder when inside it) for a ``path`` cell."""
    if not value:
        raise ManifestError(f"{where}: empty path")
    path = Path(os.path.normpath(base / value))  # normalized, but symlinks kept so in-tree links stay in-tree
    if not path.is_file():
        raise ManifestError(f"{where}: {path} does not exist")
    rel = path.relative_to(base) if path.is_relative_to(base) else Path(*path.parts[1:])
    return path, rel.as_posix()


def _row(cells: dict, base: Path, where: str) -> tuple[dict, bool]:
    """(manifest row, whether its sample_id was inferred) for one CSV line."""
    path, rel = _resolve(cells.pop("path"), base, where)
    label = _label(cells.pop("label"), where)
    split = split_of(cells.pop("split"))
    if split is None:
        raise ManifestError(f"{where}: unknown split; expected train, dev (or val/valid) or test")
    attack = cells.pop("attack", None) or (REAL if label == 1 else "attack")
    if (label == 1) != (attack == REAL):
        raise ManifestError(f"{where}: label {label} disagrees with attack {attack!r} ('real' means label 1)")
    media = cells.pop("media", None) or media_of(path)
    if media is None:
        raise ManifestError(f"{where}: cannot tell the media of {path.name} from its extension; add a media column")
    domain = cells.pop("domain", None) or base.name
    given_id = cells.pop("sample_id", None)
    row = {"sample_id": given_id or sample_id(domain, rel), "path": str(path), "media": media, "label": label,
           "attack": attack, "domain": domain, "split": split,
           "frame_index": _frame_index(cells.pop("frame_index", None), where)}
    row["subject"] = cells.pop("subject", None) or row["sample_id"]
    row.update(cells)
    return row, not given_id


def _read_csv(csv_path: Path) -> list[tuple[str, dict]]:
    """(location 'file line N', cells with blanks as None) per data line; the header must have the required columns."""
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise ManifestError(f"{csv_path}: header lacks columns {missing}; expected at least {list(REQUIRED)} "
                                f"(optional: {[c for c in COLUMNS if c not in REQUIRED]})")
        reader.fieldnames = header
        return [(f"{csv_path} line {reader.line_num}",
                 {k: (v.strip() or None) if isinstance(v, str) else v for k, v in cells.items()})
                for cells in reader]


@register("csv")
def read_csv_manifest(root: Path, protocol: str | None) -> list[dict]:
    """Rows from the CSV, with paths checked to exist and defaults filled in."""
    name = protocol or DEFAULT_CSV
    csv_path = require_file(root / (name if Path(name).suffix else f"{name}.csv"),
                            "a CSV with at least the columns path,label,split")
    rows, inferred = [], []
    for where, cells in _read_csv(csv_path):
        if None in cells:
            raise ManifestError(f"{where}: more cells than the header has columns")
        for column in REQUIRED:
            cells[column] = cells.get(column) or ""
        row, was_inferred = _row(cells, csv_path.parent, where)
        rows.append(row)
        if was_inferred:
            inferred.append(row)
    if not rows:
        raise ManifestError(f"{csv_path}: no data lines; expected one line per sample after the header")
    disambiguate(inferred)
    return rows
