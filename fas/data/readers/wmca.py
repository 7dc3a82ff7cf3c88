"""WMCA (Wide Multi-Channel presentation Attack database, Idiap; George et al., IEEE TIFS 2019), colour channel only.

Layout read (what the public release and its protocol lists look like, and where that was found):

* **Videos.** One HDF5 file per video, named ``<client>_<session>_<presenter>_<type>_<pai>.hdf5``, e.g.
  ``002_01_003_2_81.hdf5`` (bob.db.batl user guide, "File Naming Conventions", gitlab.idiap.ch/bob/bob.db.batl):
  ``client`` (3 digits) is the identity presented (the subject for bona fide, the identity the PAI shows for
  attacks), ``session`` (2 digits), ``presenter`` (3 digits, ``000`` for bona fide and for attacks on a support),
  ``type`` (0 bona fide, 1 facial disguise, 2 fake face, 3 photo, 4 video, 5 makeup) and ``pai`` (2 digits, the
  presentation attack instrument; for bona fide 00 no glasses, 01 medical glasses, 02 retro glasses).
  The preprocessed colour release stores them as ``WMCA_preprocessed_RGB/WMCA/face-station/<dd.mm.yy>/<name>.hdf5``
  (the grey/depth/infrared/thermal stream is the sibling ``WMCA_preprocessed_CDIT`` tree, not read here), each file
  a bob ``FrameContainer``: one group ``Frame_<n>`` per frame with a dataset ``array`` of shape (3, H, W), uint8,
  RGB planes (layout from bob.bio.video's FrameContainer, github.com/bioidiap/bob.bio.video, and public WMCA loaders
  reading ``h5[f"Frame_{i}"]["array"]`` from ``WMCA_preprocessed_RGB/WMCA/face-station/...``). ``fas.data.video``
  reads the frames; this reader never opens the files. The data folder is the first of ``DATA_DIRS`` (relative to
  ROOT) holding the ``face-station`` folder the lists name, so ROOT may be the download folder or the
  ``WMCA_preprocessed_RGB/WMCA`` folder itself.
* **Protocols.** ``PROTOCOL-<name>.csv``, looked up in ``ROOT/wmca-protocols-csv/``, then ``ROOT/protocols/``, then
  ROOT. Headerless CSV, one video per line: ``<filepath>,<0|1>,<attack type>,<train|dev|eval>``, e.g.
  ``face-station/17.01.18/002_01_003_2_81,1,attack/3D/flexiblemask,train``; ``filepath`` is relative to the data
  folder without ``.hdf5``, 0 is bona fide and 1 attack, the attack type is ``bonafide`` or
  ``attack/<2D|3D>/<category>``; eval is the manifest's ``test`` split. Format and file names from the
  ``wmca-protocols-csv`` folder of github.com/Vareto-PYTORCH/pytorch-pad-transformer-ijcb (a copy of Idiap's
  bob.paper.ijcb2021_vision_transformer_pad; its README gives the columns), which other public WMCA loaders read the
  same way (``.../WMCA/wmca-protocols-csv/PROTOCOL-<protocol>.csv``). grandtest there lists the 1679 WMCA videos
  (train 565, dev 557, eval 557; makeup and wig attacks are left out, as bob's BATL interface excludes them).
  NOT confirmed: where (or whether) Idiap's licensed download bundles these lists; the folder names above are the
  ones public code uses, and the bob documented CSV format is the one implemented.
* **Protocol names** (``PROTOCOLS``; matched case-insensitively): ``grandtest``, the default when no protocol is
  given; the leave-one-out unseen-attack protocols ``LOO_<category>`` (train and dev hold every attack but
  ``<category>``, eval holds only ``<category>`` and bona fide, as bob.pad.face's BATL database builds them); and
  ``UNKNOWN_2D`` / ``UNKNOWN_3D`` (eval holds only the 2D / 3D attacks), which ship in the same folder.
* **Attack categories** (the ``attack`` column, the names bob uses, so ``LOO_<attack>`` leaves out ``<attack>``):
  ``glasses``, ``fakehead`` (mannequins), ``prints``, ``replay`` (electronic photos and videos), ``rigidmask``,
  ``flexiblemask`` (silicone), ``papermask``; ``real`` for bona fide. ``PAI_ATTACKS`` maps each ``(type, pai)`` to its
  category, from bob.pad.face's ``lists/batl/idiap_converter_v2.json`` (github.com/bioidiap/bob.pad.face); each
  list line's attack type must agree with its file name. Rows also carry ``presenter``, ``pai`` (``<type>_<pai>``)
  and ``attack_family`` (``2D``/``3D``, None for bona fide).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path, PurePosixPath

from fas.data.manifest import REAL, ManifestError
from fas.data.readers import register
from fas.data.readers._common import make_row, no_samples, split_of

DOMAIN = "wmca"
DEFAULT_PROTOCOL = "grandtest"
PROTOCOLS = ("grandtest", "LOO_fakehead", "LOO_flexiblemask", "LOO_glasses", "LOO_papermask", "LOO_prints",
             "LOO_replay", "LOO_rigidmask", "UNKNOWN_2D", "UNKNOWN_3D")
LIST_DIRS = ("wmca-protocols-csv", "protocols", ".")
DATA_DIRS = ("WMCA_preprocessed_RGB/WMCA", "WMCA_preprocessed_RGB", "preprocessed-face-station_RGB", ".")
EXTENSION = ".hdf5"
FAMILIES = {"glasses": "3D", "fakehead": "3D", "rigidmask": "3D", "flexiblemask": "3D", "papermask": "3D",
            "prints": "2D", "replay": "2D"}
ATTACKS = tuple(FAMILIES)


def _pai_table() -> dict[tuple[int, int], str]:
    """(type id, PAI id) -> category, after bob.pad.face lists/batl/idiap_converter_v2.json (makeup, type 5, and
    wigs, 1_08..1_12, are in no protocol and deliberately absent)."""
    table: dict[tuple[int, int], str] = {(0, pai): REAL for pai in (0, 1, 2)}
    spans = {
        1: {"glasses": [1, 3, 4, 5, 6, 7, 15, 16], "rigidmask": [2, 13, 14]},
        2: {"fakehead": range(1, 8), "papermask": range(8, 12), "rigidmask": range(12, 18),
            "flexiblemask": [18, *range(75, 100)]},
        3: {"prints": [1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14], "replay": [5, 10, 15]},
        4: {"replay": range(1, 19)},
    }
    for kind, categories in spans.items():
        for category, pais in categories.items():
            table.update({(kind, pai): category for pai in pais})
    return table


PAI_ATTACKS = _pai_table()
_NAME = re.compile(r"^(\d{3})_(\d{2})_(\d{3})_(\d)_(\d{2})$")
_NAME_HELP = "<client NNN>_<session NN>_<presenter NNN>_<type N>_<pai NN>, e.g. 002_01_003_2_81"
_LINE_HELP = "<filepath>,<0|1>,<bonafide|attack/<2D|3D>/<category>>,<train|dev|eval>"


def parse_name(name: str, where: str) -> tuple[str, str, str, int, int]:
    """(client, session, presenter, type id, PAI id) of a WMCA video name; ManifestError naming ``where`` otherwise."""
    match = _NAME.match(name)
    if not match:
        raise ManifestError(f"{where}: unexpected WMCA file name {name!r}; expected {_NAME_HELP}")
    client, session, presenter, kind, pai = match.groups()
    if (int(kind), int(pai)) not in PAI_ATTACKS:
        raise ManifestError(f"{where}: {name} names PAI {kind}_{pai}, which is in no WMCA protocol; known PAIs: "
                            "type 0 (bona fide) 00-02, type 1-4 as in bob.pad.face idiap_converter_v2.json")
    return client, session, presenter, int(kind), int(pai)


def canonical_protocol(protocol: str | None) -> str:
    """The release's spelling of a protocol name (any case); None means grandtest."""
    if protocol is None:
        return DEFAULT_PROTOCOL
    names = {name.lower(): name for name in PROTOCOLS}
    key = protocol.strip().lower()
    if key not in names:
        raise ManifestError(f"unknown WMCA protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    return names[key]


def protocol_list(root: Path, protocol: str) -> Path:
    """The list file of a protocol: ``PROTOCOL-<name>.csv`` in the first of ``LIST_DIRS`` that has it."""
    name = f"PROTOCOL-{protocol}.csv"
    for folder in LIST_DIRS:
        if (root / folder / name).is_file():
            return root / folder / name
    tried = ", ".join(str(root / folder / name) for folder in LIST_DIRS)
    raise ManifestError(f"WMCA protocol {protocol!r}: list file not found; expected one of {tried}")


def _attack_of(column: str, truth: str, where: str) -> str:
    """The category an attack-type cell names (``real`` for bona fide), checked against the 0/1 ground truth."""
    parts = column.strip().split("/")
    if parts == ["bonafide"]:
        attack = REAL
    elif len(parts) == 3 and parts[0] == "attack" and FAMILIES.get(parts[2]) == parts[1]:
        attack = parts[2]
    else:
        raise ManifestError(f"{where}: attack type {column!r}; expected bonafide or attack/<2D|3D>/<category> with "
                            f"category one of {', '.join(ATTACKS)}")
    if truth.strip() not in ("0", "1") or (truth.strip() == "0") != (attack == REAL):
        raise ManifestError(f"{where}: ground truth {truth!r} disagrees with attack type {column!r} "
                            "(0 is bonafide, 1 an attack)")
    return attack


def _split_of(group: str, where: str) -> str:
    split = "test" if group.strip().lower() == "eval" else split_of(group)
    if split is None:
        raise ManifestError(f"{where}: group {group!r}; expected train, dev or eval")
    return split


def _entries(list_file: Path) -> list[dict]:
    """The parsed lines of a protocol list, each checked on its own."""
    text = list_file.read_text(encoding="utf-8-sig", errors="replace")
    entries, seen = [], {}
    for number, cells in enumerate(csv.reader(io.StringIO(text)), 1):
        if not any(cell.strip() for cell in cells):
            continue
        where = f"{list_file} line {number}"
        if len(cells) != 4:
            raise ManifestError(f"{where}: {','.join(cells)!r}; expected {_LINE_HELP}")
        filepath, truth, column, group = (cell.strip() for cell in cells)
        rel = PurePosixPath(filepath.replace("\\", "/").removesuffix(EXTENSION))
        if rel.is_absolute() or ".." in rel.parts:
            raise ManifestError(f"{where}: file path {filepath!r} must be relative to the data folder")
        client, session, presenter, kind, pai = parse_name(rel.name, where)
        attack = _attack_of(column, truth, where)
        if attack != PAI_ATTACKS[(kind, pai)]:
            raise ManifestError(f"{where}: attack type {column!r} disagrees with the file name {rel.name} "
                                f"(PAI {kind}_{pai:02d} is {PAI_ATTACKS[(kind, pai)]})")
        if rel in seen:
            raise ManifestError(f"{where}: {rel} is listed again (first at line {seen[rel]})")
        seen[rel] = number
        entries.append({"where": where, "rel": rel, "split": _split_of(group, where), "attack": attack,
                        "client": client, "session": session, "presenter": presenter, "pai": f"{kind}_{pai:02d}"})
    return entries


def data_dir(root: Path, first: PurePosixPath) -> Path:
    """The folder the list paths are relative to: the first of ``DATA_DIRS`` holding the top folder (``face-station``
    in the release) of the first listed path."""
    top = first.parts[0] if len(first.parts) > 1 else first.name + EXTENSION
    for folder in DATA_DIRS:
        if (root / folder / top).exists():
            return root / folder
    tried = ", ".join(str(root / folder / top) for folder in DATA_DIRS)
    raise ManifestError(f"WMCA colour videos not found: the protocol list names {first}{EXTENSION}, so expected "
                        f"{top} at one of {tried}")


@register("wmca")
def read_wmca(root: Path, protocol: str | None) -> list[dict]:
    """Every video a WMCA protocol lists (grandtest when ``protocol`` is None), in the split of its list line."""
    protocol = canonical_protocol(protocol)
    list_file = protocol_list(root, protocol)
    entries = _entries(list_file)
    if not entries:
        raise no_samples(root, f"lines {_LINE_HELP} in {list_file}")
    base = data_dir(root, entries[0]["rel"])
    rows = []
    for entry in entries:
        rel = entry["rel"].with_name(entry["rel"].name + EXTENSION)
        path = base / rel
        if not path.is_file():
            raise ManifestError(f"{entry['where']}: listed video {rel} is not under {base}")
        attack = entry["attack"]
        rows.append(make_row(path, rel, domain=DOMAIN, label=int(attack == REAL), attack=attack,
                             subject=entry["client"], split=entry["split"], session=entry["session"],
                             presenter=entry["presenter"], pai=entry["pai"], attack_family=FAMILIES.get(attack)))
    return rows
