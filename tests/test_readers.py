"""Dataset readers on tiny fabricated trees that follow each dataset's real layout and file naming."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from fas.data.manifest import ManifestError
from fas.data.readers import list_readers, read_dataset
from fas.data.readers.class8 import CLASS8_CATEGORIES
from fas.data.readers.real_faces import hashed_split


def touch(root: Path, *rels: str) -> Path:
    """Create each file (a few bytes: readers must not decode media) and its folders under ``root``."""
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"fake")
    return root


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def read(name: str, root: Path, protocol: str | None = None) -> list[dict]:
    return read_dataset(name, root, protocol).to_pylist()


def count(rows: list[dict], key: str) -> dict:
    return dict(collections.Counter(row[key] for row in rows))


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {Path(row["path"]).name: row for row in rows}


def raises(match: str, name: str, root: Path, protocol: str | None = None) -> None:
    with pytest.raises(ManifestError, match=match):
        read(name, root, protocol)


def test_every_reader_is_registered():
    expected = {"class8", "oulu_npu", "casia_fasd", "replay_attack", "msu_mfsd", "nuaa", "celeba_spoof", "real_faces",
                "csv", "siw", "wmca", "rose_youtu", "hkbu_mars", "wffd"}
    assert expected <= set(list_readers())


# --- class8 ---------------------------------------------------------------------------------------------------------

def test_class8_single_domain(tmp_path):
    touch(tmp_path, "train/a_normal_facial_photo/s1_001.jpg", "train/a_normal_facial_photo/s1_002.PNG",
          "train/b/s2_001.jpg", "val/c_face_mask/loose.webp", "test/h_dark/s3_x_y.jpeg", "test/h_dark/notes.txt")
    rows = read("class8", tmp_path)
    assert len(rows) == 5
    assert count(rows, "split") == {"train": 3, "dev": 1, "test": 1}
    assert count(rows, "domain") == {"class8": 5}
    assert count(rows, "attack") == {"real": 2, "id_card": 1, "face_mask": 1, "dark_environment": 1}
    named = by_name(rows)
    assert named["s1_001.jpg"]["label"] == 1 and named["s2_001.jpg"]["label"] == 0
    assert named["s1_002.PNG"]["media"] == "image"
    assert [named[n]["subject"] for n in ("s1_001.jpg", "s2_001.jpg", "loose.webp", "s3_x_y.jpeg")] == [
        "s1", "s2", "loose", "s3"]
    assert named["s3_x_y.jpeg"]["category"] == "h"
    assert named["s1_001.jpg"]["sample_id"] == "class8/train/a_normal_facial_photo/s1_001"
    assert named["s1_001.jpg"]["path"] == str(tmp_path.resolve() / "train/a_normal_facial_photo/s1_001.jpg")


def test_class8_categories_export():
    assert [letter for letter, _ in CLASS8_CATEGORIES] == list("abcdefgh")
    assert CLASS8_CATEGORIES[0] == ("a", "real") and CLASS8_CATEGORIES[5] == ("f", "recaptured")


def test_class8_multi_domain_and_shared_stems(tmp_path):
    touch(tmp_path, "bank/train/a/u1_x.jpg", "bank/train/a/u1_x.png", "kiosk/test/g_photoshopped/u2_y.jpg")
    rows = read("class8", tmp_path)
    assert count(rows, "domain") == {"bank": 2, "kiosk": 1}
    assert {r["sample_id"] for r in rows} == {"bank/train/a/u1_x.jpg", "bank/train/a/u1_x.png",
                                              "kiosk/test/g_photoshopped/u2_y"}
    assert count(rows, "attack") == {"real": 2, "photoshopped": 1}


def test_class8_malformed(tmp_path):
    touch(tmp_path, "train/a/x.jpg", "train/z_other/y.jpg")
    raises(r"z_other: unknown category folder", "class8", tmp_path)
    raises("no protocols", "class8", tmp_path, "1")
    touch(tmp_path / "loose", "train/x.jpg")
    raises(r"train/x\.jpg: file outside a category folder", "class8", tmp_path / "loose")


# --- oulu_npu -------------------------------------------------------------------------------------------------------

def oulu_tree(root: Path) -> Path:
    return touch(root, "Train_files/1_1_01_1.avi", "Train_files/1_1_01_1.txt", "Train_files/1_1_01_2.avi",
                 "Train_files/1_1_01_4.avi", "Dev_files/2_2_21_1.avi", "Dev_files/2_2_21_3.avi",
                 "Test_files/6_3_36_5.avi")


def test_oulu_by_folder(tmp_path):
    rows = read("oulu_npu", oulu_tree(tmp_path))
    assert len(rows) == 6
    assert count(rows, "split") == {"train": 3, "dev": 2, "test": 1}
    assert count(rows, "attack") == {"real": 2, "print1": 1, "print2": 1, "replay1": 1, "replay2": 1}
    row = by_name(rows)["2_2_21_3.avi"]
    assert (row["device"], row["session"], row["light"], row["subject"], row["label"]) == (
        "phone2", "2", "session2", "21", 0)
    assert row["sample_id"] == "oulu_npu/Dev_files/2_2_21_3" and row["media"] == "video"


def test_oulu_protocols(tmp_path):
    oulu_tree(tmp_path)
    write(tmp_path, "Protocols/Protocol_1/Train.txt", "+1,1_1_01_1\n-1,1_1_01_2\n")
    write(tmp_path, "Protocols/Protocol_1/Dev.txt", "+1,2_2_21_1\r\n")
    write(tmp_path, "Protocols/Protocol_1/Test.txt", "-2,6_3_36_5\n")
    rows = read("oulu_npu", tmp_path, "1")
    assert sorted(by_name(rows)) == ["1_1_01_1.avi", "1_1_01_2.avi", "2_2_21_1.avi", "6_3_36_5.avi"]
    assert count(rows, "split") == {"train": 2, "dev": 1, "test": 1}
    for split, stem in (("Train", "-2,1_1_01_4"), ("Dev", "-1,2_2_21_3"), ("Test", "+1,2_2_21_1")):
        write(tmp_path, f"Protocols/Protocol_3/{split}_2.txt", stem + "\n")
    for name in ("3_2", "3/2", "protocol_3_2"):
        rows = read("oulu_npu", tmp_path, name)
        assert {by_name(rows)[n]["split"] for n in ("1_1_01_4.avi", "2_2_21_3.avi", "2_2_21_1.avi")} == {
            "train", "dev", "test"}


def test_oulu_malformed(tmp_path):
    oulu_tree(tmp_path)
    raises(r"3_1, 3_2, 3_3, 3_4, 3_5, 3_6", "oulu_npu", tmp_path, "3")
    raises(r"unknown OULU-NPU protocol 'x'", "oulu_npu", tmp_path, "x")
    raises(r"Protocol_2/Train\.txt does not exist", "oulu_npu", tmp_path, "2")
    write(tmp_path, "Protocols/Protocol_2/Train.txt", "+1,1_1_01_2\n")
    write(tmp_path, "Protocols/Protocol_2/Dev.txt", "+1,1_1_09_1\n")
    write(tmp_path, "Protocols/Protocol_2/Test.txt", "")
    raises(r"Protocol_2/Train\.txt line 1: label \+1 disagrees with the file name 1_1_01_2\.avi", "oulu_npu",
           tmp_path, "2")
    write(tmp_path, "Protocols/Protocol_2/Train.txt", "+1,1_1_01_1\n")
    raises(r"Protocol_2/Dev\.txt line 1: listed video 1_1_09_1\.avi", "oulu_npu", tmp_path, "2")
    touch(tmp_path, "Test_files/1_1_01.avi")
    raises(r"Test_files/1_1_01\.avi: unexpected OULU-NPU file name", "oulu_npu", tmp_path)


# --- casia_fasd -----------------------------------------------------------------------------------------------------

def casia_tree(root: Path) -> Path:
    return touch(root, *(f"train_release/1/{v}.avi" for v in ("1", "2", "HR_1", "3", "HR_4")),
                 "test_release/1/5.avi", "test_release/1/8.avi", "test_release/2/HR_3.avi")


def test_casia(tmp_path):
    rows = read("casia_fasd", casia_tree(tmp_path))
    assert len(rows) == 8
    assert count(rows, "split") == {"train": 5, "test": 3}
    assert count(rows, "subject") == {"train_1": 5, "test_1": 2, "test_2": 1}
    assert count(rows, "attack") == {"real": 3, "warped_photo": 1, "video_replay": 2, "cut_photo": 2}
    assert count(rows, "device") == {"low": 3, "normal": 2, "high": 3}
    assert by_name(rows)["HR_1.avi"]["label"] == 1 and by_name(rows)["HR_4.avi"]["label"] == 0


def test_casia_protocols(tmp_path):
    casia_tree(tmp_path)
    assert sorted(by_name(read("casia_fasd", tmp_path, "high"))) == ["HR_1.avi", "HR_3.avi", "HR_4.avi"]
    assert count(read("casia_fasd", tmp_path, "cut"), "attack") == {"real": 3, "cut_photo": 2}


def test_casia_malformed(tmp_path):
    casia_tree(tmp_path)
    raises("unknown CASIA-FASD protocol 'print'", "casia_fasd", tmp_path, "print")
    touch(tmp_path, "test_release/3/9.avi")
    raises(r"test_release/3/9\.avi: unexpected CASIA-FASD video", "casia_fasd", tmp_path)
    raises("train_release and test_release", "casia_fasd", tmp_path / "test_release")


# --- replay_attack --------------------------------------------------------------------------------------------------

def replay_tree(root: Path) -> Path:
    return touch(
        root,
        "train/real/client001_session01_webcam_authenticate_controlled_1.mov",
        "train/attack/fixed/attack_print_client001_session01_highdef_photo_adverse.mov",
        "train/attack/hand/attack_mobile_client001_session01_mobile_video_controlled.mov",
        "devel/real/client002_session01_webcam_authenticate_adverse_2.mov",
        "devel/attack/hand/attack_highdef_client002_session01_highdef_photo_adverse.mov",
        "test/attack/fixed/attack_highdef_client003_session01_highdef_video_controlled.mov",
        "test/real/client003_session01_webcam_authenticate_adverse_1.mov",
        "enroll/train/client001_session01_webcam_enroll.mov",
    )


def test_replay_attack(tmp_path):
    rows = read("replay_attack", replay_tree(tmp_path))
    assert len(rows) == 7
    assert count(rows, "split") == {"train": 3, "dev": 2, "test": 2}
    assert count(rows, "attack") == {"real": 3, "print": 1, "mobile_video": 1, "highdef_photo": 1,
                                     "highdef_video": 1}
    assert count(rows, "support") == {None: 3, "fixed": 2, "hand": 2}
    row = by_name(rows)["attack_mobile_client001_session01_mobile_video_controlled.mov"]
    assert (row["subject"], row["session"], row["light"], row["device"], row["label"]) == (
        "001", "01", "controlled", "webcam", 0)
    assert by_name(rows)["client002_session01_webcam_authenticate_adverse_2.mov"]["light"] == "adverse"


def test_replay_attack_protocols(tmp_path):
    replay_tree(tmp_path)
    assert count(read("replay_attack", tmp_path, "print"), "attack") == {"real": 3, "print": 1}
    assert count(read("replay_attack", tmp_path, "video"), "attack") == {"real": 3, "mobile_video": 1,
                                                                         "highdef_video": 1}
    assert len(read("replay_attack", tmp_path, "grandtest")) == 7


def test_replay_attack_malformed(tmp_path):
    replay_tree(tmp_path)
    raises("unknown Replay-Attack protocol 'paper'", "replay_attack", tmp_path, "paper")
    touch(tmp_path, "test/attack/attack_print_client003_session01_highdef_photo_adverse.mov")
    raises(r"test/attack/attack_print_client003_session01_highdef_photo_adverse\.mov: unexpected Replay-Attack",
           "replay_attack", tmp_path)


# --- msu_mfsd -------------------------------------------------------------------------------------------------------

def msu_tree(root: Path) -> Path:
    write(root, "train_sub_list.txt", "01\n02\n")
    write(root, "test_sub_list.txt", "03\n")
    return touch(root, "scene01/real/real_client001_android_SD_scene01.mp4",
                 "scene01/real/real_client003_laptop_SD_scene01.mov",
                 "scene01/real/real_client003_laptop_SD_scene01.face",
                 "scene01/attack/attack_client001_laptop_SD_printed_photo_scene01.mov",
                 "scene01/attack/attack_client002_android_SD_iphone_video_scene01.mp4",
                 "scene01/attack/attack_client003_android_SD_ipad_video_scene01.mp4")


def test_msu_mfsd(tmp_path):
    rows = read("msu_mfsd", msu_tree(tmp_path))
    assert len(rows) == 5
    assert count(rows, "split") == {"train": 3, "test": 2}
    assert count(rows, "attack") == {"real": 2, "printed_photo": 1, "iphone_video": 1, "ipad_video": 1}
    assert count(rows, "subject") == {"001": 2, "002": 1, "003": 2}
    row = by_name(rows)["real_client003_laptop_SD_scene01.mov"]
    assert (row["device"], row["label"], row["split"]) == ("laptop", 1, "test")


def test_msu_mfsd_malformed(tmp_path):
    msu_tree(tmp_path)
    touch(tmp_path, "scene01/attack/attack_client009_android_SD_ipad_video_scene01.mp4")
    raises(r"client 9 is in neither .*train_sub_list\.txt", "msu_mfsd", tmp_path)
    touch(tmp_path, "scene01/real/real_client002_tablet_SD_scene01.mp4")
    raises(r"real_client002_tablet_SD_scene01\.mp4: unexpected MSU-MFSD real video name", "msu_mfsd", tmp_path)
    (tmp_path / "test_sub_list.txt").unlink()
    raises(r"test_sub_list\.txt does not exist", "msu_mfsd", tmp_path)


# --- nuaa -----------------------------------------------------------------------------------------------------------

def nuaa_tree(root: Path, variant: str = "Raw") -> Path:
    suffix = variant.lower()
    touch(root, f"Client{variant}/0001/0001_00_00_01_0.jpg", f"Client{variant}/0001/0001_00_00_01_1.jpg",
          f"Client{variant}/0002/0002_00_00_01_0.jpg", f"Client{variant}/0002/unlisted.jpg",
          f"Imposter{variant}/0001/0001_00_00_01_0.jpg", f"Imposter{variant}/0002/0002_00_00_01_0.jpg")
    write(root, f"client_train_{suffix}.txt", "0001\\0001_00_00_01_0.jpg\r\n0001\\0001_00_00_01_1.jpg\r\n")
    write(root, f"client_test_{suffix}.txt", "0002\\0002_00_00_01_0.jpg\r\n")
    write(root, f"imposter_train_{suffix}.txt", "0001\\0001_00_00_01_0.jpg\n")
    write(root, f"imposter_test_{suffix}.txt", "0002\\0002_00_00_01_0.jpg\n")
    return root


def test_nuaa(tmp_path):
    rows = read("nuaa", nuaa_tree(tmp_path))
    assert len(rows) == 5
    assert count(rows, "split") == {"train": 3, "test": 2}
    assert count(rows, "attack") == {"real": 3, "print": 2}
    assert count(rows, "subject") == {"0001": 3, "0002": 2}
    assert {r["sample_id"] for r in rows if r["subject"] == "0001"} == {
        "nuaa/ClientRaw/0001/0001_00_00_01_0", "nuaa/ClientRaw/0001/0001_00_00_01_1",
        "nuaa/ImposterRaw/0001/0001_00_00_01_0"}


def test_nuaa_face_variant(tmp_path):
    rows = read("nuaa", nuaa_tree(tmp_path, "Face"), "face")
    assert len(rows) == 5 and all("Face/" in r["path"] for r in rows)
    raises(r"client_train_raw\.txt does not exist", "nuaa", tmp_path)


def test_nuaa_malformed(tmp_path):
    nuaa_tree(tmp_path)
    raises("unknown NUAA protocol 'color'", "nuaa", tmp_path, "color")
    write(tmp_path, "imposter_test_raw.txt", "0002\\0002_00_00_01_0.jpg\n0002\\missing.jpg\n")
    raises(r"imposter_test_raw\.txt line 2: listed image .*ImposterRaw/0002/missing\.jpg does not exist", "nuaa",
           tmp_path)
    (tmp_path / "imposter_test_raw.txt").unlink()
    raises(r"imposter_test_raw\.txt does not exist", "nuaa", tmp_path)


# --- celeba_spoof ---------------------------------------------------------------------------------------------------

def celeba_labels(spoof_type: int, illumination: int, environment: int, spoof: int) -> list[int]:
    return [0] * 40 + [spoof_type, illumination, environment, spoof]


def celeba_tree(root: Path) -> Path:
    train = {"Data/train/4980/live/000001.jpg": celeba_labels(0, 0, 0, 0),
             "Data/train/4980/spoof/000002.png": celeba_labels(8, 2, 1, 1)}
    test = {"Data/test/6001/spoof/000003.jpg": celeba_labels(10, 4, 2, 1)}
    write(root, "metas/intra_test/train_label.json", json.dumps(train))
    write(root, "metas/intra_test/test_label.json", json.dumps(test))
    return touch(root, *train, *test, "Data/train/4980/live/000001_BB.txt")


def test_celeba_spoof(tmp_path):
    rows = read("celeba_spoof", celeba_tree(tmp_path))
    assert len(rows) == 3
    named = by_name(rows)
    live, pad, mask = named["000001.jpg"], named["000002.png"], named["000003.jpg"]
    assert (live["label"], live["attack"], live["subject"], live["split"], live["light"]) == (1, "real", "4980",
                                                                                            "train", None)
    assert (pad["label"], pad["attack"], pad["light"], pad["environment"]) == (0, "pad", "strong", "indoor")
    assert (mask["attack"], mask["split"], mask["subject"], mask["light"]) == ("3d_mask", "test", "6001", "dark")
    assert live["sample_id"] == "celeba_spoof/Data/train/4980/live/000001"


def test_celeba_spoof_malformed(tmp_path):
    celeba_tree(tmp_path)
    write(tmp_path, "metas/intra_test/test_label.json",
          json.dumps({"Data/test/6001/live/000003.jpg": celeba_labels(0, 0, 0, 1)}))
    raises(r"test_label\.json entry 'Data/test/6001/live/000003\.jpg': live/spoof label 1", "celeba_spoof", tmp_path)
    write(tmp_path, "metas/intra_test/test_label.json",
          json.dumps({"Data/test/6001/spoof/gone.jpg": celeba_labels(1, 1, 1, 1)}))
    raises(r"test_label\.json entry .*gone\.jpg does not exist", "celeba_spoof", tmp_path)
    (tmp_path / "metas/intra_test/test_label.json").unlink()
    raises(r"intra_test/test_label\.json does not exist", "celeba_spoof", tmp_path)
    raises(r"metas/protocol1 is not a directory", "celeba_spoof", tmp_path, "protocol1")


# --- real_faces -----------------------------------------------------------------------------------------------------

def test_real_faces_hashed_split(tmp_path):
    names = [f"{i // 50:05d}/{i:05d}.png" for i in range(200)]
    rows = read("real_faces", touch(tmp_path, *names, "LICENSE.txt"))
    assert len(rows) == 200 and count(rows, "label") == {1: 200} and count(rows, "domain") == {"real_faces": 200}
    splits = count(rows, "split")
    assert splits["train"] >= 160 and splits.get("dev", 0) + splits.get("test", 0) >= 5
    assert all(r["split"] == hashed_split(Path(r["path"]).relative_to(tmp_path.resolve())) for r in rows)
    assert by_name(rows)["00007.png"]["subject"] == "00000/00007"
    assert [r["split"] for r in read("real_faces", tmp_path)] == [r["split"] for r in rows]


def test_real_faces_split_folders(tmp_path):
    touch(tmp_path, "train/a/1.jpg", "valid/2.jpg", "test/3.jpg")
    assert count(read("real_faces", tmp_path), "split") == {"train": 1, "dev": 1, "test": 1}
    raises("no protocols", "real_faces", tmp_path, "ffhq")
    touch(tmp_path, "stray.jpg")
    raises(r"stray\.jpg: image outside the split folders", "real_faces", tmp_path)


# --- csv ------------------------------------------------------------------------------------------------------------

def test_csv_manifest(tmp_path):
    root = tmp_path / "mydata"
    touch(root, "imgs/a.jpg", "imgs/b.png", "clips/c.mp4")
    touch(tmp_path, "outside/d.jpg")
    write(root, "manifest.csv", "path,label,split,attack,domain,note\n"
                                "imgs/a.jpg,1,train,,,first\n"
                                "imgs/b.png,0,val,print,,\n"
                                f"{tmp_path / 'outside/d.jpg'},0,test,,lab2,\n"
                                "clips/c.mp4,1,test,real,,\n")
    rows = read("csv", root)
    assert [r["split"] for r in rows] == ["train", "dev", "test", "test"]
    assert [r["attack"] for r in rows] == ["real", "print", "attack", "real"]
    assert [r["domain"] for r in rows] == ["mydata", "mydata", "lab2", "mydata"]
    assert [r["media"] for r in rows] == ["image", "image", "image", "video"]
    assert rows[0]["sample_id"] == "mydata/imgs/a" and rows[0]["subject"] == "mydata/imgs/a"
    assert rows[0]["note"] == "first" and rows[1]["note"] is None
    assert rows[2]["path"] == str(tmp_path.resolve() / "outside/d.jpg")


def test_csv_same_file_in_two_splits(tmp_path):
    touch(tmp_path, "a.jpg")
    write(tmp_path, "manifest.csv", "path,label,split,subject\na.jpg,1,train,p1\na.jpg,1,test,p1\n")
    rows = read("csv", tmp_path)
    assert len({r["sample_id"] for r in rows}) == 2 and count(rows, "subject") == {"p1": 2}


def test_csv_malformed(tmp_path):
    raises(r"manifest\.csv does not exist", "csv", tmp_path)
    touch(tmp_path, "a.jpg")
    write(tmp_path, "manifest.csv", "path,split\na.jpg,train\n")
    raises(r"manifest\.csv: header lacks columns \['label'\]", "csv", tmp_path)
    write(tmp_path, "manifest.csv", "path,label,split\na.jpg,1,train\nb.jpg,0,test\n")
    raises(r"manifest\.csv line 3: .*b\.jpg does not exist", "csv", tmp_path)
    write(tmp_path, "manifest.csv", "path,label,split,attack\na.jpg,1,train,print\n")
    raises(r"manifest\.csv line 2: label 1 disagrees with attack 'print'", "csv", tmp_path)
    write(tmp_path, "other.csv", "path,label,split\na.jpg,yes,train\n")
    raises(r"other\.csv line 2: label 'yes'", "csv", tmp_path, "other")
