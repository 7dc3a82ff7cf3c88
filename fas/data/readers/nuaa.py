"""NUAA Photograph Imposter: ``ROOT/ClientRaw/<subject>/*.jpg`` (real) and ``ROOT/ImposterRaw/<subject>/*.jpg``
(printed photos), split by the official lists ``ROOT/{client,imposter}_{train,test}_raw.txt``.

List lines are Windows-style relative paths (``0001\\0001_00_00_01_0.jpg``); only listed images are read. The
protocol picks the variant: unset or ``raw`` (full frames), ``face`` (``ClientFace``/``ImposterFace`` with
``*_face.txt``) or ``normalized`` (``ClientNormalized``/``ImposterNormalized`` with ``*_normalized.txt``).
The dataset has no dev split.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import disambiguate, make_row, no_samples, read_lines, require_file

DOMAIN = "nuaa"
VARIANTS = {"raw": "Raw", "face": "Face", "normalized": "Normalized"}
KINDS = {"client": ("Client", 1, REAL), "imposter": ("Imposter", 0, "print")}
SPLITS = ("train", "test")


def _variant(protocol: str | None) -> str:
    variant = (protocol or "raw").lower()
    if variant not in VARIANTS:
        raise ManifestError(f"unknown NUAA protocol {protocol!r}; expected one of {', '.join(VARIANTS)} (default raw)")
    return variant


def _listed_rows(root: Path, list_file: Path, folder: str, label: int, attack: str, split: str) -> list[dict]:
    rows = []
    for number, line in read_lines(require_file(list_file, f"the official NUAA list of {folder} images")):
        rel = PurePosixPath(folder, *line.replace("\\", "/").split("/"))
        path = root / rel
        if len(rel.parts) != 3:
            raise ManifestError(f"{list_file} line {number}: {line!r}; expected <subject>\\<image>")
        if not path.is_file():
            raise ManifestError(f"{list_file} line {number}: listed image {path} does not exist")
        rows.append(make_row(path, rel, domain=DOMAIN, label=label, attack=attack, subject=rel.parts[1],
                             split=split))
    return rows


@register("nuaa")
def read_nuaa(root: Path, protocol: str | None) -> list[dict]:
    """The images the official train/test lists name, for clients (real) and imposters (print); an image listed
    in both splits (not the case in the official lists) keeps one row per split."""
    variant = _variant(protocol)
    rows = []
    for kind, (prefix, label, attack) in KINDS.items():
        for split in SPLITS:
            list_file = root / f"{kind}_{split}_{variant}.txt"
            rows += _listed_rows(root, list_file, f"{prefix}{VARIANTS[variant]}", label, attack, split)
    if not rows:
        raise no_samples(root, f"non-empty lists {{client,imposter}}_{{train,test}}_{variant}.txt")
    return disambiguate(rows)
