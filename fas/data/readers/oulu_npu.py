"""OULU-NPU: ``ROOT/{Train,Dev,Test}_files/<Phone>_<Session>_<User>_<File>.avi`` plus the official protocols.

Without a protocol every video is read and its split is its folder's. With one (``1``, ``2``, ``3_<fold>``,
``4_<fold>``) only the videos listed in ``ROOT/Protocols/Protocol_<N>/{Train,Dev,Test}[_<fold>].txt`` are read,
each in the split of the list naming it. Sessions differ by illumination and background, hence ``light``.
"""

from __future__ import annotations

import re
from pathlib import Path

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import make_row, no_samples, read_lines, require_file, walk_videos

DOMAIN = "oulu_npu"
FOLDERS = {"Train_files": "train", "Dev_files": "dev", "Test_files": "test"}
LISTS = {"train": "Train", "dev": "Dev", "test": "Test"}
FOLDS = range(1, 7)
ATTACKS = {1: REAL, 2: "print1", 3: "print2", 4: "replay1", 5: "replay2"}
# Protocol list labels: +1 real, -1 print, -2 video replay; the file-type digits each may name.
PROTOCOL_FILES = {"+1": {1}, "1": {1}, "-1": {2, 3}, "-2": {4, 5}}
_NAME = re.compile(r"^([1-6])_([1-3])_(\d{2})_([1-5])$")
_NAME_HELP = "<Phone 1-6>_<Session 1-3>_<User 01-55>_<File 1-5>.avi, e.g. 1_1_01_1.avi"
_PROTOCOL = re.compile(r"^(?:protocol)?[_\- ]?([1-4])(?:[_/\-.]([0-9]+))?$")
_PROTOCOL_HELP = "1, 2, 3_1..3_6 or 4_1..4_6"


def parse_name(path: Path) -> tuple[int, int, int, int]:
    """(phone, session, user, file type) from an OULU video name; ManifestError naming the file otherwise."""
    match = _NAME.match(path.stem)
    if not match or not 1 <= int(match.group(3)) <= 55:
        raise ManifestError(f"{path}: unexpected OULU-NPU file name; expected {_NAME_HELP}")
    phone, session, user, kind = (int(g) for g in match.groups())
    return phone, session, user, kind


def _row(path: Path, root: Path, split: str) -> dict:
    phone, session, user, kind = parse_name(path)
    return make_row(path, path.relative_to(root), domain=DOMAIN, label=int(kind == 1), attack=ATTACKS[kind],
                    subject=f"{user:02d}", split=split, session=str(session), device=f"phone{phone}",
                    light=f"session{session}")


def _videos(root: Path) -> dict[str, tuple[Path, str]]:
    """Every video under the split folders, by stem, with its folder's split."""
    folders = [(root / name, split) for name, split in FOLDERS.items() if (root / name).is_dir()]
    if not folders:
        raise no_samples(root, f"folders {', '.join(FOLDERS)} holding {_NAME_HELP}")
    videos: dict[str, tuple[Path, str]] = {}
    for folder, split in folders:
        for path in walk_videos(folder):
            parse_name(path)
            if path.stem in videos:
                raise ManifestError(f"{path}: the same video name is also at {videos[path.stem][0]}")
            videos[path.stem] = (path, split)
    return videos


def parse_protocol(protocol: str) -> tuple[int, int | None]:
    """(protocol number, fold or None) from '3_2', '3/2', 'protocol_3_2', ...; errors list what is accepted."""
    match = _PROTOCOL.match(protocol.strip().lower())
    if not match:
        raise ManifestError(f"unknown OULU-NPU protocol {protocol!r}; expected {_PROTOCOL_HELP}")
    number, fold = int(match.group(1)), match.group(2)
    if number in (1, 2):
        if fold is not None:
            raise ManifestError(f"OULU-NPU protocol {number} has no folds; got {protocol!r}, expected '{number}'")
        return number, None
    folds = ", ".join(f"{number}_{f}" for f in FOLDS)
    if fold is None or int(fold) not in FOLDS:
        raise ManifestError(f"OULU-NPU protocol {protocol!r}: protocol {number} needs a fold; expected one of {folds}")
    return number, int(fold)


def protocol_lists(root: Path, protocol: str) -> dict[str, Path]:
    """The split → list file paths of a protocol, each required to exist."""
    number, fold = parse_protocol(protocol)
    folder = root / "Protocols" / f"Protocol_{number}"
    suffix = f"_{fold}" if fold else ""
    return {split: require_file(folder / f"{stem}{suffix}.txt", f"the OULU-NPU protocol {protocol!r} {split} list")
            for split, stem in LISTS.items()}


def _listed(list_file: Path) -> list[tuple[int, str, str]]:
    """(line number, protocol label, video stem) per line of a list such as ``+1,1_1_01_1``."""
    entries = []
    for number, line in read_lines(list_file):
        label, sep, name = (part.strip() for part in line.partition(","))
        if not sep or label not in PROTOCOL_FILES or not name:
            raise ManifestError(f"{list_file} line {number}: {line!r}; expected <+1|-1|-2>,<video name>")
        entries.append((number, label, Path(name.replace("\\", "/")).name.removesuffix(".avi")))
    return entries


def _protocol_rows(root: Path, protocol: str) -> list[dict]:
    videos = _videos(root)
    rows, seen = [], {}
    for split, list_file in protocol_lists(root, protocol).items():
        for number, label, stem in _listed(list_file):
            where = f"{list_file} line {number}"
            if stem in seen:
                raise ManifestError(f"{where}: {stem} is listed again (first at {seen[stem]})")
            seen[stem] = where
            if stem not in videos:
                raise ManifestError(f"{where}: listed video {stem}.avi is not under any of {', '.join(FOLDERS)}")
            path = videos[stem][0]
            if parse_name(path)[3] not in PROTOCOL_FILES[label]:
                raise ManifestError(f"{where}: label {label} disagrees with the file name {path.name} "
                                    "(+1 is file type 1, -1 is 2 or 3, -2 is 4 or 5)")
            rows.append(_row(path, root, split))
    return rows


@register("oulu_npu")
def read_oulu_npu(root: Path, protocol: str | None) -> list[dict]:
    """All videos split by folder, or only a protocol's videos split by the list naming them."""
    if protocol is not None:
        return _protocol_rows(root, protocol)
    rows = [_row(path, root, split) for path, split in _videos(root).values()]
    if not rows:
        raise no_samples(root, f"folders {', '.join(FOLDERS)} holding {_NAME_HELP}")
    return rows
