"""Seeded, deterministic generated dataset: procedural faces in the CLASS-8 and OULU-NPU layouts.

No real face data or weights can be downloaded where this project is built and tested, so the quickstart and
every test train and evaluate on this generator's output instead. The images are cartoons, but each class carries
the visual cue its real counterpart is known for (halftone print, screen moire, card frame, darkness, ...), the
three "cameras" differ visibly (a domain shift to generalise across), and the faces are drawn so that OpenCV's Haar
cascade finds them (the face stage needs a detection). Same seed -> byte-identical files.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

VERSION = "1"
MARKER = "SYNTHETIC.txt"
CATEGORIES = (
    "a_real",
    "b_id_card",
    "c_face_mask",
    "d_online_verification",
    "e_personal_id",
    "f_recaptured",
    "g_photoshopped",
    "h_dark_environment",
)
DOMAINS = ("synth-cam-a", "synth-cam-b", "synth-cam-c")
SPLITS = ("train", "dev", "test")
IMAGE_SIZE = 128
VIDEO_SIZE = 112
VIDEO_FRAMES = 20
VIDEO_FPS = 10
OULU_SPLIT_DIRS = {"train": "Train_files", "dev": "Dev_files", "test": "Test_files"}
OULU_LABELS = {1: "+1", 2: "-1", 3: "-1", 4: "-2", 5: "-2"}  # File id -> protocol label (real, print, replay).
OULU_P1_SESSIONS = {"train": (1, 2), "dev": (1, 2), "test": (3,)}  # Protocol 1: unseen lighting at test time.


@dataclass(frozen=True)
class SizePreset:
    """How much to generate: images per class per domain per split, subjects per split, OULU recordings."""

    images: dict
    subjects: dict
    oulu: dict  # split -> tuple of (phone, session, user) recordings
    oulu_files: tuple


SIZES = {
    "tiny": SizePreset(
        images={"train": 3, "dev": 3, "test": 3},
        subjects={"train": 3, "dev": 2, "test": 2},
        oulu={"train": ((1, 1, 1),), "dev": ((2, 2, 21),), "test": ((1, 3, 36),)},
        oulu_files=(1, 2, 4),
    ),
    "quickstart": SizePreset(
        images={"train": 40, "dev": 12, "test": 12},
        subjects={"train": 20, "dev": 6, "test": 6},
        oulu={
            "train": ((1, 1, 1), (2, 2, 2), (2, 1, 3), (1, 2, 4)),
            "dev": ((1, 1, 21), (2, 2, 22)),
            "test": ((1, 3, 36), (2, 3, 37)),
        },
        oulu_files=(1, 2, 3, 4, 5),
    ),
}


# ----------------------------------------------------------------------------------------------------------------
# Subjects and the procedural face
# ----------------------------------------------------------------------------------------------------------------

SKIN_TONES = np.array(
    [[0.96, 0.80, 0.69], [0.92, 0.74, 0.60], [0.87, 0.67, 0.52], [0.78, 0.57, 0.42], [0.66, 0.46, 0.33],
     [0.94, 0.78, 0.66], [0.83, 0.62, 0.47]],
    dtype=np.float32,
)
HAIR_COLOURS = np.array(
    [[0.08, 0.06, 0.05], [0.22, 0.14, 0.08], [0.40, 0.26, 0.14], [0.70, 0.55, 0.30], [0.55, 0.25, 0.10],
     [0.55, 0.55, 0.55], [0.12, 0.10, 0.10]],
    dtype=np.float32,
)
FACE_PATCH = 200  # canonical face canvas (pixels); faces are drawn here once, then warped into a scene
FACE_CENTER = (100.0, 108.0)
FACE_HALF_HEIGHT = 60.0


@dataclass(frozen=True)
class Subject:
    """Per-identity look, fixed by (seed, subject number) so a subject looks the same in every class and domain."""

    name: str
    skin: tuple
    hair: tuple
    hair_style: int  # 0 short, 1 long, 2 very short
    width: float  # head half-width / half-height
    eye_spacing: float
    eye_size: float
    brow: float
    mouth_width: float
    lip: tuple
    iris: tuple
    shirt: tuple


def make_subject(seed: int, number: int) -> Subject:
    """Draw one identity from its own seed stream, independent of how many images use it."""
    rng = np.random.default_rng([seed, 7001, number])
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.95, 1.04, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15)
    lip = skin * np.array([0.85, 0.55, 0.55]) * rng.uniform(0.85, 1.0)
    iris = rng.choice([[0.25, 0.15, 0.08], [0.20, 0.35, 0.50], [0.25, 0.35, 0.20], [0.15, 0.10, 0.08]])
    return Subject(
        name=f"s{number:03d}",
        skin=tuple(float(c) for c in np.clip(skin, 0, 1)),
        hair=tuple(float(c) for c in np.clip(hair, 0, 1)),
        hair_style=int(rng.integers(3)),
        width=float(rng.uniform(0.74, 0.84)),
        eye_spacing=float(rng.uniform(0.38, 0.46)),
        eye_size=float(rng.uniform(0.9, 1.15)),
        brow=float(rng.uniform(0.8, 1.3)),
        mouth_width=float(rng.uniform(0.30, 0.40)),
        lip=tuple(float(c) for c in np.clip(lip, 0, 1)),
        iris=tuple(float(c) for c in iris),
        shirt=tuple(float(c) for c in rng.uniform(0.1, 0.8, 3)),
    )


def face_landmarks(subject: Subject) -> dict:
    """Canonical (x, y) positions of the parts, in FACE_PATCH pixels; scenes map them to place manipulations."""
    cx, cy, h = FACE_CENTER[0], FACE_CENTER[1], FACE_HALF_HEIGHT
    w = h * subject.width
    dx = w * subject.eye_spacing * 1.05
    return {
        "left_eye": (cx - dx, cy - 0.08 * h),
        "right_eye": (cx + dx, cy - 0.08 * h),
        "nose": (cx, cy + 0.28 * h),
        "mouth": (cx, cy + 0.55 * h),
        "center": (cx, cy),
    }


def _c(colour) -> tuple:
    """OpenCV drawing wants plain Python floats, not numpy scalars."""
    return tuple(float(v) for v in colour)


def _ellipse(img, center, axes, colour, angle=0.0):
    c = (int(round(center[0] * 16)), int(round(center[1] * 16)))
    a = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    cv2.ellipse(img, c, a, angle, 0, 360, _c(colour) if not np.isscalar(colour) else float(colour), -1, cv2.LINE_AA, 4)


def _gauss_blob(shape, center, sigma_x, sigma_y) -> np.ndarray:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return np.exp(-(((xs - center[0]) / sigma_x) ** 2 + ((ys - center[1]) / sigma_y) ** 2) / 2)


def render_face(subject: Subject, rng: np.random.Generator, dark_hair: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Draw the subject's head on the canonical canvas; returns (rgb float32, alpha float32).

    Haar features look for dark eye regions above brighter cheeks, a bright nose bridge and a darker mouth, so the
    drawing stresses exactly those: shaded eye sockets, strong brows, a lit bridge and a dark mouth line.
    """
    p = FACE_PATCH
    rgb = np.zeros((p, p, 3), np.float32)
    alpha = np.zeros((p, p), np.float32)
    cx, cy, h = FACE_CENTER[0], FACE_CENTER[1], FACE_HALF_HEIGHT
    w = h * subject.width
    hair = (0.07, 0.05, 0.04) if dark_hair else subject.hair
    skin = np.array(subject.skin, np.float32)
    _draw_hair_back(rgb, alpha, subject, hair, cx, cy, w, h)
    # neck and ears, then the head
    cv2.rectangle(rgb, (int(cx - 0.45 * w), int(cy + 0.5 * h)), (int(cx + 0.45 * w), p), _c(skin * 0.8), -1)
    cv2.rectangle(alpha, (int(cx - 0.45 * w), int(cy + 0.5 * h)), (int(cx + 0.45 * w), p), 1.0, -1)
    for sx in (-1, 1):
        _ellipse(rgb, (cx + sx * w * 0.98, cy), (0.14 * h, 0.22 * h), _c(skin * 0.85))
        _ellipse(alpha, (cx + sx * w * 0.98, cy), (0.14 * h, 0.22 * h), 1.0)
    head = np.zeros((p, p), np.float32)
    _ellipse(head, (cx, cy), (w, h), 1.0)
    ys, xs = np.mgrid[0:p, 0:p].astype(np.float32)
    r2 = ((xs - cx) / w) ** 2 + ((ys - cy) / h) ** 2
    shade = np.clip(1.08 - 0.35 * r2**2, 0.55, 1.1)
    rgb[:] = rgb * (1 - head[..., None]) + (skin * shade[..., None]) * head[..., None]
    alpha[:] = np.maximum(alpha, head)
    _draw_features(rgb, subject, rng, cx, cy, w, h)
    _draw_fringe(rgb, head, subject, hair, rng, cx, cy, w, h)
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.9)
    alpha = cv2.GaussianBlur(alpha, (0, 0), 0.9)
    return np.clip(rgb, 0, 1), np.clip(alpha, 0, 1)


def _draw_hair_back(rgb, alpha, subject, hair, cx, cy, w, h):
    """Hair behind the head (drawn first): widens the silhouette and frames the face with a dark outline."""
    if subject.hair_style == 1:  # long hair falls behind the shoulders
        cv2.rectangle(rgb, (int(cx - 1.2 * w), int(cy - 0.3 * h)), (int(cx + 1.2 * w), int(cy + 1.3 * h)), _c(hair), -1)
        cv2.rectangle(alpha, (int(cx - 1.2 * w), int(cy - 0.3 * h)), (int(cx + 1.2 * w), int(cy + 1.3 * h)), 1.0, -1)
    grow = 1.14 if subject.hair_style != 2 else 1.05
    _ellipse(rgb, (cx, cy - 0.14 * h), (w * grow, h * 0.98), hair)
    _ellipse(alpha, (cx, cy - 0.14 * h), (w * grow, h * 0.98), 1.0)


def _draw_fringe(rgb, head, subject, hair, rng, cx, cy, w, h):
    """Hair over the forehead, clipped to the head, so the face's top edge is hair, not skin."""
    p = FACE_PATCH
    fringe = np.zeros((p, p), np.float32)
    depth = 0.42 if subject.hair_style != 2 else 0.55
    _ellipse(fringe, (cx + rng.uniform(-0.1, 0.1) * w, cy - 1.0 * h), (w * 1.2, h * (1 - depth) + 6), 1.0)
    fringe *= head
    rgb[:] = rgb * (1 - fringe[..., None]) + np.array(hair, np.float32) * fringe[..., None]


def _draw_features(rgb, subject, rng, cx, cy, w, h):
    """Eye sockets, brows, eyes, nose and mouth, with small per-image variation (gaze, mouth opening)."""
    p = FACE_PATCH
    skin = np.array(subject.skin, np.float32)
    eye_y = cy - 0.08 * h
    dx = w * subject.eye_spacing * 1.05
    es = subject.eye_size
    # shading: darker sockets, brighter bridge and cheeks
    sock = sum(_gauss_blob((p, p), (cx + s * dx, eye_y - 0.03 * h), 0.2 * w, 0.12 * h) for s in (-1, 1))
    bridge = _gauss_blob((p, p), (cx, cy + 0.08 * h), 0.07 * w, 0.28 * h)
    cheeks = sum(_gauss_blob((p, p), (cx + s * dx, cy + 0.3 * h), 0.22 * w, 0.14 * h) for s in (-1, 1))
    rgb *= (1 - 0.38 * sock + 0.16 * bridge + 0.10 * cheeks)[..., None]
    gaze = rng.uniform(-0.04, 0.04) * w
    for s in (-1, 1):
        ex = cx + s * dx
        brow_c = (int(ex * 16), int((eye_y - 0.2 * h) * 16))
        cv2.ellipse(rgb, brow_c, (int(0.2 * w * 16), int(0.07 * h * 16)), 0, 200, 340,
                    _c(np.array(subject.hair) * 0.6), max(2, int(3.0 * subject.brow)), cv2.LINE_AA, 4)
        _ellipse(rgb, (ex, eye_y), (0.15 * w * es, 0.065 * h * es), (0.9, 0.88, 0.85))
        _ellipse(rgb, (ex + gaze, eye_y), (0.065 * h * es, 0.065 * h * es), subject.iris)
        _ellipse(rgb, (ex + gaze, eye_y), (0.03 * h * es, 0.03 * h * es), (0.02, 0.02, 0.02))
        cv2.ellipse(rgb, (int(ex * 16), int(eye_y * 16)), (int(0.16 * w * es * 16), int(0.075 * h * es * 16)), 0,
                    180, 360, (0.12, 0.08, 0.07), 2, cv2.LINE_AA, 4)
    # nose: shaded sides and nostrils under a lit bridge
    ny = cy + 0.28 * h
    for s in (-1, 1):
        _ellipse(rgb, (cx + s * 0.1 * w, ny), (0.05 * w, 0.03 * h), _c(skin * 0.45))
        cv2.line(rgb, (int((cx + s * 0.09 * w) * 16), int((eye_y + 0.1 * h) * 16)),
                 (int((cx + s * 0.13 * w) * 16), int((ny - 0.04 * h) * 16)), _c(skin * 0.78), 2, cv2.LINE_AA, 4)
    # mouth
    my = cy + 0.55 * h
    mw = subject.mouth_width * w * 1.3
    opening = rng.uniform(0.02, 0.07) * h
    _ellipse(rgb, (cx, my), (mw, opening + 0.05 * h), subject.lip)
    _ellipse(rgb, (cx, my), (mw * 0.85, opening * 0.7 + 0.01 * h), (0.18, 0.06, 0.06))


def warp_face(rgb, alpha, out_hw, center, face_height, angle_deg):
    """Place the canonical face at ``center`` (x, y) with head height ``face_height`` px, rotated by ``angle_deg``."""
    scale = face_height / (2 * FACE_HALF_HEIGHT)
    m = cv2.getRotationMatrix2D(FACE_CENTER, angle_deg, scale)
    m[0, 2] += center[0] - FACE_CENTER[0]
    m[1, 2] += center[1] - FACE_CENTER[1]
    size = (out_hw[1], out_hw[0])
    frgb = cv2.warpAffine(rgb, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    falpha = cv2.warpAffine(alpha, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return frgb, falpha, m


def map_point(m: np.ndarray, pt) -> tuple[float, float]:
    return float(m[0, 0] * pt[0] + m[0, 1] * pt[1] + m[0, 2]), float(m[1, 0] * pt[0] + m[1, 1] * pt[1] + m[1, 2])


# ----------------------------------------------------------------------------------------------------------------
# Scenes
# ----------------------------------------------------------------------------------------------------------------


def gradient(hw, top, bottom, horizontal: float = 0.0) -> np.ndarray:
    """A vertical two-colour gradient (optionally tilted) - the base of every background."""
    h, w = hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.clip(ys / max(h - 1, 1) + horizontal * (xs / max(w - 1, 1) - 0.5), 0, 1)[..., None]
    return np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t


def natural_background(rng: np.random.Generator, hw) -> np.ndarray:
    """A room: a muted gradient with a few out-of-focus objects (shelves, a window, a lamp)."""
    base = rng.uniform(0.25, 0.75, 3)
    img = gradient(hw, base * rng.uniform(0.9, 1.2, 3), base * rng.uniform(0.6, 0.95, 3), rng.uniform(-0.5, 0.5))
    h, w = hw
    for _ in range(int(rng.integers(2, 6))):
        colour = tuple(float(c) for c in rng.uniform(0.1, 0.95, 3))
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(w // 8, w // 2)), y0 + int(rng.integers(h // 8, h // 2))
        if rng.random() < 0.6:
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        else:
            cv2.circle(img, (x0, y0), int(rng.integers(w // 16, w // 5)), colour, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(1.5, 3.0) * w / 128)


def draw_shoulders(img, center_x, neck_y, width, colour, suit: bool = False) -> None:
    """Shoulders below the face; ``suit`` adds a white shirt V and a tie, as in formal ID photos."""
    h = img.shape[0]
    _ellipse(img, (center_x, neck_y + width * 0.55), (width, width * 0.6), colour)
    cv2.rectangle(img, (int(center_x - width), int(neck_y + width * 0.55)), (int(center_x + width), h), colour, -1)
    if suit:
        v = np.array([[center_x - width * 0.28, neck_y], [center_x + width * 0.28, neck_y],
                      [center_x, neck_y + width * 0.7]], np.int32)
        cv2.fillConvexPoly(img, v, (0.95, 0.95, 0.95), cv2.LINE_AA)
        tie_y = neck_y + width * 0.6
        tie = np.array([[center_x - width * 0.05, neck_y + 2], [center_x + width * 0.05, neck_y + 2],
                        [center_x + width * 0.07, tie_y], [center_x - width * 0.07, tie_y]], np.int32)
        cv2.fillConvexPoly(img, tie, (0.5, 0.08, 0.1), cv2.LINE_AA)


@dataclass
class Pose:
    """Where and how big the face is in a scene; per-image jitter makes every image different."""

    cx: float
    cy: float
    height: float
    angle: float


def jitter_pose(rng: np.random.Generator, size: int, scale: float = 1.0, shift: float = 0.05, rot: float = 7.0):
    return Pose(
        cx=size / 2 + rng.uniform(-shift, shift) * size,
        cy=size * 0.47 + rng.uniform(-shift, shift) * size,
        height=size * 0.56 * scale * rng.uniform(0.92, 1.08),
        angle=rng.uniform(-rot, rot),
    )


def portrait(rng, subject, background, pose: Pose, suit: bool = False, dark_hair: bool = False, shirt=None):
    """Composite shoulders and the subject's face over ``background``; returns (image, affine of the face)."""
    img = background.copy()
    frgb, falpha, m = warp_face(*render_face(subject, rng, dark_hair), img.shape[:2], (pose.cx, pose.cy),
                                pose.height, pose.angle)
    neck_y = pose.cy + pose.height * 0.42
    colour = shirt if shirt is not None else ((0.08, 0.09, 0.13) if suit else subject.shirt)
    draw_shoulders(img, pose.cx, neck_y, pose.height * 0.75, colour, suit)
    img = img * (1 - falpha[..., None]) + frgb * falpha[..., None]
    return img, m


def directional_light(rng, img, strength: float = 0.25) -> np.ndarray:
    """Key light from one side: a soft left-right (and a bit top-bottom) brightness ramp."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(a) * (xs / w - 0.5) + np.sin(a) * (ys / h - 0.5)) * strength * 2
    return img * (1 + ramp)[..., None]


# ----------------------------------------------------------------------------------------------------------------
# Presentation-attack cues
# ----------------------------------------------------------------------------------------------------------------


def halftone(img, rng, period: float, strength: float) -> np.ndarray:
    """Printer screening: a rotated dot grid per ink channel, which is what a camera sees on a printed photo."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    out = img.copy()
    for ch, base in enumerate((15.0, 75.0, 0.0)):
        a = np.deg2rad(base + rng.uniform(-5, 5))
        u = (xs * np.cos(a) + ys * np.sin(a)) * 2 * np.pi / period
        v = (-xs * np.sin(a) + ys * np.cos(a)) * 2 * np.pi / period
        dots = np.cos(u) * np.cos(v)  # +1 at dot centres
        ink = 1 - out[..., ch]
        out[..., ch] = 1 - ink * (1 + strength * dots)
    return out


def paper_texture(rng, hw, strength: float) -> np.ndarray:
    """Fibrous paper: fine noise stretched along one direction plus a little low-frequency mottling."""
    h, w = hw
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), sigmaX=1.6, sigmaY=0.4)
    coarse = cv2.resize(rng.normal(0, 1, (h // 16 + 1, w // 16 + 1)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    return 1 + strength * (0.7 * fine + 0.3 * coarse)


def moire(hw, period: float, angle: float, dangle: float, ratio: float, strength: float, phase: float = 0.0):
    """Screen recapture: the display's pixel grid beating against the sensor's, as two close gratings."""
    h, w = hw
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a2 = angle + dangle
    g1 = np.cos((xs * np.cos(angle) + ys * np.sin(angle)) * 2 * np.pi / period + phase)
    g2 = np.cos((xs * np.cos(a2) + ys * np.sin(a2)) * 2 * np.pi / (period * ratio))
    pattern = 0.5 * (g1 + g2) + 0.5 * g1 * g2  # fine lines plus their low-frequency beat
    return 1 + strength * pattern


def subpixel_grid(hw, pitch: int) -> np.ndarray:
    """The RGB stripe of an LCD, visible when a camera films a screen up close."""
    h, w = hw
    xs = np.arange(w)
    grid = np.ones((h, w, 3), np.float32)
    for ch in range(3):
        grid[:, (xs // max(pitch // 3, 1)) % 3 != ch, ch] = 0.82
    return grid


def hand_blob(img, rng, side: str | None = None) -> None:
    """Fingers holding the print or phone: a skin-coloured blob entering from one edge."""
    h, w = img.shape[:2]
    side = side or str(rng.choice(["left", "right", "bottom"]))
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * 0.9
    for k in range(int(rng.integers(1, 4))):
        t = rng.uniform(0.45, 0.9)
        if side == "left":
            c, axes = (0, t * h + k * 0.08 * h), (0.12 * w, 0.05 * h)
        elif side == "right":
            c, axes = (w, t * h + k * 0.08 * h), (0.12 * w, 0.05 * h)
        else:
            c, axes = (t * w - k * 0.09 * w, h), (0.045 * w, 0.14 * h)
        _ellipse(img, c, axes, _c(skin * rng.uniform(0.9, 1.05)), rng.uniform(-20, 20))


def quad_corners(rng, hw, inset: float, rot: float, persp: float) -> np.ndarray:
    """Corners of a sheet (print or screen) filling most of the frame, slightly rotated and tilted."""
    h, w = hw
    margin = inset * np.array([w, h], np.float32)
    dst = np.float32([[0, 0], [w, 0], [w, h], [0, h]]) + margin * np.float32([[1, 1], [-1, 1], [-1, -1], [1, -1]])
    dst += rng.uniform(-persp, persp, (4, 2)).astype(np.float32) * w
    dst = rotate_points(dst, rng.uniform(-rot, rot))
    return dst + rng.uniform(-0.03, 0.03, 2).astype(np.float32) * w


def rotate_points(pts: np.ndarray, angle_deg: float) -> np.ndarray:
    centre = pts.mean(0)
    a = np.deg2rad(angle_deg)
    r = np.float32([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return ((pts - centre) @ r.T + centre).astype(np.float32)


def paste_quad(content, background, dst: np.ndarray):
    """Warp ``content`` onto the quad ``dst`` over ``background`` with a soft shadow; returns (image, mask)."""
    h, w = background.shape[:2]
    ch, cw = content.shape[:2]
    src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(content, m, (w, h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((ch, cw), np.float32), m, (w, h), flags=cv2.INTER_LINEAR)
    shadow = cv2.GaussianBlur(mask, (0, 0), 2.0 * w / 128)[..., None]
    mask = mask[..., None]
    return background * (1 - 0.35 * shadow) * (1 - mask) + warped * mask, mask


def place_quad(content, background, rng, inset: float, rot: float, persp: float):
    return paste_quad(content, background, quad_corners(rng, background.shape[:2], inset, rot, persp))


# ----------------------------------------------------------------------------------------------------------------
# The eight CLASS-8 categories: each returns a float RGB image in [0, 1] (before the camera look)
# ----------------------------------------------------------------------------------------------------------------


def real_scene(rng, subject, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A bona fide selfie: room background, natural key light. Returns (image, face affine)."""
    img, m = portrait(rng, subject, natural_background(rng, (size, size)), jitter_pose(rng, size))
    return directional_light(rng, img, rng.uniform(0.08, 0.2)), m


def cat_real(rng, subject, size):
    return real_scene(rng, subject, size)[0]


def table_background(rng, hw) -> np.ndarray:
    """A desk or hand-held backdrop behind prints and cards: a plain tone with wood-like streaks."""
    base = rng.uniform(0.3, 0.7, 3)
    img = gradient(hw, base, base * rng.uniform(0.7, 0.95), rng.uniform(-0.6, 0.6))
    streaks = cv2.GaussianBlur(rng.normal(0, 1, hw).astype(np.float32), (0, 0), sigmaX=6, sigmaY=0.7)
    return img * (1 + 0.25 * streaks)[..., None]


def cat_id_card(rng, subject, size):
    """An identity card held to the camera: small photo, rounded card, text lines and an ID-number row."""
    cw, chh = 2 * size, int(2 * size * 0.63)
    card = np.ones((chh, cw, 3), np.float32) * np.array(rng.uniform(0.8, 0.97, 3), np.float32)
    band = tuple(float(c) for c in rng.uniform(0.1, 0.6, 3))
    cv2.rectangle(card, (0, 0), (cw, int(chh * 0.18)), band, -1)
    cv2.putText(card, str(rng.choice(["IDENTITY CARD", "PERSONAUSWEIS", "CARTE D'IDENTITE", "ID CARD"])),
                (int(cw * 0.05), int(chh * 0.13)), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * size / 128, (1, 1, 1), 1,
                cv2.LINE_AA)
    ph, pw = int(chh * 0.62), int(cw * 0.3)
    photo_bg = np.ones((ph, pw, 3), np.float32) * np.array(rng.uniform(0.75, 0.95, 3), np.float32)
    photo, _ = portrait(rng, subject, photo_bg, Pose(pw / 2, ph * 0.45, ph * 0.62, rng.uniform(-2, 2)))
    y0, x0 = int(chh * 0.25), int(cw * 0.05)
    card[y0 : y0 + ph, x0 : x0 + pw] = photo
    for k in range(4):
        y = int(chh * (0.32 + 0.11 * k))
        x1 = int(cw * rng.uniform(0.6, 0.93))
        cv2.line(card, (int(cw * 0.42), y), (x1, y), (0.25, 0.25, 0.3), max(2, size // 64), cv2.LINE_AA)
    number = "".join(str(d) for d in rng.integers(0, 10, 9))
    cv2.putText(card, f"ID {number}", (int(cw * 0.42), int(chh * 0.86)), cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * size / 128, (0.1, 0.1, 0.15), 1, cv2.LINE_AA)
    rounded = _rounded_mask(card.shape[:2], int(chh * 0.08))
    small_hw = (int(size * 0.63), size)
    card = cv2.resize(card * rounded[..., None], (small_hw[1], small_hw[0]), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    top = (size - small_hw[0]) // 2
    canvas[top : top + small_hw[0]] = card
    alpha[top : top + small_hw[0]] = cv2.resize(rounded, (small_hw[1], small_hw[0]), interpolation=cv2.INTER_AREA)
    return _place_with_alpha(canvas, alpha, table_background(rng, (size, size)), rng, rot=12)


def _rounded_mask(hw, radius: int) -> np.ndarray:
    h, w = hw
    mask = np.zeros((h, w), np.float32)
    cv2.rectangle(mask, (radius, 0), (w - radius - 1, h - 1), 1.0, -1)
    cv2.rectangle(mask, (0, radius), (w - 1, h - radius - 1), 1.0, -1)
    for x in (radius, w - radius - 1):
        for y in (radius, h - radius - 1):
            cv2.circle(mask, (x, y), radius, 1.0, -1, cv2.LINE_AA)
    return mask


def _place_with_alpha(content, alpha, background, rng, rot: float) -> np.ndarray:
    """Rotate/shift a cut-out object (card) over a background, with a soft drop shadow."""
    h, w = background.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-rot, rot), rng.uniform(0.9, 1.05))
    m[:, 2] += rng.uniform(-0.05, 0.05, 2) * w
    c = cv2.warpAffine(content, m, (w, h))
    a = cv2.warpAffine(alpha, m, (w, h))
    shadow = cv2.GaussianBlur(np.roll(a, (2, 2), (0, 1)), (0, 0), 2.0)[..., None]
    out = background * (1 - 0.4 * shadow)
    return out * (1 - a[..., None]) + c * a[..., None]


def printed(img, rng, period: float, strength: float) -> np.ndarray:
    """What printing does to a photo: lower contrast and saturation, halftone dots, paper fibres."""
    grey = img.mean(-1, keepdims=True)
    img = grey + (img - grey) * rng.uniform(0.6, 0.85)
    img = 0.12 + img * rng.uniform(0.65, 0.8)
    img = halftone(np.clip(img, 0, 1), rng, period, strength)
    return img * paper_texture(rng, img.shape[:2], 0.05)[..., None]


def cat_face_mask(rng, subject, size):
    """A printed face photo (paper mask) held in front of the camera, its edge and a hand visible."""
    photo, _ = real_scene(rng, subject, size)
    paper = printed(photo, rng, rng.uniform(4.0, 5.5), rng.uniform(0.35, 0.55))
    img, _ = place_quad(paper, natural_background(rng, (size, size)), rng, rng.uniform(0.04, 0.1), 8, 0.03)
    if rng.random() < 0.7:
        hand_blob(img, rng)
    return img


def cat_online_verification(rng, subject, size):
    """A KYC-style capture: plain white wall, centred face, dark hair, flat frontal lighting."""
    bg = np.ones((size, size, 3), np.float32) * rng.uniform(0.92, 1.0)
    img, _ = portrait(rng, subject, bg, jitter_pose(rng, size, 1.05, 0.015, 2.0), dark_hair=True)
    return img


ID_BACKGROUNDS = ((0.97, 0.97, 0.97), (0.25, 0.5, 0.85), (0.8, 0.15, 0.15))


def cat_personal_id(rng, subject, size):
    """A formal ID photo: solid white/blue/red backdrop, dark suit shoulders, white shirt."""
    colour = np.array(ID_BACKGROUNDS[rng.integers(len(ID_BACKGROUNDS))], np.float32) * rng.uniform(0.95, 1.02)
    bg = np.ones((size, size, 3), np.float32) * colour
    pose = jitter_pose(rng, size, 0.88, 0.015, 2.0)
    pose.cy -= 0.04 * size
    img, _ = portrait(rng, subject, bg, pose, suit=True)
    return img


DISPLAY_CASTS = ((0.9, 0.95, 1.12), (0.92, 1.08, 0.95), (1.05, 0.95, 1.1))


def random_display(rng, size: int) -> dict:
    """One phone/monitor: colour cast, gamma, bezel and the moire it produces on this camera."""
    return dict(
        cast=np.array(DISPLAY_CASTS[rng.integers(len(DISPLAY_CASTS))], np.float32),
        gamma=rng.uniform(0.8, 0.95),
        gain=rng.uniform(0.9, 1.1),
        bezel=int(size * rng.uniform(0.06, 0.12)),
        bezel_tone=rng.uniform(0.02, 0.18),
        moire=(rng.uniform(3.2, 4.5), rng.uniform(0, np.pi), rng.uniform(0.06, 0.2), rng.uniform(1.04, 1.12),
               rng.uniform(0.12, 0.22)),
        glare_at=rng.uniform(0, size, 2),
        glare=rng.uniform(0.05, 0.2),
    )


def screen_shot(content, background, dst, disp: dict, phase: float = 0.0, flicker: float = 1.0) -> np.ndarray:
    """Film ``content`` shown on the display ``disp`` whose screen sits at quad ``dst`` over ``background``."""
    size = background.shape[0]
    screen = np.clip((content * disp["cast"]) ** disp["gamma"] * disp["gain"] * flicker, 0, 1)
    b = disp["bezel"]
    device = np.ones((size, size, 3), np.float32) * disp["bezel_tone"]
    device[b : size - b, b : size - b] = cv2.resize(screen, (size - 2 * b, size - 2 * b), interpolation=cv2.INTER_AREA)
    img, mask = paste_quad(device, background, dst)
    pattern = moire(background.shape[:2], *disp["moire"], phase=phase)[..., None]
    img = img * (1 - mask) + img * mask * pattern * subpixel_grid(background.shape[:2], 3)
    glare = _gauss_blob(background.shape[:2], disp["glare_at"], size * 0.25, size * 0.35)[..., None]
    return img + mask * glare * disp["glare"]


def cat_recaptured(rng, subject, size):
    """A photo of a screen: bezel, moire, RGB sub-pixels, a colour cast and glare, sometimes a hand."""
    photo, _ = real_scene(rng, subject, size)
    dst = quad_corners(rng, (size, size), rng.uniform(0.02, 0.06), 6, 0.03)
    img = screen_shot(photo, natural_background(rng, (size, size)), dst, random_display(rng, size))
    if rng.random() < 0.5:
        hand_blob(img, rng)
    return img


def cat_photoshopped(rng, subject, size):
    """A real-looking selfie with one region edited: pasted, blurred, recoloured or warped, with a seam."""
    img, m = real_scene(rng, subject, size)
    marks = face_landmarks(subject)
    part = str(rng.choice(["left_eye", "right_eye", "mouth", "nose"]))
    cx, cy = map_point(m, marks[part])
    half = int(size * rng.uniform(0.08, 0.13))
    x0, y0 = int(np.clip(cx - half, 0, size - 2 * half)), int(np.clip(cy - half * 0.8, 0, size - 2 * half))
    x1, y1 = x0 + 2 * half, y0 + int(1.6 * half)
    patch = img[y0:y1, x0:x1]
    kind = int(rng.integers(4))
    if kind == 0:  # paste the same part from someone else, colour-mismatched
        donor = make_subject(int(rng.integers(1 << 30)), int(rng.integers(1000)))
        other, m2 = portrait(rng, donor, img.copy(), Pose(*_pose_from_affine(m, size)))
        patch = other[y0:y1, x0:x1] * rng.uniform(0.8, 1.25, 3)
    elif kind == 1:  # smudge / blur tool
        patch = cv2.GaussianBlur(patch, (0, 0), rng.uniform(2.0, 3.5))
    elif kind == 2:  # recolour
        patch = patch * rng.uniform(0.7, 1.35, 3)
    else:  # liquify: stretch the region
        patch = cv2.resize(patch[half // 3 : -(half // 3) or None, half // 3 : -(half // 3) or None],
                           (patch.shape[1], patch.shape[0]), interpolation=cv2.INTER_LINEAR) * rng.uniform(0.9, 1.15)
    out = img.copy()
    out[y0:y1, x0:x1] = patch
    return out


def _pose_from_affine(m, size) -> tuple:
    """Recover (cx, cy, height, angle) of a placed face, to draw a donor face in exactly the same place."""
    scale = math.hypot(m[0, 0], m[1, 0])
    angle = math.degrees(math.atan2(-m[1, 0], m[0, 0]))
    cx, cy = map_point(m, FACE_CENTER)
    return cx, cy, scale * 2 * FACE_HALF_HEIGHT, angle


def cat_dark(rng, subject, size):
    """Captured in a dark room: almost black, low contrast, heavy sensor noise, a faint tint."""
    img, _ = real_scene(rng, subject, size)
    img = img * rng.uniform(0.04, 0.1) + rng.uniform(0.0, 0.02)
    img = img * np.array(rng.uniform(0.85, 1.15, 3), np.float32)
    return img + rng.normal(0, rng.uniform(0.01, 0.025), img.shape).astype(np.float32)


CATEGORY_FUNCS = {
    "a_real": cat_real,
    "b_id_card": cat_id_card,
    "c_face_mask": cat_face_mask,
    "d_online_verification": cat_online_verification,
    "e_personal_id": cat_personal_id,
    "f_recaptured": cat_recaptured,
    "g_photoshopped": cat_photoshopped,
    "h_dark_environment": cat_dark,
}


# ----------------------------------------------------------------------------------------------------------------
# Cameras (domains): applied last to every image of a domain
# ----------------------------------------------------------------------------------------------------------------

CAMERAS = {
    # white balance gains, brightness, contrast, noise sigma, blur sigma, JPEG quality (0 = none), sharpen
    "synth-cam-a": dict(wb=(1.08, 1.0, 0.86), gain=1.0, contrast=1.05, noise=0.008, blur=0.0, jpeg=0, sharpen=0.5),
    "synth-cam-b": dict(wb=(0.86, 0.98, 1.14), gain=0.86, contrast=1.0, noise=0.035, blur=0.0, jpeg=0, sharpen=0.0),
    "synth-cam-c": dict(wb=(0.95, 1.07, 0.94), gain=1.08, contrast=0.85, noise=0.01, blur=0.8, jpeg=35, sharpen=0.0),
}


def apply_camera(img: np.ndarray, camera: dict, rng: np.random.Generator, jitter: bool = True) -> np.ndarray:
    """The sensor and ISP look of one camera: white balance, exposure, contrast, blur/sharpening, noise, JPEG.

    ``jitter`` varies white balance and exposure a little per image; videos turn it off (it would flicker).
    """
    wb = np.array(camera["wb"], np.float32) * (rng.uniform(0.97, 1.03, 3).astype(np.float32) if jitter else 1)
    img = img * wb
    img = (img - 0.3) * camera["contrast"] + 0.3 if camera["contrast"] != 1.0 else img
    img = img * camera["gain"] * (rng.uniform(0.95, 1.05) if jitter else 1.0)
    if camera["blur"]:
        img = cv2.GaussianBlur(img, (0, 0), camera["blur"])
    if camera["sharpen"]:
        img = img + camera["sharpen"] * (img - cv2.GaussianBlur(img, (0, 0), 1.0))
    if camera["noise"]:
        lum = rng.normal(0, camera["noise"], img.shape[:2] + (1,))
        chroma = rng.normal(0, camera["noise"] * 0.4, img.shape)
        img = img + (lum + chroma).astype(np.float32)
    out = to_uint8(img)
    if camera["jpeg"]:
        _, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, camera["jpeg"]])
        out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# OULU-NPU-style videos
# ----------------------------------------------------------------------------------------------------------------

SESSIONS = {  # lighting: overall gain, colour cast, strength of a side light
    1: dict(gain=1.0, cast=(1.0, 1.0, 1.0), side=0.08),
    2: dict(gain=0.72, cast=(1.1, 1.0, 0.84), side=0.2),
    3: dict(gain=1.02, cast=(0.9, 1.0, 1.12), side=0.3),
}
PHONES = {  # sensor look, same keys as CAMERAS
    1: dict(wb=(1.02, 1.0, 0.97), gain=1.0, contrast=1.05, noise=0.01, blur=0.0, jpeg=0, sharpen=0.4),
    2: dict(wb=(0.97, 1.02, 1.04), gain=0.95, contrast=0.95, noise=0.03, blur=0.7, jpeg=0, sharpen=0.0),
}


@dataclass(frozen=True)
class Recording:
    """One OULU (phone, session, user) recording condition; its five files share subject, room and light."""

    split: str
    phone: int
    session: int
    user: int

    def name(self, file_id: int) -> str:
        return f"{self.phone}_{self.session}_{self.user:02d}_{file_id}"


def oulu_subject(seed: int, user: int) -> Subject:
    return make_subject(seed, 500 + user)  # a separate identity pool from the CLASS-8 subjects


def real_frames(rng, subject, background, n: int, size: int) -> list[np.ndarray]:
    """A live face: smooth sway, nodding and a slow zoom, expression changing every few frames."""
    base = jitter_pose(rng, size, 1.0, 0.03, 4.0)
    ph = rng.uniform(0, 2 * np.pi, 4)
    seeds = rng.integers(1 << 31, size=n // 5 + 1)
    frames = []
    for t in range(n):
        pose = Pose(
            cx=base.cx + 0.03 * size * math.sin(0.5 * t + ph[0]),
            cy=base.cy + 0.015 * size * math.sin(0.7 * t + ph[1]),
            height=base.height * (1 + 0.03 * math.sin(0.3 * t + ph[2])),
            angle=base.angle + 3.0 * math.sin(0.4 * t + ph[3]),
        )
        img, _ = portrait(np.random.default_rng(seeds[t // 5]), subject, background, pose)
        frames.append(img)
    return frames


def shake(rng, n: int, amount: float) -> np.ndarray:
    """Hand tremor as a smoothed random walk: (dx, dy, angle) per frame for a rigidly held print or phone."""
    steps = rng.normal(0, 1, (n, 3)) * np.array([amount, amount, amount * 0.6])
    walk = np.cumsum(steps, 0)
    return walk - walk.mean(0)


def moved(dst: np.ndarray, motion) -> np.ndarray:
    return rotate_points(dst, float(motion[2])) + np.float32(motion[:2])


def print_frames(rng, subject, background, n: int, size: int, file_id: int) -> list[np.ndarray]:
    """Print attack: one printed photo (printer 1 fine, printer 2 coarse halftone) shaken rigidly by a hand."""
    photo, _ = real_scene(rng, subject, size)
    period, strength = (3.8, 0.4) if file_id == 2 else (5.2, 0.55)
    paper = printed(photo, rng, period, strength)
    dst = quad_corners(rng, (size, size), rng.uniform(0.05, 0.1), 5, 0.02)
    frames = []
    for motion in shake(rng, n, 0.5):
        img, _ = paste_quad(paper, background, moved(dst, motion))
        frames.append(img)
    return frames


def replay_frames(rng, subject, background, n: int, size: int) -> list[np.ndarray]:
    """Replay attack: a recorded live video played on a screen (moire, bezel, flicker) held by a hand."""
    content = real_frames(rng, subject, natural_background(rng, (size, size)), n, size)
    disp = random_display(rng, size)
    dst = quad_corners(rng, (size, size), rng.uniform(0.02, 0.05), 4, 0.02)
    rate, depth = rng.uniform(0.8, 1.6), rng.uniform(0.06, 0.12)
    frames = []
    for t, motion in enumerate(shake(rng, n, 0.4)):
        flicker = 1 + depth * math.sin(rate * t)
        frames.append(screen_shot(content[t], background, moved(dst, motion), disp, phase=0.9 * t, flicker=flicker))
    return frames


def light_session(frames, session: int, rng) -> list[np.ndarray]:
    """The session's room light on every frame: exposure, colour cast and a fixed side light."""
    cfg = SESSIONS[session]
    h, w = frames[0].shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    ramp = 1 + 2 * cfg["side"] * (np.cos(a) * (xs / w - 0.5) + np.sin(a) * (ys / h - 0.5))
    gain = (np.array(cfg["cast"], np.float32) * cfg["gain"])[None, None] * ramp[..., None]
    return [f * gain for f in frames]


def make_video(seed: int, rec: Recording, file_id: int, size: int = VIDEO_SIZE, n: int = VIDEO_FRAMES):
    """All frames (uint8 RGB) of one OULU file: content by file id, then session light, then phone look."""
    subject = oulu_subject(seed, rec.user)
    room = natural_background(np.random.default_rng([seed, 9001, rec.user, rec.session]), (size, size))
    rng = np.random.default_rng([seed, 9002, rec.phone, rec.session, rec.user, file_id])
    if file_id == 1:
        frames = real_frames(rng, subject, room, n, size)
    elif file_id in (2, 3):
        frames = print_frames(rng, subject, room, n, size, file_id)
    else:
        frames = replay_frames(rng, subject, room, n, size)
    frames = light_session(frames, rec.session, rng)
    return [apply_camera(f, PHONES[rec.phone], rng, jitter=False) for f in frames]


def write_video(path: Path, frames, fps: int = VIDEO_FPS, container: str = "avi") -> None:
    """MPEG-4 part 2 in AVI (or ``container``, e.g. "mov"), one thread and bit-exact flags, so the same frames give
    the same bytes."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format=container, options={"fflags": "+bitexact"}) as box:
        stream = box.add_stream("mpeg4", rate=fps, options={"flags": "+bitexact"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.bit_rate = 800_000
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                box.mux(packet)
        for packet in stream.encode():
            box.mux(packet)


def write_corrupt_video(path: str | Path) -> Path:
    """A truncated .avi (the first bytes of a real one, cut inside its header), for data-plane failure tests."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [np.zeros((32, 32, 3), np.uint8)] * 2
    write_video(path, frames)
    path.write_bytes(path.read_bytes()[:600])
    return path


# ----------------------------------------------------------------------------------------------------------------
# Writing the dataset
# ----------------------------------------------------------------------------------------------------------------


def generate(out: str | Path, seed: int = 0, size: str = "quickstart", public: bool = False) -> dict:
    """Write the CLASS-8 images and OULU-NPU videos under ``out``; returns counts (and ``synthetic: True``).
    ``public`` adds ``out/public/<dataset>``: stand-ins of MSU-MFSD, CASIA-FASD, Replay-Attack, NUAA and AG-FAS's
    five unseen sets in their own layouts (``fas.data.synth_public``: 3D masks, wax figures, paper masks, ...).

    ``out`` must be empty, missing, or an earlier output of this generator (which is then replaced).
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}")
    out = Path(out)
    _prepare(out)
    preset = SIZES[size]
    summary = {
        "synthetic": True,
        "generator_version": VERSION,
        "seed": seed,
        "size": size,
        "class8": write_class8(out / "class8", seed, preset),
        "oulu_npu": write_oulu(out / "oulu_npu", seed, preset),
    }
    if public:
        from fas.data.synth_public import generate_public

        summary["public"] = generate_public(out / "public", seed, subjects=2 if size == "tiny" else 4)
    for root in (out, out / "class8", out / "oulu_npu"):
        write_marker(root, seed, size)
    return summary


def _prepare(out: Path) -> None:
    """Refuse to write into a folder holding anything but an earlier generated dataset; clear an earlier one."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            raise FileExistsError(f"{out} is not empty and holds no {MARKER}: refusing to write generated data there")
        for child in ("class8", "oulu_npu", "public"):
            shutil.rmtree(out / child, ignore_errors=True)
        (out / MARKER).unlink()
    out.mkdir(parents=True, exist_ok=True)


def write_marker(root: Path, seed: int, size: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text(
        "SYNTHETIC DATA - generated by fas.data.synth, not real faces and not a real dataset.\n"
        f"generator_version: {VERSION}\nseed: {seed}\nsize: {size}\n"
        "Manifests read from this tree are marked synthetic; results on it say nothing about real-world accuracy.\n"
    )


def split_subjects(preset: SizePreset) -> dict[str, list[Subject]]:
    """Subject numbers by split, consecutive and disjoint (train first), so no identity crosses splits."""
    start, out = 1, {}
    for split in SPLITS:
        out[split] = list(range(start, start + preset.subjects[split]))
        start += preset.subjects[split]
    return out


def write_class8(root: Path, seed: int, preset: SizePreset) -> dict:
    """``root/<domain>/<split>/<category>/<subject>_<nnn>.png`` for every domain, split and category."""
    numbers = split_subjects(preset)
    subjects = {n: make_subject(seed, n) for ns in numbers.values() for n in ns}
    counts: dict = {"by_domain": collections.Counter(), "by_split": collections.Counter(),
                    "by_class": collections.Counter()}
    for d, domain in enumerate(DOMAINS):
        for s, split in enumerate(SPLITS):
            for c, category in enumerate(CATEGORIES):
                folder = root / domain / split / category
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(preset.images[split]):
                    subject = subjects[numbers[split][(i + d + c) % len(numbers[split])]]
                    rng = np.random.default_rng([seed, d, s, c, i])
                    img = apply_camera(CATEGORY_FUNCS[category](rng, subject, IMAGE_SIZE), CAMERAS[domain], rng)
                    cv2.imwrite(str(folder / f"{subject.name}_{i:03d}.png"), img[..., ::-1])
                    for key, value in (("by_domain", domain), ("by_split", split), ("by_class", category)):
                        counts[key][value] += 1
    summary = {k: dict(sorted(v.items())) for k, v in counts.items()}
    summary["images"] = sum(counts["by_domain"].values())
    summary["subjects"] = {split: [f"s{n:03d}" for n in ns] for split, ns in numbers.items()}
    summary["image_size"] = IMAGE_SIZE
    return summary


def write_oulu(root: Path, seed: int, preset: SizePreset) -> dict:
    """``root/{Train,Dev,Test}_files/<Phone>_<Session>_<User>_<File>.avi`` plus Protocol_1 lists."""
    counts: dict = {"by_split": collections.Counter(), "by_label": collections.Counter(),
                    "by_session": collections.Counter(), "by_phone": collections.Counter()}
    protocol: dict[str, list[str]] = {split: [] for split in SPLITS}
    kinds = {"+1": "real", "-1": "print", "-2": "replay"}
    for split in SPLITS:
        folder = root / OULU_SPLIT_DIRS[split]
        folder.mkdir(parents=True, exist_ok=True)
        for phone, session, user in preset.oulu[split]:
            rec = Recording(split, phone, session, user)
            for file_id in preset.oulu_files:
                write_video(folder / f"{rec.name(file_id)}.avi", make_video(seed, rec, file_id))
                if session in OULU_P1_SESSIONS[split]:
                    protocol[split].append(f"{OULU_LABELS[file_id]},{rec.name(file_id)}")
                counts["by_split"][split] += 1
                counts["by_label"][kinds[OULU_LABELS[file_id]]] += 1
                counts["by_session"][str(session)] += 1
                counts["by_phone"][str(phone)] += 1
    proto_dir = root / "Protocols" / "Protocol_1"
    proto_dir.mkdir(parents=True, exist_ok=True)
    for split, lines in protocol.items():
        ordered = sorted(lines, key=lambda line: line.split(",")[1])
        (proto_dir / f"{split.capitalize()}.txt").write_text("".join(line + "\n" for line in ordered))
    summary = {k: dict(sorted(v.items())) for k, v in counts.items()}
    summary.update(videos=sum(counts["by_split"].values()), frames=VIDEO_FRAMES, fps=VIDEO_FPS,
                   frame_size=VIDEO_SIZE, protocol_1={k: len(v) for k, v in protocol.items()})
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the seeded synthetic FAS dataset (CLASS-8 + OULU-NPU).")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="quickstart")
    args = parser.parse_args(argv)
    print(json.dumps(generate(args.out, args.seed, args.size), indent=2))


if __name__ == "__main__":
    main()
