"""The generated dataset: layouts the readers expect, determinism, decodable videos, findable faces, visible cues."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from fas.data import synth

TINY = synth.SIZES["tiny"]
PNG_NAME = re.compile(r"^s\d{3}_\d{3}\.png$")
AVI_NAME = re.compile(r"^([1-6])_([1-3])_(\d{2})_([1-5])\.avi$")
OULU_USERS = {"Train_files": range(1, 21), "Dev_files": range(21, 36), "Test_files": range(36, 56)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "data"
    return out, synth.generate(out, seed=0, size="tiny")


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def images(root: Path, category: str, domain: str = "*") -> list[np.ndarray]:
    paths = sorted((root / "class8").glob(f"{domain}/*/{category}/*.png"))
    assert paths, f"no images for {category} in {domain}"
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths]


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as box:
        return [frame.to_ndarray(format="rgb24") for frame in box.decode(video=0)]


CASCADE = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


def has_face(img: np.ndarray) -> bool:
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return len(CASCADE.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=4, minSize=(30, 30))) > 0


def test_class8_tree(tiny):
    out, summary = tiny
    root = out / "class8"
    assert {p.name for p in root.iterdir() if p.is_dir()} == set(synth.DOMAINS)
    subjects_by_split: dict[str, set] = {s: set() for s in synth.SPLITS}
    for domain in synth.DOMAINS:
        assert {p.name for p in (root / domain).iterdir()} == set(synth.SPLITS)
        for split in synth.SPLITS:
            assert {p.name for p in (root / domain / split).iterdir()} == set(synth.CATEGORIES)
            for category in synth.CATEGORIES:
                files = sorted((root / domain / split / category).iterdir())
                assert len(files) == TINY.images[split]
                assert all(PNG_NAME.match(f.name) for f in files), [f.name for f in files]
                subjects_by_split[split] |= {f.name.split("_")[0] for f in files}
    img = cv2.imread(str(files[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (synth.IMAGE_SIZE, synth.IMAGE_SIZE, 3) and img.dtype == np.uint8
    train, dev, test = (subjects_by_split[s] for s in synth.SPLITS)
    assert not (train & dev) and not (train & test) and not (dev & test)
    per_class = len(synth.DOMAINS) * sum(TINY.images.values())
    assert summary["class8"]["images"] == len(list(root.rglob("*.png"))) == per_class * len(synth.CATEGORIES)
    assert summary["class8"]["by_class"] == {c: per_class for c in synth.CATEGORIES}


def test_synthetic_markers(tiny):
    out, summary = tiny
    assert summary["synthetic"] is True and summary["seed"] == 0
    for root in (out, out / "class8", out / "oulu_npu"):
        text = (root / "SYNTHETIC.txt").read_text()
        assert "SYNTHETIC" in text and "seed: 0" in text and f"generator_version: {synth.VERSION}" in text


def test_oulu_tree_and_protocol(tiny):
    out, summary = tiny
    root = out / "oulu_npu"
    names = {}
    for folder, users in OULU_USERS.items():
        for path in (root / folder).iterdir():
            match = AVI_NAME.match(path.name)
            assert match, path.name
            assert int(match.group(3)) in users, f"{path.name} has a user outside {folder}'s range"
            names[path.stem] = folder
    assert len(names) == summary["oulu_npu"]["videos"] == sum(len(r) for r in TINY.oulu.values()) * len(TINY.oulu_files)
    labels = {"1": "+1", "2": "-1", "3": "-1", "4": "-2", "5": "-2"}
    for split, folder in (("Train", "Train_files"), ("Dev", "Dev_files"), ("Test", "Test_files")):
        lines = (root / "Protocols" / "Protocol_1" / f"{split}.txt").read_text().splitlines()
        listed = {}
        for line in lines:
            label, name = line.split(",")
            assert names.get(name) == folder, f"{split}.txt lists {name}, which is not in {folder}"
            assert label == labels[name.split("_")[3]]
            listed[name] = label
        sessions = {"Train": "12", "Dev": "12", "Test": "3"}[split]
        expected = {n for n, f in names.items() if f == folder and n.split("_")[1] in sessions}
        assert set(listed) == expected and len(lines) == len(expected) > 0
        assert {"+1", "-1", "-2"} <= set(listed.values())


def test_videos_decode(tiny):
    out, _ = tiny
    videos = sorted((out / "oulu_npu").rglob("*.avi"))
    assert videos
    for path in videos:
        with av.open(str(path)) as box:
            assert box.streams.video[0].codec_context.name == "mpeg4"
        frames = decode(path)
        assert len(frames) == synth.VIDEO_FRAMES, path.name
        assert frames[0].shape == (synth.VIDEO_SIZE, synth.VIDEO_SIZE, 3)


def test_corrupt_video_fails_to_decode(tmp_path):
    path = synth.write_corrupt_video(tmp_path / "broken" / "1_1_01_1.avi")
    assert path.exists() and path.stat().st_size > 0
    with pytest.raises(av.error.FFmpegError):
        decode(path)


def test_same_seed_same_bytes_other_seed_differs(tiny, tmp_path):
    out, _ = tiny
    first = file_hashes(out)
    again = tmp_path / "again"
    synth.generate(again, seed=1, size="tiny")
    second = file_hashes(again)
    assert second.keys() == first.keys()
    media = [k for k in first if k.endswith((".png", ".avi"))]
    assert all(first[k] != second[k] for k in media)
    (again / "class8" / "stale.png").write_bytes(b"left over")
    synth.generate(again, seed=0, size="tiny")  # regenerating over an earlier output replaces it
    assert file_hashes(again) == first


def test_refuses_foreign_dirs_and_unknown_sizes(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not generated")
    with pytest.raises(FileExistsError):
        synth.generate(foreign, size="tiny")
    assert (foreign / "keep.txt").exists()
    with pytest.raises(ValueError):
        synth.generate(tmp_path / "x", size="huge")
def test_haar_finds_real_faces(tiny):
    out, _ = tiny
    reals = images(out, "a_real")
    image_rate = np.mean([has_face(img) for img in reals])
    frames = [f for path in sorted((out / "oulu_npu").rglob("*_1.avi")) for f in decode(path)]
    video_rate = np.mean([has_face(f) for f in frames])
    assert image_rate >= 0.7, image_rate
    assert video_rate >= 0.7, video_rate


def laplacian_energy(imgs) -> float:
    return float(np.mean([cv2.Laplacian(img, cv2.CV_64F).var() for img in imgs]))


def test_attack_cues_are_measurable(tiny):
    out, _ = tiny
    real = images(out, "a_real")
    assert np.mean([i.mean() for i in images(out, "h_dark_environment")]) < 0.3 * np.mean([i.mean() for i in real])
    assert laplacian_energy(images(out, "f_recaptured")) > 1.5 * laplacian_energy(real)
    assert laplacian_energy(images(out, "c_face_mask")) > 1.5 * laplacian_energy(real)
    assert np.mean([i.mean() for i in images(out, "d_online_verification")]) > np.mean([i.mean() for i in real])


def test_cameras_differ(tiny):
    out, _ = tiny
    colour = {}
    for domain in synth.DOMAINS:
        rgb = [cv2.imread(str(p))[..., ::-1].astype(np.float32)
               for p in sorted((out / "class8" / domain).glob("*/a_real/*.png"))]
        colour[domain] = np.mean([img[..., 0].mean() - img[..., 2].mean() for img in rgb])
    assert colour["synth-cam-a"] > colour["synth-cam-b"] + 10  # warm vs cool white balance
    sharp = {d: laplacian_energy(images(out, "a_real", d)) for d in synth.DOMAINS}
    assert sharp["synth-cam-c"] < 0.5 * min(sharp["synth-cam-a"], sharp["synth-cam-b"])  # the soft camera
