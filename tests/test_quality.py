"""Capture-quality warnings and the three-way decision (fas/quality.py), on the astronaut photo and its degradations."""

import cv2
import numpy as np
import pytest

from fas.quality import CODES, QualityConfig, decide, quality_warnings


@pytest.fixture
def detected(astronaut_rgb):
    """The face stage's answer for the astronaut (Haar, as Serve and ``fas predict`` run it by default)."""
    from fas.serve.config import FaceConfig
    from fas.serve.pipeline import FacePipeline

    return FacePipeline(FaceConfig(), {"face"}).face(astronaut_rgb)


def codes(rgb, face, **cfg) -> list[str]:
    return [w["code"] for w in quality_warnings(rgb, face, QualityConfig(**cfg))]


def test_a_sharp_well_lit_centred_face_has_no_warning(astronaut_rgb, detected):
    assert detected["detected"] and detected["num_faces"] == 1
    assert codes(astronaut_rgb, detected) == []


def test_degraded_captures_are_named(astronaut_rgb, detected):
    face = {k: detected[k] for k in ("detected", "box", "num_faces")}
    blurred = cv2.GaussianBlur(astronaut_rgb, (0, 0), 4)
    assert codes(blurred, face) == ["blurred"]
    assert codes((astronaut_rgb * 0.15).astype(np.uint8), face) == ["too_dark"]
    bright = np.clip(astronaut_rgb.astype(int) + 170, 0, 255).astype(np.uint8)
    assert codes(bright, face) == ["too_bright"]
    x0, y0, x1, y1 = face["box"]
    assert codes(astronaut_rgb, {**face, "box": [x0, y0, x0 + 60, y0 + 70]}) == ["face_too_small"]
    assert codes(astronaut_rgb, {**face, "box": [0, y0, x1, y1]}) == ["face_cut_by_border"]
    assert codes(astronaut_rgb, {**face, "num_faces": 3}) == ["several_faces"]
    assert codes(astronaut_rgb, {"detected": False, "box": None, "num_faces": 0}) == ["no_face"]


def test_warnings_come_in_a_fixed_order_with_the_measured_values(astronaut_rgb):
    shifted = astronaut_rgb[:, 177:]  # the face now starts at the left edge
    dark_blurred = (cv2.GaussianBlur(shifted, (0, 0), 4) * 0.3).astype(np.uint8)
    small = {"detected": True, "box": [0, 67, 50, 117], "num_faces": 2}
    warnings = quality_warnings(dark_blurred, small, QualityConfig(min_face_px=64))
    assert [w["code"] for w in warnings] == ["several_faces", "face_too_small", "blurred", "too_dark",
                                             "face_cut_by_border"]
    assert [w["code"] for w in warnings] == [c for c in CODES if c in {w["code"] for w in warnings}]
    assert warnings[1]["detail"] == "the face is 50 px across, under 64 px"


def test_thresholds_come_from_the_config(astronaut_rgb, detected):
    x0, y0, x1, y1 = detected["box"]
    assert codes(astronaut_rgb, detected, min_face_px=min(x1 - x0, y1 - y0) + 1) == ["face_too_small"]
    assert codes(astronaut_rgb, detected, dark_max_mean=254.0, bright_min_mean=255.0) == ["too_dark"]
    assert codes(astronaut_rgb, detected, blur_min_variance=1e9) == ["blurred"]


def test_three_way_decision_with_and_without_a_band():
    assert [decide(s, 0.5) for s in (0.49, 0.5, 0.9)] == ["spoof", "live", "live"]
    band = QualityConfig(uncertain_band=[0.4, 0.6]).uncertain_band
    assert [decide(s, 0.5, band) for s in (0.39, 0.4, 0.5, 0.6, 0.61)] == ["spoof", "uncertain", "uncertain",
                                                                           "uncertain", "live"]


@pytest.mark.parametrize("band", [[0.6, 0.4], [0.5], "wide"])
def test_a_malformed_band_is_refused_by_name(band):
    with pytest.raises(ValueError, match="uncertain_band"):
        QualityConfig(uncertain_band=band)
