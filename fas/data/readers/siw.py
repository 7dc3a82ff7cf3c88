"""SiW (Spoof in the Wild, Liu et al., CVPR 2018): ``ROOT/{Train,Test}/{live,spoof}/[<subject>/]<name>.mov``.

Names are ``<subject>-<sensor>-<type>-<medium>-<session>`` (``003-1-1-1-1.mov``; ``.mp4`` is read too): subjects
001-165 (90 in Train, 75 others in Test); sensor 1 a Canon EOS T6, 2 a Logitech C920 webcam (``device``); type 1 live,
2 print, 3 replay. The medium names the PAI species: print 1 ``print_hq``, 2 ``print_lq``; replay 1
``replay_ipad_pro``, 2 ``replay_iphone7``, 3 ``replay_galaxy_s8``, 4 ``replay_asus_mb168b``. On live videos it says
whether extra lighting varied (1 no, 2 yes: ``light`` "constant" / "varied"). Sessions are 1 and 2. The ``.face``
face-box files and any extracted frames beside the videos are ignored.

Without a protocol every video is read, split by its Train/Test folder. The paper's protocols keep every live video of
both sides and choose the attacks (train side from Train/, test side from Test/):

- ``1``: every video; train rows carry ``max_frames`` = 60, as the protocol trains on the first 60 frames only.
- ``2_<m>`` (m = replay medium 1-4): train on the other three replay media, test on medium m; prints left out.
- ``3_1``: train on print, test on replay. ``3_2``: train on replay, test on print.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, NamedTuple

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import make_row, no_samples, subdirs, walk_videos

DOMAIN = "siw"
SPLITS = {"train": "train", "test": "test"}
LIVE, PRINT, REPLAY = 1, 2, 3
SENSORS = {1: "canon_eos_t6", 2: "logitech_c920"}
ATTACKS = {
    (LIVE, 1): REAL,
    (LIVE, 2): REAL,
    (PRINT, 1): "print_hq",
    (PRINT, 2): "print_lq",
    (REPLAY, 1): "replay_ipad_pro",
    (REPLAY, 2): "replay_iphone7",
    (REPLAY, 3): "replay_galaxy_s8",
    (REPLAY, 4): "replay_asus_mb168b",
}
LIGHT = {1: "constant", 2: "varied"}
FIRST_FRAMES = 60
FOLDS = {2: range(1, 5), 3: range(1, 3)}
_NAME = re.compile(r"^(\d{3})-([12])-([1-3])-([1-4])-([12])$")
_NAME_HELP = ("<subject 001-165>-<sensor 1-2>-<type 1-3>-<medium>-<session 1-2>.mov with medium 1-2 for live (type 1)"
              " and print (2), 1-4 for replay (3), e.g. 003-1-1-1-1.mov")
_LAYOUT = "Train/ and Test/ holding live/ and spoof/, each with [<subject>/]<name>.mov"
_PROTOCOL = re.compile(r"^(?:protocol)?[_\- ]?([1-3])(?:[_/\-.]([0-9]+))?$")
_PROTOCOL_HELP = "1, 2_1, 2_2, 2_3, 2_4, 3_1 or 3_2"


class Name(NamedTuple):
    subject: int
    sensor: int
    kind: int
    medium: int
    session: int


def parse_name(path: Path) -> Name:
    """The five ids of a SiW video name; ManifestError naming the file otherwise."""
    match = _NAME.match(path.stem)
    name = Name(*(int(g) for g in match.groups())) if match else None
    if name is None or not 1 <= name.subject <= 165 or (name.kind, name.medium) not in ATTACKS:
        raise ManifestError(f"{path}: unexpected SiW file name; expected {_NAME_HELP}")
    return name


def _checked(path: Path, split_folder: Path) -> Name:
    """The parsed name of a video, once its place (live/ or spoof/, optional subject folder) agrees with it."""
    parts = path.relative_to(split_folder).parts
    if len(parts) not in (2, 3) or parts[0].lower() not in ("live", "spoof"):
        raise ManifestError(f"{path}: unexpected place for a SiW video; expected {_LAYOUT}")
    name = parse_name(path)
    if (name.kind == LIVE) != (parts[0].lower() == "live"):
        raise ManifestError(f"{path}: type {name.kind} does not belong under {parts[0]}/; expected type 1 under "
                            "live/ and types 2 (print) and 3 (replay) under spoof/")
    if len(parts) == 3 and parts[1] != f"{name.subject:03d}":
        raise ManifestError(f"{path}: subject folder {parts[1]} disagrees with the file name's subject "
                            f"{name.subject:03d}")
    return name


def _videos(root: Path) -> list[tuple[Path, str, Name]]:
    """(path, split, parsed name) of every video under Train/ and Test/ (any case); a repeated name is an error."""
    folders = [(d, SPLITS[d.name.lower()]) for d in subdirs(root) if d.name.lower() in SPLITS]
    if not folders:
        raise no_samples(root, _LAYOUT)
    videos, seen = [], {}
    for folder, split in folders:
        for path in walk_videos(folder):
            name = _checked(path, folder)
            if path.stem in seen:
                raise ManifestError(f"{path}: the same video name is also at {seen[path.stem]}")
            seen[path.stem] = path
            videos.append((path, split, name))
    return videos


def _row(path: Path, root: Path, split: str, name: Name, **extra) -> dict:
    return make_row(path, path.relative_to(root), domain=DOMAIN, label=int(name.kind == LIVE),
                    attack=ATTACKS[name.kind, name.medium], subject=f"{name.subject:03d}", split=split,
                    session=str(name.session), device=SENSORS[name.sensor],
                    light=LIGHT[name.medium] if name.kind == LIVE else None, **extra)


def parse_protocol(protocol: str) -> tuple[int, int | None]:
    """(protocol number, fold or None) from '2_3', '2/3', 'protocol_2_3', ...; errors list what is accepted."""
    match = _PROTOCOL.match(protocol.strip().lower())
    if not match:
        raise ManifestError(f"unknown SiW protocol {protocol!r}; expected {_PROTOCOL_HELP}")
    number, fold = int(match.group(1)), match.group(2)
    if number == 1:
        if fold is not None:
            raise ManifestError(f"SiW protocol 1 has no folds; got {protocol!r}, expected '1'")
        return 1, None
    if fold is None or int(fold) not in FOLDS[number]:
        folds = ", ".join(f"{number}_{f}" for f in FOLDS[number])
        raise ManifestError(f"SiW protocol {protocol!r}: protocol {number} needs a fold; expected one of {folds}")
    return number, int(fold)


def protocol_filter(protocol: str) -> Callable[[str, Name], bool]:
    """Whether a video of a split belongs to the protocol: live always, attacks as the module docstring says."""
    number, fold = parse_protocol(protocol)
    if number == 1:
        return lambda split, name: True
    if number == 2:
        return lambda split, name: name.kind == LIVE or (
            name.kind == REPLAY and (name.medium == fold) == (split == "test"))
    trained = PRINT if fold == 1 else REPLAY
    return lambda split, name: name.kind == LIVE or (name.kind == trained) == (split == "train")


def _protocol_rows(root: Path, protocol: str) -> list[dict]:
    keep = protocol_filter(protocol)
    limit = FIRST_FRAMES if parse_protocol(protocol)[0] == 1 else None
    rows = []
    for path, split, name in _videos(root):
        if keep(split, name):
            extra = {"max_frames": limit} if limit and split == "train" else {}
            rows.append(_row(path, root, split, name, **extra))
    if not rows:
        raise no_samples(root, f"videos that SiW protocol {protocol!r} selects under {_LAYOUT}")
    return rows


@register("siw")
def read_siw(root: Path, protocol: str | None) -> list[dict]:
    """All videos split by their Train/Test folder, or a protocol's live videos and chosen attacks."""
    if protocol is not None:
        return _protocol_rows(root, protocol)
    rows = [_row(path, root, split, name) for path, split, name in _videos(root)]
    if not rows:
        raise no_samples(root, _LAYOUT)
    return rows
