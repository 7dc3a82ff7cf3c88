"""CelebA-Spoof: ``ROOT/metas/intra_test/{train,test}_label.json`` over ``ROOT/Data/{train,test}/<id>/{live,spoof}/``.

Each JSON maps an image path relative to ROOT to 44 numbers (per the official README): [0:40] CelebA face
attributes, [40] spoof type, [41] illumination, [42] environment, [43] live (0) / spoof (1). Only listed images are
read; the identity folder is the subject. The protocol names another folder of ``ROOT/metas`` holding the same two
files (default ``intra_test``). The dataset has no dev split.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import make_row, no_samples, require_dir, require_file

DOMAIN = "celeba_spoof"
SPLITS = ("train", "test")
SPOOF_TYPE, ILLUMINATION, ENVIRONMENT, LIVE_SPOOF = 40, 41, 42, 43
SPOOF_TYPES = [REAL, "photo", "poster", "a4", "face_mask", "upper_body_mask", "region_mask", "pc", "pad", "phone",
               "3d_mask"]
ILLUMINATIONS = [None, "normal", "strong", "back", "dark"]
ENVIRONMENTS = [None, "indoor", "outdoor"]
_KEY_HELP = "Data/<train|test>/<identity>/<live|spoof>/<image>"


def _name(names: list, value, what: str, where: str) -> str | None:
    if not isinstance(value, int) or not 0 <= value < len(names):
        raise ManifestError(f"{where}: {what} {value!r} is not one of 0..{len(names) - 1}")
    return names[value]


def _row(root: Path, key: str, labels, split: str, where: str) -> dict:
    rel = PurePosixPath(key)
    if not isinstance(labels, list) or len(labels) <= LIVE_SPOOF:
        raise ManifestError(f"{where}: expected a list of 44 labels, got {str(labels)[:60]}")
    if len(rel.parts) != 5 or rel.parts[0] != "Data" or rel.parts[3] not in ("live", "spoof"):
        raise ManifestError(f"{where}: unexpected image path; expected {_KEY_HELP}")
    attack = _name(SPOOF_TYPES, labels[SPOOF_TYPE], "spoof type", where)
    live = _name([True, False], labels[LIVE_SPOOF], "live/spoof label", where)
    if live != (attack == REAL) or live != (rel.parts[3] == "live"):
        raise ManifestError(f"{where}: live/spoof label {labels[LIVE_SPOOF]}, spoof type {labels[SPOOF_TYPE]} and "
                            f"folder {rel.parts[3]!r} disagree")
    path = root / rel
    if not path.is_file():
        raise ManifestError(f"{where}: listed image {path} does not exist")
    return make_row(path, rel, domain=DOMAIN, label=int(live), attack=attack, subject=rel.parts[2], split=split,
                    light=_name(ILLUMINATIONS, labels[ILLUMINATION], "illumination", where),
                    environment=_name(ENVIRONMENTS, labels[ENVIRONMENT], "environment", where))


def _load(label_file: Path) -> dict:
    try:
        labels = json.loads(label_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ManifestError(f"{label_file}: not valid JSON ({err})") from None
    if not isinstance(labels, dict):
        raise ManifestError(f"{label_file}: expected a JSON object mapping image paths to label lists")
    return labels


@register("celeba_spoof")
def read_celeba_spoof(root: Path, protocol: str | None) -> list[dict]:
    """The images the train and test label files list, with spoof type, illumination and environment."""
    metas = require_dir(root / "metas" / (protocol or "intra_test"), "a CelebA-Spoof metas folder with label files")
    rows = []
    for split in SPLITS:
        label_file = require_file(metas / f"{split}_label.json", f"the CelebA-Spoof {split} labels")
        for key, labels in _load(label_file).items():
            rows.append(_row(root, key, labels, split, f"{label_file} entry {key!r}"))
    if not rows:
        raise no_samples(root, f"entries {_KEY_HELP} in {metas}/{{train,test}}_label.json")
    return rows
