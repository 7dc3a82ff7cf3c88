"""The declarative reader (`fas manifest pattern ROOT --spec`) and the layouts shipped as specs (Rose-Youtu,
HKBU-MARs V1+, WFFD), on tiny trees named as those releases name their files."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fas.data.manifest import ManifestError
from fas.data.readers import read_dataset
from fas.data.readers.pattern import load_spec, read_pattern
from fas.data.readers.real_faces import hashed_split
from tests.test_readers import by_name, count, touch, write


USER_SPEC = """
domain: lab_kiosk
files: ["**/*.jpg", "**/*.mp4"]
pattern: '(?P<split>trn|tst)/(?P<label>live|spoof)/(?:(?P<attack>prt|scr)_)?(?P<subject>u\\d+)_(?P<device>cam[AB])_(?P<take>\\d+)'
values:
  split: {trn: train, tst: test}
  attack: {prt: print, scr: screen_replay}
  device: {camA: front, camB: side}
set: {session: s1}
unmatched: error
"""


def user_tree(root: Path) -> Path:
    return touch(root, "trn/live/u01_camA_1.jpg", "trn/live/u02_camB_1.mp4", "trn/spoof/prt_u01_camA_2.jpg",
                 "tst/spoof/scr_u03_camB_1.mp4", "tst/live/u03_camA_1.jpg", "tst/live/notes.txt",
                 "tst/live/.hidden_u09_camA_1.jpg")


def test_a_user_spec_reads_groups_maps_and_constants(tmp_path):
    spec = write(tmp_path, "spec.yaml", USER_SPEC)
    table, summary = read_pattern(user_tree(tmp_path / "data"), spec)
    rows = table.to_pylist()
    assert summary == {"read": 5, "skipped": {}}
    assert count(rows, "split") == {"train": 3, "test": 2}
    assert count(rows, "attack") == {"real": 3, "print": 1, "screen_replay": 1}
    assert count(rows, "label") == {1: 3, 0: 2}
    row = by_name(rows)["scr_u03_camB_1.mp4"]
    assert {k: row[k] for k in ("sample_id", "media", "label", "attack", "domain", "subject", "split", "device",
                                "session", "take")} == {
        "sample_id": "lab_kiosk/tst/spoof/scr_u03_camB_1", "media": "video", "label": 0, "attack": "screen_replay",
        "domain": "lab_kiosk", "subject": "u03", "split": "test", "device": "side", "session": "s1", "take": "1"}


def test_a_file_the_pattern_does_not_match_is_an_error_or_is_counted(tmp_path):
    root = user_tree(tmp_path / "data")
    touch(root, "trn/live/IMG_0001.jpg")
    spec = write(tmp_path, "spec.yaml", USER_SPEC)
    with pytest.raises(ManifestError, match=r"IMG_0001\.jpg: 'trn/live/IMG_0001' does not match the pattern"):
        read_pattern(root, spec)
    write(tmp_path, "skip.yaml", USER_SPEC.replace("unmatched: error", "unmatched: skip"))
    table, summary = read_pattern(root, tmp_path / "skip.yaml")
    assert (table.num_rows, summary["skipped"]) == (5, {"unmatched": 1})


def test_labels_from_words_and_a_hashed_split(tmp_path):
    spec = write(tmp_path, "spec.yaml", """
pattern: '(?P<label>genuine|fake)/(?P<subject>[a-z]+)\\d*'
set: {split: hash, attack: wax_figure}
""")
    root = touch(tmp_path / "wax", "genuine/ann1.png", "fake/ann2.png", "fake/bob.png")
    rows = read_pattern(root, spec)[0].to_pylist()
    assert {Path(r["path"]).name: (r["label"], r["attack"], r["subject"], r["domain"]) for r in rows} == {
        "ann1.png": (1, "real", "ann", "spec"), "ann2.png": (0, "wax_figure", "ann", "spec"),
        "bob.png": (0, "wax_figure", "bob", "spec")}
    assert [r["split"] for r in rows] == [hashed_split(Path(r["path"]).relative_to(root)) for r in rows]


@pytest.mark.parametrize("text,message", [
    ("files: ['*.jpg']", r"'pattern' .* is required"),
    ("pattern: '(?P<subject>'", r"not a valid regular expression"),
    ("pattern: '(?P<subject>.+)'\nset: {split: test}", r"give 'label' or 'attack'"),
    ("pattern: '(?P<attack>.+)'\nset: {split: test}", r"give 'subject'"),
    ("pattern: '(?P<attack>.+)/(?P<subject>.+)'", r"give 'split'"),
    ("pattern: '(?P<attack>.+)/(?P<path>.+)'\nset: {split: test, subject: x}", r"\['path'\] are written by the reader"),
    ("pattern: '(?P<attack>.+)/(?P<subject>.+)'\nset: {split: test}\nvalues: {device: {a: b}}",
     r"'values' maps \['device'\], which the pattern has no group for"),
    ("pattern: '(?P<attack>.+)/(?P<subject>.+)'\nset: {split: test}\nglob: '*.png'", r"unknown keys \['glob'\]"),
])
def test_a_broken_spec_names_what_is_wrong(tmp_path, text, message):
    with pytest.raises(ManifestError, match=message):
        load_spec(write(tmp_path, "broken.yaml", text))


def test_a_split_the_spec_cannot_resolve_names_the_file(tmp_path):
    spec = write(tmp_path, "spec.yaml", "pattern: '(?P<split>[a-z]+)/(?P<attack>real)_(?P<subject>\\d+)'\n")
    with pytest.raises(ManifestError, match=r"holdout/real_1\.jpg: split 'holdout' is not train/dev/test"):
        read_pattern(touch(tmp_path / "d", "train/real_1.jpg", "holdout/real_1.jpg"), spec)


def test_the_cli_reads_a_tree_with_a_spec(tmp_path, capsys):
    from fas.cli import main

    spec = write(tmp_path, "spec.yaml", USER_SPEC.replace("unmatched: error", "unmatched: skip"))
    root = touch(user_tree(tmp_path / "data"), "trn/live/IMG_0001.jpg")
    out = tmp_path / "m.parquet"
    assert main(["manifest", "pattern", str(root), "--spec", str(spec), "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 5
    assert f"5 files read with {spec}; skipped: 1 unmatched" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--spec goes with the dataset name 'pattern'"):
        main(["manifest", "pattern", str(root), "--out", str(out)])


# --- the shipped layouts --------------------------------------------------------------------------------------------

def test_rose_youtu(tmp_path):
    root = touch(tmp_path, "adaptation/2/G_NT_5s_g_E_2_1.mp4", "adaptation/2/Ps_T_HW_wg_E_2_3.mp4",
                 "adaptation/2/Mc_NT_IP_g_B_2_1.mp4", "test/11/Vm_T_ZTE_wg_E_11_2.mp4", "test/11/G_T_HS_g_E_11_1.mp4",
                 "test/11/Mu_NT_HS_g_E_11_4.mp4", "test/11/G_T_HS_g_E_11_1.face")
    rows = read_dataset("rose_youtu", root).to_pylist()
    assert count(rows, "split") == {"train": 3, "test": 3}
    assert count(rows, "attack") == {"real": 2, "print_still": 1, "paper_mask_cropped": 1, "replay_mac_screen": 1,
                                     "paper_mask_upper": 1}
    row = by_name(rows)["Vm_T_ZTE_wg_E_11_2.mp4"]
    assert (row["domain"], row["subject"], row["device"], row["talking"], row["glasses"], row["label"]) == (
        "rose_youtu", "11", "zte_phone", "yes", "no", 0)
    touch(root, "test/11/Xx_T_ZTE_wg_E_11_2.mp4")
    with pytest.raises(ManifestError, match=r"Xx_T_ZTE_wg_E_11_2\.mp4: 'test/11/Xx_T_ZTE_wg_E_11_2' does not match"):
        read_dataset("rose_youtu", root)
    with pytest.raises(ManifestError, match="has no protocols"):
        read_dataset("rose_youtu", root, "1")


def test_hkbu_mars(tmp_path):
    root = touch(tmp_path, "real/01/01.avi", "real/07/02.avi", "mask/Thatsmyface/01/01.avi", "mask/REAL-f/07/01.avi",
                 "mask/REAL-f/07/02.avi")
    rows = read_dataset("hkbu_mars", root).to_pylist()
    assert count(rows, "attack") == {"real": 2, "mask_3d_thatsmyface": 1, "mask_3d_real_f": 2}
    assert count(rows, "subject") == {"01": 2, "07": 3} and count(rows, "split") == {"test": 5}
    assert {r["device"] for r in rows} == {"logitech_c920"}
    touch(root, "mask/Unknown/03/01.avi")
    with pytest.raises(ManifestError, match=r"mask/Unknown/03/01\.avi: 'mask/Unknown/03/01' does not match"):
        read_dataset("hkbu_mars", root)


def test_wffd(tmp_path):
    root = touch(tmp_path, "images/real/tom_hanks_1.jpg", "images/wax/tom_hanks_1.jpg", "images/wax/ada-2.png",
                 "videos/wax/tom_hanks_2.mp4", "videos/real/ada.mp4")
    rows = read_dataset("wffd", root).to_pylist()
    assert count(rows, "attack") == {"real": 2, "wax_figure": 3}
    assert count(rows, "subject") == {"tom_hanks": 3, "ada": 2} and count(rows, "media") == {"image": 3, "video": 2}
    assert by_name(rows)["ada-2.png"]["sample_id"] == "wffd/images/wax/ada-2"
    touch(root, "images/statue/x.jpg")
    with pytest.raises(ManifestError, match=r"statue/x\.jpg: 'images/statue/x' does not match"):
        read_dataset("wffd", root)
