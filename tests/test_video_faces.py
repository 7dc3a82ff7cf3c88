"""Frame sampling (PyAV) and the face stage (detectors, crop, policies)."""

from __future__ import annotations

import numpy as np
import pytest

from fas.data.faces import DetectorError, crop_resize, detect_and_crop, expand_box, make_detector
from fas.data.video import VideoError, sample_frames, uniform_indices
from tests.conftest import write_truncated, write_video


def test_uniform_indices_spread_over_the_whole_video():
    assert uniform_indices(100, 10) == [0, 11, 22, 33, 44, 55, 66, 77, 88, 99]
    assert uniform_indices(5, 10) == [0, 1, 2, 3, 4]
    assert uniform_indices(0, 10) == []


def test_sample_frames_uniform_and_every_k(tmp_path):
    video = write_video(tmp_path / "v.avi", num_frames=20)
    picked = sample_frames(video, num_frames=5)
    assert [i for i, _ in picked] == uniform_indices(20, 5)
    assert picked[0][1].shape == (64, 64, 3) and picked[0][1].dtype == np.uint8
    # frames come back in order and are the right ones: brightness grows with the index
    means = [f.mean() for _, f in picked]
    assert means == sorted(means) and means[-1] - means[0] > 100
    assert [i for i, _ in sample_frames(video, every_k=7)] == [0, 7, 14]


def test_max_frames_samples_only_the_first_frames(tmp_path):
    """SiW protocol 1 trains on each video's first 60 frames: the reader's ``max_frames`` keeps sampling there."""
    from fas.data.cache import decode_sample

    video = write_video(tmp_path / "v.avi", num_frames=20)
    assert [i for i, _ in sample_frames(video, num_frames=4, max_frames=8)] == uniform_indices(8, 4) == [0, 2, 5, 7]
    assert [i for i, _ in sample_frames(video, every_k=3, max_frames=8)] == [0, 3, 6]
    row = {"media": "video", "path": str(video), "max_frames": 6}
    assert [i for i, _ in decode_sample(row, 3, None)[0]] == uniform_indices(6, 3)
    assert [i for i, _ in decode_sample({**row, "max_frames": None}, 3, None)[0]] == uniform_indices(20, 3)


def test_truncated_and_garbage_videos_raise_video_error(tmp_path):
    good = write_video(tmp_path / "good.avi", num_frames=30)
    with pytest.raises(VideoError, match="bad.avi"):
        sample_frames(write_truncated(tmp_path / "bad.avi", good), num_frames=10)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError, match="junk.mp4"):
        sample_frames(tmp_path / "junk.mp4")


def test_haar_finds_the_astronaut_face(astronaut_rgb):
    boxes = make_detector("haar").detect(astronaut_rgb)
    assert boxes, "the Haar cascade shipped with OpenCV should find the face in skimage's astronaut"
    x0, y0, x1, y1 = boxes[0]
    # her face is around x 170-260, y 50-170 in the 512x512 photo
    assert 130 < (x0 + x1) / 2 < 280 and 40 < (y0 + y1) / 2 < 190


def test_crop_with_margin_is_square_and_sized(astronaut_rgb):
    res = detect_and_crop(make_detector("haar"), astronaut_rgb, margin=0.2, size=96, no_face="drop")
    assert res.detected and res.crop.shape == (96, 96, 3) and res.num_faces >= 1
    # a 20x40 box with margin 0.5 becomes an 80x80 square around its centre (20, 30)
    assert expand_box((10, 10, 30, 50), 0.5, 100, 100) == (-20, -10, 60, 70)
    # a box leaving the image is padded, not clipped into a non-square crop
    assert crop_resize(astronaut_rgb, (-50, -50, 50, 50), 32).shape == (32, 32, 3)


@pytest.mark.parametrize("policy,kept", [("keep", True), ("drop", False)])
def test_no_face_policy(policy, kept):
    blank = np.full((120, 120, 3), 128, np.uint8)
    res = detect_and_crop(make_detector("haar"), blank, margin=0.2, size=64, no_face=policy)
    assert not res.detected and (res.crop is not None) == kept


def test_whole_frame_detector_keeps_background():
    frame = np.random.default_rng(0).integers(0, 255, (80, 120, 3), dtype=np.uint8)
    res = detect_and_crop(make_detector("none"), frame, margin=0.2, size=64, no_face="drop")
    assert res.crop.shape == (64, 64, 3) and res.box == (0, 0, 120, 80)


def test_detector_errors_name_what_is_missing(tmp_path):
    with pytest.raises(DetectorError, match="unknown face detector"):
        make_detector("mystery")
    with pytest.raises(DetectorError, match="ONNX weights"):
        make_detector("yunet", str(tmp_path / "missing.onnx"))
