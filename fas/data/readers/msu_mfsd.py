"""MSU-MFSD: ``ROOT/scene01/{real,attack}/`` videos, split by the official ``ROOT/{train,test}_sub_list.txt``.

Real: ``real_client<NNN>_<android|laptop>_SD_scene01.mp4|.mov``; attack:
``attack_client<NNN>_<android|laptop>_SD_<ipad_video|iphone_video|printed_photo>_scene01.mp4|.mov``.
The capturing device (android phone or laptop webcam) is ``device``. The dataset has no dev split.
"""

from __future__ import annotations

import re
from pathlib import Path

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import (
    make_row,
    no_samples,
    read_lines,
    reject_protocol,
    require_dir,
    require_file,
    walk_videos,
)

DOMAIN = "msu_mfsd"
LISTS = {"train": "train_sub_list.txt", "test": "test_sub_list.txt"}
_REAL = re.compile(r"^real_client(\d{3})_(android|laptop)_([A-Z]{2})_(scene\d+)$", re.IGNORECASE)
_ATTACK = re.compile(r"^attack_client(\d{3})_(android|laptop)_([A-Z]{2})_(ipad_video|iphone_video|printed_photo)_"
                     r"(scene\d+)$", re.IGNORECASE)
_HELP = {
    "real": "real_client<NNN>_<android|laptop>_SD_scene01.mp4|.mov",
    "attack": "attack_client<NNN>_<android|laptop>_SD_<ipad_video|iphone_video|printed_photo>_scene01.mp4|.mov",
}


def read_subject_list(path: Path) -> set[int]:
    """Client numbers of an official list (one per line, '01' or '1' alike); errors name the line."""
    clients = set()
    for number, line in read_lines(require_file(path, "the official MSU-MFSD subject list (one client per line)")):
        for token in line.replace(",", " ").split():
            if not token.isdigit():
                raise ManifestError(f"{path} line {number}: {token!r} is not a client number")
            clients.add(int(token))
    return clients


def _splits(root: Path) -> dict[int, str]:
    """client number → split, from the two lists; a client in both is an error."""
    train, test = (read_subject_list(root / name) for name in LISTS.values())
    both = sorted(train & test)
    if both:
        raise ManifestError(f"{root / LISTS['train']} and {root / LISTS['test']} both list clients {both}")
    return {**{c: "train" for c in train}, **{c: "test" for c in test}}


def _row(path: Path, root: Path, kind: str, splits: dict[int, str]) -> dict:
    match = (_REAL if kind == "real" else _ATTACK).match(path.stem)
    if not match:
        raise ManifestError(f"{path}: unexpected MSU-MFSD {kind} video name; expected {_HELP[kind]}")
    client, device = int(match.group(1)), match.group(2).lower()
    if client not in splits:
        raise ManifestError(f"{path}: client {client} is in neither {root / LISTS['train']} nor "
                            f"{root / LISTS['test']}")
    attack = REAL if kind == "real" else match.group(4).lower()
    return make_row(path, path.relative_to(root), domain=DOMAIN, label=int(kind == "real"), attack=attack,
                    subject=f"{client:03d}", split=splits[client], device=device)


@register("msu_mfsd")
def read_msu_mfsd(root: Path, protocol: str | None) -> list[dict]:
    """Every real and attack video, in the split its client's official list gives."""
    reject_protocol("msu_mfsd", protocol)
    splits = _splits(root)
    rows = []
    for kind in ("real", "attack"):
        folder = require_dir(root / "scene01" / kind, f"the MSU-MFSD {kind} videos ({_HELP[kind]})")
        rows += [_row(path, root, kind, splits) for path in walk_videos(folder)]
    if not rows:
        raise no_samples(root / "scene01", f"real/{_HELP['real']} and attack/{_HELP['attack']}")
    return rows
