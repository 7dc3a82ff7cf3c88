"""The SiW reader on a tiny fabricated tree in the real layout: Train/Test, live/spoof, with and without subject
folders, both sensors, every type and medium, and the side files a real download carries."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from fas.data.manifest import ManifestError
from fas.data.readers import list_readers, read_dataset
from tests.test_readers import touch

LIVE_TRAIN = ["003-1-1-1-1", "003-2-1-2-2", "004-1-1-1-2"]
LIVE_TEST = ["090-1-1-2-1"]
PRINT_TRAIN = ["003-1-2-1-1", "003-2-2-2-1"]
PRINT_TEST = ["090-1-2-2-1", "090-2-2-1-2"]
REPLAY_TRAIN = {1: "003-1-3-1-1", 2: "003-1-3-2-2", 3: "003-2-3-3-1", 4: "003-2-3-4-2"}
REPLAY_TEST = {1: "090-1-3-1-2", 2: "090-2-3-2-1", 3: "090-1-3-3-2", 4: "090-2-3-4-1"}
NAME_HELP = "expected <subject 001-165>-<sensor 1-2>-<type 1-3>-<medium>-<session 1-2>.mov"


def siw_tree(root: Path) -> Path:
    """Subject 003 in Train with subject folders, 004 in Train without, 090 in Test mostly without."""
    return touch(
        root,
        *(f"Train/live/003/{s}.mov" for s in LIVE_TRAIN[:2]), "Train/live/004-1-1-1-2.mov",
        *(f"Train/spoof/003/{s}.mov" for s in PRINT_TRAIN + list(REPLAY_TRAIN.values())),
        "Test/live/090-1-1-2-1.mov",
        *(f"Test/spoof/{s}.mov" for s in PRINT_TEST + list(REPLAY_TEST.values())[:3]), "Test/spoof/090/090-2-3-4-1.mov",
        "Train/live/003/003-1-1-1-1.face", "Train/spoof/003/003-2-3-4-2.face", "Train/live/003/003-1-1-1-1/0001.jpg",
        "Test/readme.txt",
    )


def read(root: Path, protocol: str | None = None) -> list[dict]:
    return read_dataset("siw", root, protocol).to_pylist()


def count(rows: list[dict], key: str) -> dict:
    return dict(collections.Counter(row[key] for row in rows))


def stems(rows: list[dict]) -> dict[str, list[str]]:
    """split → sorted video stems, the exact contents of each side of a protocol."""
    by_split: dict[str, list[str]] = {}
    for row in rows:
        by_split.setdefault(row["split"], []).append(Path(row["path"]).stem)
    return {split: sorted(names) for split, names in by_split.items()}


def test_registered():
    assert "siw" in list_readers()


def test_every_video_split_by_folder(tmp_path):
    rows = read(siw_tree(tmp_path))
    assert len(rows) == 16
    assert count(rows, "split") == {"train": 9, "test": 7}
    assert count(rows, "attack") == {"real": 4, "print_hq": 2, "print_lq": 2, "replay_ipad_pro": 2,
                                     "replay_iphone7": 2, "replay_galaxy_s8": 2, "replay_asus_mb168b": 2}
    assert count(rows, "device") == {"canon_eos_t6": 9, "logitech_c920": 7}
    assert count(rows, "subject") == {"003": 8, "004": 1, "090": 7}
    assert count(rows, "light") == {"constant": 2, "varied": 2, None: 12}
    assert count(rows, "session") == {"1": 9, "2": 7}
    assert count(rows, "label") == {1: 4, 0: 12}
    assert count(rows, "domain") == {"siw": 16} and count(rows, "media") == {"video": 16}
    assert "max_frames" not in rows[0]


def test_row_fields(tmp_path):
    root = siw_tree(tmp_path).resolve()
    rows = {Path(r["path"]).name: r for r in read(root)}
    assert rows["003-2-3-4-2.mov"] == {
        "sample_id": "siw/Train/spoof/003/003-2-3-4-2", "path": str(root / "Train/spoof/003/003-2-3-4-2.mov"),
        "media": "video", "label": 0, "attack": "replay_asus_mb168b", "domain": "siw", "subject": "003",
        "split": "train", "session": "2", "device": "logitech_c920", "light": None, "frame_index": None}
    live = rows["090-1-1-2-1.mov"]
    assert (live["sample_id"], live["label"], live["attack"], live["split"], live["subject"], live["session"],
            live["device"], live["light"]) == ("siw/Test/live/090-1-1-2-1", 1, "real", "test", "090", "1",
                                               "canon_eos_t6", "varied")
    assert rows["090-2-3-4-1.mov"]["sample_id"] == "siw/Test/spoof/090/090-2-3-4-1"


def test_protocol_1_trains_on_first_60_frames(tmp_path):
    rows = read(siw_tree(tmp_path), "1")
    assert stems(rows) == {"train": sorted(LIVE_TRAIN + PRINT_TRAIN + list(REPLAY_TRAIN.values())),
                           "test": sorted(LIVE_TEST + PRINT_TEST + list(REPLAY_TEST.values()))}
    assert {r["split"]: r["max_frames"] for r in rows} == {"train": 60, "test": None}
    assert count(rows, "max_frames") == {60: 9, None: 7}


@pytest.mark.parametrize("medium", [1, 2, 3, 4])
def test_protocol_2_leaves_one_replay_medium_out(tmp_path, medium):
    rows = read(siw_tree(tmp_path), f"2_{medium}")
    assert stems(rows) == {
        "train": sorted(LIVE_TRAIN + [s for m, s in REPLAY_TRAIN.items() if m != medium]),
        "test": sorted(LIVE_TEST + [REPLAY_TEST[medium]])}
    assert not {"print_hq", "print_lq"} & set(count(rows, "attack"))


def test_protocol_3_crosses_print_and_replay(tmp_path):
    siw_tree(tmp_path)
    assert stems(read(tmp_path, "3_1")) == {"train": sorted(LIVE_TRAIN + PRINT_TRAIN),
                                            "test": sorted(LIVE_TEST + list(REPLAY_TEST.values()))}
    assert stems(read(tmp_path, "3_2")) == {"train": sorted(LIVE_TRAIN + list(REPLAY_TRAIN.values())),
                                            "test": sorted(LIVE_TEST + PRINT_TEST)}


@pytest.mark.parametrize("name", ["2_3", "2/3", "protocol_2_3", "Protocol-2-3", " 2.3 "])
def test_protocol_spellings(tmp_path, name):
    assert stems(read(siw_tree(tmp_path), name))["test"] == sorted(LIVE_TEST + [REPLAY_TEST[3]])


@pytest.mark.parametrize("protocol, match", [
    ("4", r"unknown SiW protocol '4'; expected 1, 2_1, 2_2, 2_3, 2_4, 3_1 or 3_2"),
    ("grandtest", r"unknown SiW protocol 'grandtest'"),
    ("2", r"protocol 2 needs a fold; expected one of 2_1, 2_2, 2_3, 2_4"),
    ("2_5", r"SiW protocol '2_5': protocol 2 needs a fold; expected one of 2_1, 2_2, 2_3, 2_4"),
    ("3_3", r"protocol 3 needs a fold; expected one of 3_1, 3_2"),
    ("1_2", r"SiW protocol 1 has no folds; got '1_2', expected '1'"),
])
def test_unknown_protocols(tmp_path, protocol, match):
    with pytest.raises(ManifestError, match=match):
        read(siw_tree(tmp_path), protocol)


@pytest.mark.parametrize("rel", [
    "Train/spoof/003/003-1-4-1-1.mov",  # type 4
    "Train/spoof/abc.mov",
    "Train/live/003/003-1-1-3-1.mov",  # live medium 3
    "Train/live/003/003-1-1-0-1.mov",  # live medium 0
    "Train/spoof/003/003-1-2-3-1.mov",  # print medium 3
    "Test/spoof/090-1-3-5-1.mov",  # replay medium 5
    "Test/spoof/090-1-3-1-3.mov",  # session 3
    "Test/spoof/090-3-3-1-1.mov",  # sensor 3
    "Test/live/166-1-1-1-1.mov",  # subject 166
    "Test/live/90-1-1-1-1.mov",  # subject not 3 digits
    "Test/live/090_1_1_1_1.mov",
])
def test_unexpected_file_names(tmp_path, rel):
    touch(siw_tree(tmp_path), rel)
    with pytest.raises(ManifestError, match=re.escape(f"{Path(rel).name}: unexpected SiW file name; {NAME_HELP}")):
        read(tmp_path)


@pytest.mark.parametrize("rel, match", [
    ("Train/live/003/003-1-2-1-2.mov", r"003-1-2-1-2\.mov: type 2 does not belong under live/; expected type 1 under "
                                       r"live/ and types 2 \(print\) and 3 \(replay\) under spoof/"),
    ("Test/spoof/090-2-1-1-1.mov", r"090-2-1-1-1\.mov: type 1 does not belong under spoof/"),
    ("Train/live/005/003-1-1-2-1.mov", r"005/003-1-1-2-1\.mov: subject folder 005 disagrees with the file name's "
                                       r"subject 003"),
    ("Train/live/003/extra/003-1-1-2-1.mov", r"extra/003-1-1-2-1\.mov: unexpected place for a SiW video; expected "
                                             r"Train/ and Test/ holding live/ and spoof/"),
    ("Train/real/003-1-1-2-1.mov", r"real/003-1-1-2-1\.mov: unexpected place for a SiW video"),
    ("Test/live/003-1-1-1-1.mp4", r"Train/live/003/003-1-1-1-1\.mov: the same video name is also at "
                                  r".*Test/live/003-1-1-1-1\.mp4"),
])
def test_misplaced_videos(tmp_path, rel, match):
    touch(siw_tree(tmp_path), rel)
    with pytest.raises(ManifestError, match=match):
        read(tmp_path)


def test_empty_trees(tmp_path):
    touch(tmp_path / "flat", "003-1-1-1-1.mov")
    with pytest.raises(ManifestError, match=r"no samples found under .*flat; expected Train/ and Test/ holding live/"):
        read(tmp_path / "flat")
    touch(tmp_path / "bare", "Train/live/003/003-1-1-1-1.face")
    with pytest.raises(ManifestError, match=r"no samples found under .*bare"):
        read(tmp_path / "bare")
    touch(tmp_path / "live_only", "Train/live/003-1-1-1-1.mov")
    assert count(read(tmp_path / "live_only", "3_2"), "attack") == {"real": 1}
