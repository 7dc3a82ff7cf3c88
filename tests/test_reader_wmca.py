"""WMCA: the reader on a tiny release in the public layout (protocol CSVs + colour HDF5 frame containers), and
HDF5 frame reading in fas.data.video."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from fas.data.cache import decode_sample
from fas.data.manifest import ManifestError
from fas.data.readers import list_readers, read_dataset
from fas.data.readers._common import media_of
from fas.data.readers.wmca import PROTOCOLS
from fas.data.video import VideoError, sample_frames, uniform_indices

DATA = "WMCA_preprocessed_RGB/WMCA"
LISTS = "wmca-protocols-csv"
# Lines of the real PROTOCOL-grandtest.csv (filepath, 0 bona fide / 1 attack, attack type, group).
GRANDTEST = """\
face-station/01.02.18/002_01_000_0_00,0,bonafide,train
face-station/01.02.18/002_01_000_0_01,0,bonafide,train
face-station/17.01.18/002_01_003_2_81,1,attack/3D/flexiblemask,train
face-station/14.03.18/503_04_010_2_04,1,attack/3D/fakehead,train
face-station/14.03.18/516_04_006_1_07,1,attack/3D/glasses,train
face-station/17.01.18/003_01_000_0_00,0,bonafide,dev
face-station/14.03.18/018_04_010_3_06,1,attack/2D/prints,dev
face-station/23.01.18/502_01_009_2_03,1,attack/3D/fakehead,dev
face-station/24.01.18/001_01_000_0_00,0,bonafide,eval
face-station/14.03.18/505_04_010_2_06,1,attack/3D/fakehead,eval
face-station/14.03.18/001_04_010_2_08,1,attack/3D/papermask,eval
face-station/14.03.18/001_04_010_3_05,1,attack/2D/replay,eval
"""


def loo(grandtest: str, attack: str) -> str:
    """A leave-one-out list as the release builds it: train/dev without ``attack``, eval only ``attack`` + bona fide."""
    keep = []
    for line in grandtest.splitlines():
        kind, group = line.split(",")[2:]
        unseen = kind.endswith("/" + attack)
        if (unseen or kind == "bonafide") if group == "eval" else not unseen:
            keep.append(line)
    return "\n".join(keep) + "\n"


def frames_of(seed: int, count: int = 6, size: int = 8) -> list[np.ndarray]:
    """``count`` random colour frames, stored the bob way: (3, H, W) uint8 RGB planes."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (3, size, size), dtype=np.uint8) for _ in range(count)]


def write_frame_container(path: Path, frames: list[np.ndarray], ids: list[int] | None = None,
                          order: bool = True) -> Path:
    """An HDF5 file laid out like bob.bio.video's FrameContainer: Frame_<id>/array (+ the FrameIndexes order)."""
    ids = list(range(len(frames))) if ids is None else ids
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for frame_id, frame in zip(ids, frames):
            f.create_group(f"Frame_{frame_id}").create_dataset("array", data=frame)
        if order:
            indexes = f.create_group("FrameIndexes")
            for i, frame_id in enumerate(ids):
                indexes[str(i)] = f"Frame_{frame_id}"
    return path


def release(root: Path, grandtest: str = GRANDTEST) -> Path:
    """A WMCA download: colour (and CDIT) frame containers for every grandtest video, grandtest + LOO_fakehead lists,
    and one video no list names."""
    for seed, line in enumerate(grandtest.splitlines()):
        rel = line.split(",")[0] + ".hdf5"
        write_frame_container(root / DATA / rel, frames_of(seed))
        write_frame_container(root / "WMCA_preprocessed_CDIT/WMCA" / rel, [np.zeros((4, 8, 8), np.uint8)] * 2)
    write_frame_container(root / DATA / "face-station/20.02.18/010_02_000_5_01.hdf5", frames_of(99))  # makeup
    write_list(root, "grandtest", grandtest)
    write_list(root, "LOO_fakehead", loo(grandtest, "fakehead"))
    return root


def write_list(root: Path, protocol: str, text: str, folder: str = LISTS) -> Path:
    path = root / folder / f"PROTOCOL-{protocol}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read(root: Path, protocol: str | None = None) -> list[dict]:
    return read_dataset("wmca", root, protocol).to_pylist()


def count(rows: list[dict], *keys: str) -> dict:
    return dict(collections.Counter(tuple(row[k] for k in keys) if len(keys) > 1 else row[keys[0]] for row in rows))


def raises(match: str, root: Path, protocol: str | None = None) -> None:
    with pytest.raises(ManifestError, match=match):
        read(root, protocol)


# --- the reader -----------------------------------------------------------------------------------------------------

def test_wmca_is_registered_and_hdf5_is_video():
    assert "wmca" in list_readers()
    assert media_of("a/002_01_000_0_00.hdf5") == "video" and media_of("x.H5") == "video"
    assert PROTOCOLS[0] == "grandtest" and {f"LOO_{a}" for a in ("fakehead", "flexiblemask", "glasses", "papermask",
                                                                 "prints", "replay", "rigidmask")} < set(PROTOCOLS)


def test_wmca_grandtest(tmp_path):
    root = release(tmp_path)
    rows = read(root)
    assert rows == read(root, "grandtest") == read(root, "GrandTest")  # grandtest is the default protocol
    assert len(rows) == 12
    assert count(rows, "split") == {"train": 5, "dev": 3, "test": 4}
    assert count(rows, "attack") == {"real": 4, "flexiblemask": 1, "fakehead": 3, "glasses": 1, "prints": 1,
                                     "papermask": 1, "replay": 1}
    assert count(rows, "split", "label") == {("train", 1): 2, ("train", 0): 3, ("dev", 1): 1, ("dev", 0): 2,
                                             ("test", 1): 1, ("test", 0): 3}
    assert count(rows, "domain") == {"wmca": 12} and count(rows, "media") == {"video": 12}
    named = {Path(row["path"]).name: row for row in rows}
    assert named["002_01_003_2_81.hdf5"] == {
        "sample_id": "wmca/face-station/17.01.18/002_01_003_2_81",
        "path": str(root.resolve() / DATA / "face-station/17.01.18/002_01_003_2_81.hdf5"),
        "media": "video", "label": 0, "attack": "flexiblemask", "domain": "wmca", "subject": "002", "split": "train",
        "session": "01", "device": None, "light": None, "frame_index": None,
        "attack_family": "3D", "pai": "2_81", "presenter": "003"}
    bona_fide = named["001_01_000_0_00.hdf5"]
    assert (bona_fide["label"], bona_fide["attack"], bona_fide["split"], bona_fide["attack_family"]) == (
        1, "real", "test", None)
    # type 3 (photo) PAI 05 is an electronic display, so a replay; the unlisted makeup video and CDIT are not read
    assert named["001_04_010_3_05.hdf5"]["attack"] == "replay"
    assert "010_02_000_5_01.hdf5" not in named and not any("CDIT" in row["path"] for row in rows)


def test_wmca_leave_one_out_protocol(tmp_path):
    root = release(tmp_path)
    grand, rows = read(root), read(root, "loo_FAKEHEAD")
    assert count(rows, "split", "attack") == {
        ("train", "real"): 2, ("train", "flexiblemask"): 1, ("train", "glasses"): 1,
        ("dev", "real"): 1, ("dev", "prints"): 1,
        ("test", "real"): 1, ("test", "fakehead"): 1}
    # a subset of grandtest, each video in the same split with the same row
    by_id = {row["sample_id"]: row for row in grand}
    assert all(by_id[row["sample_id"]] == row for row in rows)
    assert {r["sample_id"] for r in grand} - {r["sample_id"] for r in rows} == {
        "wmca/face-station/14.03.18/503_04_010_2_04", "wmca/face-station/23.01.18/502_01_009_2_03",
        "wmca/face-station/14.03.18/001_04_010_2_08", "wmca/face-station/14.03.18/001_04_010_3_05"}


def test_wmca_root_may_be_the_colour_folder(tmp_path):
    """Lists beside the data (in the root itself) and the colour folder as root give the same samples."""
    root = release(tmp_path)
    write_list(root / DATA, "grandtest", GRANDTEST, folder=".")
    rows = read(root / DATA)
    assert [r["sample_id"] for r in rows] == [r["sample_id"] for r in read(root)]
    assert rows[0]["path"] == str((root / DATA).resolve() / "face-station/01.02.18/002_01_000_0_00.hdf5")


def test_wmca_protocol_errors(tmp_path):
    root = release(tmp_path)
    raises(r"unknown WMCA protocol 'LOO_wig'; expected one of grandtest, LOO_fakehead, LOO_flexiblemask, "
           r"LOO_glasses, LOO_papermask, LOO_prints, LOO_replay, LOO_rigidmask, UNKNOWN_2D, UNKNOWN_3D",
           root, "LOO_wig")
    raises(r"WMCA protocol 'LOO_prints': list file not found; expected one of .*wmca-protocols-csv/"
           r"PROTOCOL-LOO_prints\.csv", root, "LOO_prints")
    write_list(root, "LOO_prints", "\n")
    raises(r"no samples found .*PROTOCOL-LOO_prints\.csv", root, "LOO_prints")


@pytest.mark.parametrize("line, match", [
    ("face-station/01.02.18/002_01_000_0.hdf5,0,bonafide,train",
     r"line 2: unexpected WMCA file name '002_01_000_0'; expected <client NNN>_<session NN>"),
    ("face-station/20.02.18/010_02_000_5_01,1,attack/3D/makeup,train", r"line 2: 010_02_000_5_01 names PAI 5_01"),
    ("face-station/17.01.18/002_01_003_2_81,1,attack/3D/rigidmask,train",
     r"line 2: attack type 'attack/3D/rigidmask' disagrees with the file name 002_01_003_2_81 \(PAI 2_81 is "
     r"flexiblemask\)"),
    ("face-station/17.01.18/002_01_003_2_81,0,attack/3D/flexiblemask,train",
     r"line 2: ground truth '0' disagrees with attack type"),
    ("face-station/17.01.18/002_01_003_2_81,1,attack/2D/flexiblemask,train", r"line 2: attack type 'attack/2D/"),
    ("face-station/17.01.18/002_01_003_2_81,1,attack/3D/flexiblemask,test2", r"line 2: group 'test2'; expected"),
    ("face-station/17.01.18/002_01_003_2_81,attack/3D/flexiblemask,train",
     r"line 2: .*expected <filepath>,<0\|1>,<bonafide\|attack/<2D\|3D>/<category>>,<train\|dev\|eval>"),
    ("face-station/01.02.18/002_01_000_0_00,0,bonafide,dev",
     r"line 2: face-station/01\.02\.18/002_01_000_0_00 is listed again \(first at line 1\)"),
    ("face-station/02.02.18/002_01_000_0_02,0,bonafide,dev",
     r"line 2: listed video face-station/02\.02\.18/002_01_000_0_02\.hdf5 is not under .*WMCA_preprocessed_RGB/WMCA"),
])
def test_wmca_malformed_lists(tmp_path, line, match):
    root = release(tmp_path)
    write_list(root, "LOO_glasses", "face-station/01.02.18/002_01_000_0_00,0,bonafide,train\n" + line + "\n")
    raises(rf"PROTOCOL-LOO_glasses\.csv {match}", root, "LOO_glasses")


def test_wmca_without_colour_data(tmp_path):
    write_list(tmp_path, "grandtest", GRANDTEST)
    (tmp_path / "WMCA_preprocessed_CDIT/WMCA/face-station").mkdir(parents=True)
    raises(r"WMCA colour videos not found: the protocol list names face-station/01\.02\.18/002_01_000_0_00\.hdf5, "
           r"so expected face-station at one of .*WMCA_preprocessed_RGB/WMCA/face-station", tmp_path)


# --- HDF5 frame reading ---------------------------------------------------------------------------------------------

def test_sample_frames_reads_the_stored_colour_frames(tmp_path):
    written = frames_of(7)
    path = write_frame_container(tmp_path / "002_01_000_0_00.hdf5", written)
    picked = sample_frames(path, num_frames=3)
    assert [i for i, _ in picked] == uniform_indices(6, 3) == [0, 2, 5]
    for index, frame in picked:
        assert frame.shape == (8, 8, 3) and frame.dtype == np.uint8 and frame.flags.c_contiguous
        assert np.array_equal(frame, written[index].transpose(1, 2, 0))  # pixel (y, x) = the 3 planes at (y, x)
    assert [i for i, _ in sample_frames(path, num_frames=10)] == list(range(6))
    assert [i for i, _ in sample_frames(path, every_k=4)] == [0, 4]
    # the planes are R, G, B in that order
    red = np.zeros((3, 4, 6), np.uint8)
    red[0], red[1], red[2] = 200, 100, 50
    (index, frame), = sample_frames(write_frame_container(tmp_path / "red.h5", [red]))
    assert index == 0 and frame.shape == (4, 6, 3) and frame[2, 5].tolist() == [200, 100, 50]


def test_sample_frames_follow_frame_numbers(tmp_path):
    """Frames in number order (Frame_10 after Frame_9, not after Frame_1), skipped numbers skipped: from the
    FrameIndexes order bob saves, and from the group names when a file has none (groups written in reverse here)."""
    written, ids = frames_of(3), [0, 1, 2, 9, 10, 11]
    expected = dict(zip(ids, written))
    indexed = write_frame_container(tmp_path / "indexed.hdf5", written, ids=ids)
    bare = write_frame_container(tmp_path / "bare.hdf5", written[::-1], ids=ids[::-1], order=False)
    for path in (indexed, bare):
        picked = sample_frames(path, num_frames=100)
        assert [i for i, _ in picked] == ids
        assert all(np.array_equal(frame, expected[i].transpose(1, 2, 0)) for i, frame in picked)
        assert [i for i, _ in sample_frames(path, every_k=2)] == [0, 2, 10]
        assert [i for i, _ in sample_frames(path, num_frames=3)] == [0, 2, 11]


def test_sample_frames_video_like_container(tmp_path):
    written = np.stack(frames_of(5, count=4))
    with h5py.File(tmp_path / "v.hdf5", "w") as f:
        f["data"], f["indices"] = written, np.array([3, 4, 5, 6])
    picked = sample_frames(tmp_path / "v.hdf5", num_frames=2)
    assert [i for i, _ in picked] == [3, 6]
    assert np.array_equal(picked[1][1], written[3].transpose(1, 2, 0))


def test_broken_hdf5_videos_raise_video_error(tmp_path):
    good = write_frame_container(tmp_path / "good.hdf5", frames_of(1))
    truncated = tmp_path / "truncated.hdf5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    junk = tmp_path / "junk.hdf5"
    junk.write_bytes(b"not an hdf5 file" * 10)
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        f.attrs["fps"] = 30
    with h5py.File(tmp_path / "noarray.hdf5", "w") as f:
        f.create_group("Frame_0").create_dataset("FrameQuality", data=1.0)
    write_frame_container(tmp_path / "cdit.hdf5", [np.zeros((4, 8, 8), np.uint8)])
    write_frame_container(tmp_path / "float.hdf5", [np.zeros((3, 8, 8), np.float32)])
    cases = {truncated: r"truncated\.hdf5: cannot read HDF5 video \(OSError",
             junk: r"junk\.hdf5: cannot read HDF5 video \(OSError",
             tmp_path / "missing.hdf5": r"missing\.hdf5: cannot read HDF5 video",
             tmp_path / "empty.hdf5": r"empty\.hdf5: no colour frames; expected Frame_<n>/array groups",
             tmp_path / "noarray.hdf5": r"noarray\.hdf5: cannot read HDF5 video \(KeyError",
             tmp_path / "cdit.hdf5": r"frame 0 has shape \(4, 8, 8\) \(4 planes: the CDIT .*\); expected a colour",
             tmp_path / "float.hdf5": r"frame 0 is float32; expected uint8"}
    for path, match in cases.items():
        with pytest.raises(VideoError, match=match):
            sample_frames(path, num_frames=3)


def test_cache_decodes_wmca_rows_and_skips_broken_ones(tmp_path):
    root = release(tmp_path)
    row = next(r for r in read(root) if r["sample_id"].endswith("002_01_003_2_81"))
    picked, error = decode_sample(row, frames=2, every_k=None)
    assert error == "" and [i for i, _ in picked] == [0, 5]
    assert np.array_equal(picked[1][1], frames_of(2)[5].transpose(1, 2, 0))  # third grandtest line: seed 2
    Path(row["path"]).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    picked, error = decode_sample(row, frames=2, every_k=None)
    assert picked == [] and re.search(r"002_01_003_2_81\.hdf5: cannot read HDF5 video", error)
